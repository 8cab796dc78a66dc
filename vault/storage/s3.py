"""S3 backend (``s3://bucket/prefix``) for AWS and S3-compatible stores.

Design:

- **One client, many threads.** A single botocore client (thread-safe) is built at
  construction from a ``boto3.session.Session(profile_name=..., region_name=...)``, so
  credentials and region come from the standard AWS chain. Its connection pool and the
  backend's small worker pool (multipart parts) are sized by
  :attr:`S3Tuning.max_concurrency`, because the vault core calls ``get_range`` and
  ``put_file`` from several threads at once.
- **Secure transport.** HTTPS with certificate verification (never disabled; a private CA
  goes through ``AWS_CA_BUNDLE``). A plain ``http://`` endpoint is refused unless its host
  is loopback or the caller passes ``allow_insecure_http`` (:mod:`vault.storage.s3_options`);
  the CLI, which owns user-facing output, prints the caution for that flag.
- **The bucket must exist.** Construction does a HeadBucket: 404 is
  :class:`NotFoundError`, 403 is :class:`StorageUnavailableError`, both naming the bucket.
  mlvault never creates buckets.
- **Write-once by conditional write.** ``put`` and small ``put_file`` use a PUT with
  ``If-None-Match: *``; large ``put_file`` is a manual multipart upload (bounded part
  buffers: at most ``parts_in_flight`` parts of ``part_size`` in memory per call) whose
  CompleteMultipartUpload carries ``If-None-Match: *``. A 412 becomes
  :class:`ObjectExistsError`. Every write carries a random ``x-amz-meta-mlvault-put-id``
  token: when a retried write gets 412 (the first attempt may have succeeded and only its
  response was lost), a HEAD compares the token, so our own earlier attempt is not
  mistaken for a conflicting writer. Failed multipart uploads are aborted best-effort;
  a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` cleans up after crashes.
- **Retries.** botocore retries throttling, 5xx and connection errors with exponential
  backoff and jitter (``standard`` or ``adaptive`` mode, :class:`S3Tuning`). A response
  body cut off mid-stream is outside botocore's retry loop, so reads retry that here.
  When retries are exhausted the error is :class:`StorageUnavailableError` saying how
  often it was retried. Errors are mapped by :func:`vault.aws.translate` (this module
  only names the bucket or object first); no botocore type or exception leaves it.
- **Object Lock, server-side copy.** ``put``/``put_file`` take a ``Retention``; ``extend_retention``
  only moves a date later; ``copy_from`` an S3 source on the same endpoint is one CopyObject (≤ 5 GiB).
- **Reads.** ``get_range`` is one ranged GET. ``list`` pages through ListObjectsV2 and
  is for maintenance (gc, backup), never for push/pull.

Note for operators: without ``s3:ListBucket`` permission, S3 answers 403 instead of 404
for a missing object, which surfaces here as "access denied".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from vault import aws
from vault.errors import IntegrityError, MlvaultError, NotFoundError, StorageUnavailableError, UsageError
from vault.storage.base import Backend, ObjectExistsError, Retention, check_size, validate_key
from vault.storage.s3_multipart import Upload, put_multipart
from vault.storage.s3_options import MiB, S3Tuning, check_endpoint, lock_args, parse_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

    from vault.storage import StorageOptions

__all__ = ["MiB", "S3Backend", "S3Tuning", "check_endpoint", "parse_s3_url"]

_PUT_ID = "mlvault-put-id"
_CONFLICT_ATTEMPTS = 3  # S3 answers 409 ConditionalRequestConflict to racing conditional writes
_MAX_COPY = 5 * 1024 * MiB  # a single CopyObject copies at most 5 GiB


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except UsageError:
        return False
    return True


class S3Backend(Backend):
    """Objects under ``prefix/`` in one S3 bucket; see the module docstring."""

    upload_concurrency = 4  # uploads are latency-bound: more in flight keeps the link busy

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        allow_insecure_http: bool = False,
        tuning: S3Tuning | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        parse_s3_url(self.url)
        check_endpoint(endpoint_url, allow_insecure_http=allow_insecure_http)
        self.tuning = tuning or S3Tuning()
        if self.tuning.part_size < 5 * MiB:
            raise UsageError("S3 part size must be at least 5 MiB")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._endpoint = endpoint_url or "AWS S3"
        config = Config(
            retries={"mode": self.tuning.retry_mode, "total_max_attempts": self.tuning.max_attempts},
            connect_timeout=self.tuning.connect_timeout,
            read_timeout=self.tuning.read_timeout,
            max_pool_connections=self.tuning.max_concurrency + 4,
            user_agent_extra="mlvault",
        )
        session = session or boto3.session.Session()
        # verify is left at None: botocore then always verifies TLS, honouring AWS_CA_BUNDLE.
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        try:
            # botocore also takes endpoints from AWS_ENDPOINT_URL[_S3] and profile settings:
            # the transport rules apply to the endpoint it will actually use.
            effective = self._client.meta.endpoint_url
            if effective != endpoint_url:
                check_endpoint(effective, allow_insecure_http=allow_insecure_http)
                self._endpoint = effective
            self._check_bucket()
        except BaseException:
            self._client.close()
            raise
        self._pool = ThreadPoolExecutor(self.tuning.max_concurrency, thread_name_prefix="mlvault-s3")

    @classmethod
    def from_url(cls, url: str, options: StorageOptions, *, tuning: S3Tuning | None = None) -> S3Backend:
        """Open ``s3://bucket/prefix`` with credentials and region from the AWS chain."""
        bucket, prefix = parse_s3_url(url)
        check_endpoint(options.endpoint_url, allow_insecure_http=options.allow_insecure_http)
        try:
            session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
        except ProfileNotFound as exc:
            raise UsageError(f"AWS profile {options.profile!r} not found: check ~/.aws/config") from exc
        return cls(
            bucket,
            prefix,
            session=session,
            endpoint_url=options.endpoint_url,
            allow_insecure_http=options.allow_insecure_http,
            tuning=tuning or options.tuning,
        )

    # -- helpers -------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self._root + validate_key(key)

    def _check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if aws.http_status(exc) == 404:
                raise NotFoundError(
                    f"bucket {self.bucket} does not exist at {self._endpoint}: "
                    "create it first (mlvault never creates buckets) or fix the URL"
                ) from None
            if aws.http_status(exc) == 403:
                raise StorageUnavailableError(
                    f"access denied to bucket {self.bucket}: check credentials "
                    "(profile, AWS_* environment, instance role) and the bucket policy"
                ) from None
            raise self._error(exc, "HeadBucket", None) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "HeadBucket", None) from exc

    def _error(self, exc: ClientError | BotoCoreError, operation: str, key: str | None) -> MlvaultError:
        """Map a botocore failure onto the mlvault exception tree, naming the bucket or object."""
        target = f"{self.url}/{key}" if key else self.url
        status, code = aws.http_status(exc), aws.error_code(exc)
        if code == "NoSuchBucket":
            return NotFoundError(f"bucket {self.bucket} does not exist at {self._endpoint}")
        if status == 404 or code in {"NoSuchKey", "NotFound"}:
            return NotFoundError(f"object {key} not found in {self.url}")
        if status == 403:
            return StorageUnavailableError(
                f"access denied to bucket {self.bucket} ({operation} {target}): "
                "check credentials and the bucket policy"
            )
        return aws.translate(
            exc,
            f"{operation} {target}",
            service="storage",
            endpoint=self._endpoint,
            attempts=self.tuning.max_attempts,
        )

    def _written_by(self, name: str, token: str) -> bool:
        """Whether the object ``name`` was written by the put carrying ``token``."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError):
            return False
        return head.get("Metadata", {}).get(_PUT_ID) == token

    def _write_once(
        self, key: str, name: str, operation: str, token: str, call: Callable[[], object]
    ) -> None:
        """Run a conditional write; 412 → ObjectExistsError unless our own earlier attempt won."""
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                call()
                return
            except ClientError as exc:
                if aws.http_status(exc) == 412:
                    if aws.retry_count(exc) and self._written_by(name, token):
                        return
                    raise ObjectExistsError(f"object {key} already exists") from None
                if aws.error_code(exc) == "ConditionalRequestConflict" and attempt < _CONFLICT_ATTEMPTS:
                    continue
                raise self._error(exc, operation, key) from exc
            except BotoCoreError as exc:
                raise self._error(exc, operation, key) from exc

    def _read(
        self, key: str, name: str, offset: int | None = None, length: int = 0, max_size: int | None = None
    ) -> bytes:
        """GET an object or a byte range, retrying a body that is cut off mid-stream."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        operation = "GetObject"
        if offset is not None:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
            operation = f"GetObject(bytes {offset}+{length})"
        attempt = 1
        while True:
            try:
                response = self._client.get_object(**args)
            except ClientError as exc:
                if aws.http_status(exc) == 416:  # the range starts at or past the end of the object
                    return b""
                raise self._error(exc, operation, key) from exc
            except BotoCoreError as exc:
                raise self._error(exc, operation, key) from exc
            body = response["Body"]
            try:
                check_size(key, response["ContentLength"], max_size)  # before reading the body
                return body.read()
            except BotoCoreError as exc:
                if attempt >= self.tuning.max_attempts:
                    raise self._error(exc, operation, key) from exc
            finally:
                body.close()
            time.sleep(min(2.0 ** (attempt - 1), 20.0) * secrets.randbelow(1000) / 1000)  # full jitter
            attempt += 1

    # -- the Backend interface -------------------------------------------------------------

    def put(self, key: str, data: bytes, *, retention: Retention | None = None) -> None:
        """Store ``data`` with a conditional PUT (under Object Lock ``retention`` when given)."""
        name = self._name(key)
        token = secrets.token_hex(16)
        extra = lock_args(retention)
        self._write_once(
            key,
            name,
            "PutObject",
            token,
            lambda: self._client.put_object(
                Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*", Metadata={_PUT_ID: token}, **extra
            ),
        )

    def put_file(self, key: str, path: Path, *, retention: Retention | None = None) -> None:
        """Upload ``path`` (single PUT or multipart) and delete it; ``retention`` as for ``put``."""
        name = self._name(key)
        try:
            size = path.stat().st_size
            if size <= self.tuning.multipart_threshold:
                token = secrets.token_hex(16)
                with path.open("rb") as handle:

                    def put() -> object:
                        handle.seek(0)
                        return self._client.put_object(
                            Bucket=self.bucket,
                            Key=name,
                            Body=handle,
                            IfNoneMatch="*",
                            Metadata={_PUT_ID: token},
                            **lock_args(retention),
                        )

                    self._write_once(key, name, "PutObject", token, put)
            else:
                self._put_multipart(key, name, path, size, retention)
                if retention is not None:  # some stores (moto) drop the lock of a multipart upload
                    self.extend_retention(key, retention)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot read {path}: {exc.strerror}") from exc
        finally:
            path.unlink(missing_ok=True)

    def _put_multipart(self, key: str, name: str, path: Path, size: int, retention: Retention | None) -> None:
        token = secrets.token_hex(16)
        tuning = self.tuning
        upload = Upload(
            self._client,
            self._pool,
            self.bucket,
            name,
            tuning.part_size,
            tuning.parts_in_flight,
            {_PUT_ID: token},
        )
        complete = partial(self._write_once, key, name, "CompleteMultipartUpload", token)
        put_multipart(upload, path, size, retention, complete, partial(self._error, key=key))

    def get(self, key: str, max_size: int | None = None) -> bytes:
        """Return the whole object."""
        return self._read(key, self._name(key), max_size=max_size)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset`` with one ranged GET."""
        name = self._name(key)
        if offset < 0 or length < 0:
            raise UsageError(f"invalid byte range (offset {offset}, length {length})")
        if length == 0:
            self.size(key)
            return b""
        return self._read(key, name, offset, length)

    def _head(self, key: str) -> HeadObjectOutputTypeDef:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "HeadObject", key) from exc

    def size(self, key: str) -> int:
        """Return the object's size from a HEAD."""
        return self._head(key)["ContentLength"]

    def exists(self, key: str) -> bool:
        """Return whether the object exists (one HEAD)."""
        try:
            self.size(key)
        except NotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object; S3 treats a missing key as success."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "DeleteObject", key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield keys under ``prefix`` (ListObjectsV2; not for the push/pull hot path)."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self._root) :]
                    if _is_key(key):
                        yield key
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "ListObjectsV2", prefix or None) from exc

    # -- Object Lock and server-side copy ---------------------------------------------------

    @cached_property
    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (GetObjectLockConfiguration, asked once)."""
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if aws.error_code(exc) in {"ObjectLockConfigurationNotFoundError", "InvalidRequest"}:
                return False
            raise self._error(exc, "GetObjectLockConfiguration", None) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "GetObjectLockConfiguration", None) from exc
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def _require_lock(self) -> None:
        if not self.object_lock_enabled:
            raise self._no_lock()

    def put_locked(self, key: str, data: bytes, retention: Retention) -> None:
        """``put`` under Object Lock ``retention``."""
        self._require_lock()
        self.put(key, data, retention=retention)

    def put_file_locked(self, key: str, path: Path, retention: Retention) -> None:
        """``put_file`` under Object Lock ``retention``."""
        if not self.object_lock_enabled:
            super().put_file_locked(key, path, retention)  # removes the file and refuses
        self.put_file(key, path, retention=retention)

    def retained_until(self, key: str) -> datetime | None:
        """The object's Object Lock retain-until date (from a HEAD), or None."""
        return self._head(key).get("ObjectLockRetainUntilDate")

    def extend_retention(self, key: str, retention: Retention) -> bool:
        """PutObjectRetention to ``retention.until`` when that is later than the current date."""
        self._require_lock()
        current = self.retained_until(key)
        if current is not None and current >= retention.until:
            return False
        try:
            self._client.put_object_retention(
                Bucket=self.bucket,
                Key=self._name(key),
                Retention={"Mode": retention.mode, "RetainUntilDate": retention.until},
                ChecksumAlgorithm="CRC32",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "PutObjectRetention", key) from exc
        return True

    def copy_from(self, source: Backend, key: str, size: int, retention: Retention | None = None) -> bool:
        """One conditional CopyObject from an S3 ``source`` on the same endpoint (objects up to 5 GiB)."""
        if not isinstance(source, S3Backend) or source._endpoint != self._endpoint or size > _MAX_COPY:
            return False
        if retention is not None:
            self._require_lock()
        name, token = self._name(key), secrets.token_hex(16)
        if self.exists(key):  # some S3-compatible stores ignore If-None-Match on a copy
            raise ObjectExistsError(f"object {key} already exists")
        head = source._head(key)
        if head["ContentLength"] != size:
            raise IntegrityError(f"object {key} is {head['ContentLength']} bytes at the source, not {size}")
        self._write_once(
            key,
            name,
            "CopyObject",
            token,
            lambda: self._client.copy_object(
                Bucket=self.bucket,
                Key=name,
                CopySource={"Bucket": source.bucket, "Key": source._name(key)},
                CopySourceIfMatch=head["ETag"],
                IfNoneMatch="*",
                MetadataDirective="REPLACE",
                Metadata={_PUT_ID: token},
            ),
        )
        if retention is not None:  # a copy has no body to checksum: lock it in a second request
            self.extend_retention(key, retention)
        return True

    def close(self) -> None:
        """Stop the worker threads and close the connection pool."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
