"""What an S3 backend is configured with, checked before any I/O.

The URL (``s3://bucket/prefix``: bucket name and prefix segments validated), the endpoint
(HTTPS, or plain HTTP to a loopback host, or plain HTTP to another host only with
``allow_insecure_http``) and :class:`S3Tuning`, the retry, timeout and concurrency knobs.
The CLI tells the user when plain HTTP is in use; this module only refuses.
:func:`lock_args` turns a :class:`~vault.storage.base.Retention` into the request parameters of a
locked write.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from vault.errors import UsageError
from vault.storage.base import Retention

MiB = 1 << 20
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class S3Tuning:
    """Retry, timeout and concurrency knobs; the defaults suit AWS, tests shrink them."""

    max_attempts: int = 6  # per request, the first one included
    retry_mode: Literal["standard", "adaptive"] = "standard"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_concurrency: int = 16  # connection pool size and worker threads
    multipart_threshold: int = 64 * MiB  # put_file above this size uses multipart
    part_size: int = 16 * MiB  # at least 5 MiB (S3 minimum for all but the last part)
    parts_in_flight: int = 4  # per put_file call; bounds its memory to parts_in_flight * part_size


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into a validated bucket name and prefix (no slashes at the ends)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
        raise UsageError(f"invalid S3 URL {url!r}: expected s3://bucket/prefix")
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid S3 bucket name {bucket!r} in {url!r}")
    if prefix and not all(
        _PREFIX_SEGMENT_RE.match(part) and part not in {".", ".."} for part in prefix.split("/")
    ):
        raise UsageError(
            f"invalid S3 prefix {prefix!r} in {url!r}: use letters, digits, '.', '_', '-' and '/'"
        )
    return bucket, prefix


def check_endpoint(endpoint_url: str | None, *, allow_insecure_http: bool) -> None:
    """Refuse a malformed endpoint, and plain HTTP to a non-loopback host unless allowed."""
    if endpoint_url is None:
        return
    parsed = urlparse(endpoint_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"invalid S3 endpoint {endpoint_url!r}: expected https://host[:port]")
    if parsed.scheme == "https" or _is_loopback(parsed.hostname) or allow_insecure_http:
        return
    raise UsageError(
        f"refusing plain-HTTP S3 endpoint {endpoint_url}: use https://, "
        "or pass --allow-insecure-http if this network is trusted"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lock_args(retention: Retention | None) -> dict[str, Any]:
    """The PutObject / CopyObject / CreateMultipartUpload parameters of an Object Lock write.

    S3 requires a checksum on a write that sets a retention period; CRC32 is the one botocore
    computes by default, so naming it costs nothing.
    """
    if retention is None:
        return {}
    return {
        "ObjectLockMode": retention.mode,
        "ObjectLockRetainUntilDate": retention.until,
        "ChecksumAlgorithm": "CRC32",
    }
