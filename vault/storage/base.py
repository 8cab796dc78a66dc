"""The storage backend interface: a flat, write-once key → bytes store.

A backend knows nothing about encryption, packs or catalogs. It stores opaque objects
under validated keys (``packs/ab/<id>``, ``manifests/<id>``, ``keys/<ring>/<slot>``,
``config``) and never overwrites one: ``put`` of an existing key raises
:class:`ObjectExistsError` (the caller decides whether that is fine, e.g. for a
content-addressed object). Only garbage collection calls ``delete``.

Every backend maps its own failures onto the exception tree: a missing object is
:class:`vault.errors.NotFoundError`, anything that means "cannot talk to the store"
is :class:`vault.errors.StorageUnavailableError`. SDK types never leak out.

Keys are validated by :func:`validate_key` before any I/O, so a hostile name cannot
reach the filesystem or a URL path.

Two optional capabilities have safe defaults here and are overridden by the S3 backend only:
**Object Lock** (:attr:`Backend.object_lock_enabled`; ``put_locked`` / ``put_file_locked`` write
an object under a :class:`Retention`; ``extend_retention`` moves its retain-until date later,
never earlier; ``retained_until`` reads it) and **server-side copy** (``copy_from`` answers False
when it cannot copy without the bytes passing through this process, and the caller streams).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from vault.errors import ConfigurationError, ConflictError, IntegrityError, UsageError

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}(/[a-z0-9][a-z0-9._-]{0,127}){0,7}$")


class ObjectExistsError(ConflictError):
    """``put`` was asked to overwrite an existing object."""


@dataclass(frozen=True)
class Retention:
    """S3 Object Lock retention: the mode and the (timezone-aware) date until which it holds."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    until: datetime

    def __post_init__(self) -> None:
        if self.mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise UsageError(f"Object Lock mode must be GOVERNANCE or COMPLIANCE, not {self.mode!r}")
        if self.until.tzinfo is None:
            raise ValueError("a retain-until date must be timezone-aware")


def check_size(key: str, size: int, max_size: int | None) -> None:
    """Raise IntegrityError if an object of ``size`` bytes exceeds ``max_size``."""
    if max_size is not None and size > max_size:
        raise IntegrityError(
            f"object {key} is {size} bytes, more than the {max_size} such an object may have"
        )


def validate_key(key: str) -> str:
    """Return ``key`` if it is a well-formed object key, else raise UsageError.

    Keys are lower-case ASCII path segments: no empty segment, no ``.``/``..``, no
    leading slash, at most eight segments of 128 characters.
    """
    if not _KEY_RE.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise UsageError(f"invalid storage key {key!r}")
    return key


class Backend(ABC):
    """A write-once object store. Implementations: memory, local directory, S3."""

    url: str
    # Capabilities: what callers may ask of this backend, instead of guessing from the URL.
    upload_concurrency: int = 2  # put_file calls worth running at once (S3 raises it)

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably; raise ObjectExistsError if it exists."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key`` and consume (delete) the file.

        Streams the file; never loads it whole. Raises ObjectExistsError if ``key`` exists
        (the file is still removed).
        """

    @abstractmethod
    def get(self, key: str, max_size: int | None = None) -> bytes:
        """Return the whole object (for small objects: config, slots, manifests).

        With ``max_size``, an object larger than that raises IntegrityError before its
        body is read: anyone with write access to the store can plant a huge object.
        """

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; fewer only if the object is shorter."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Return the object's size in bytes; NotFoundError if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with ``prefix``, in no particular order."""

    @property
    def object_lock_enabled(self) -> bool:
        """Whether objects can be written under Object Lock retention here (S3 buckets with it on)."""
        return False

    def _no_lock(self) -> ConfigurationError:
        return ConfigurationError(
            f"{self.url} cannot lock objects: Object Lock needs an S3 bucket created with it enabled"
        )

    def put_locked(self, key: str, data: bytes, retention: Retention) -> None:
        """``put`` under ``retention``; ConfigurationError where Object Lock is not enabled."""
        raise self._no_lock()

    def put_file_locked(self, key: str, path: Path, retention: Retention) -> None:
        """``put_file`` under ``retention``; ConfigurationError where Object Lock is not enabled."""
        path.unlink(missing_ok=True)
        raise self._no_lock()

    def extend_retention(self, key: str, retention: Retention) -> bool:
        """Move ``key``'s retain-until date to ``retention.until`` if that is later; True if it moved."""
        raise self._no_lock()

    def retained_until(self, key: str) -> datetime | None:
        """The date until which ``key`` is locked against deletion, or None (never locked here)."""
        validate_key(key)
        return None

    def copy_from(self, source: Backend, key: str, size: int, retention: Retention | None = None) -> bool:
        """Copy ``key`` from ``source`` inside the store (no bytes through this process).

        False when this backend cannot do that for ``source`` (the caller then streams); raises
        ObjectExistsError when ``key`` exists here.
        """
        return False

    def spool_dir(self) -> Path | None:
        """A directory for temporary files that ``put_file`` can consume cheaply, or None."""
        return None

    def close(self) -> None:  # noqa: B027 — optional hook, most backends hold nothing
        """Release connections and thread pools."""
