"""Storage backends chosen by URL scheme: ``file://`` (or a path), ``s3://``, ``memory://``.

The registry imports a backend module only when its scheme is used, so a local vault
never imports boto3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from vault.errors import UsageError
from vault.storage.base import Backend, ObjectExistsError, validate_key

if TYPE_CHECKING:
    from vault.storage.s3_options import S3Tuning

__all__ = ["Backend", "ObjectExistsError", "StorageOptions", "open_backend", "validate_key"]


@dataclass(frozen=True)
class StorageOptions:
    """Connection options that are not part of the URL (S3 only, for now)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    allow_insecure_http: bool = False
    tuning: S3Tuning | None = None  # retries, timeouts, concurrency; None means S3Tuning's defaults


def open_backend(url: str, options: StorageOptions | None = None, *, create: bool = False) -> Backend:
    """Return the backend for ``url``; ``create`` makes a missing local directory."""
    options = options or StorageOptions()
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        from vault.storage.local import LocalBackend

        path = Path(parsed.path if parsed.scheme == "file" else url).expanduser()
        return LocalBackend(path, create=create)
    if parsed.scheme == "memory":
        from vault.storage.memory import MemoryBackend

        return MemoryBackend(url)
    if parsed.scheme == "s3":
        from vault.storage.s3 import S3Backend

        return S3Backend.from_url(url, options)
    raise UsageError(f"unsupported storage URL {url!r}: use a directory path, file://, or s3://bucket/prefix")
