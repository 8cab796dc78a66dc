"""A multipart upload of one file to S3, with a bounded number of part buffers alive.

:func:`put_multipart` creates the upload (carrying the backend's put-id token and, for a locked
write, the Object Lock parameters), reads ``part_size`` blocks and keeps at most
``parts_in_flight`` of them in flight on the backend's worker pool, so a put of any size holds at
most that many blocks in memory, then hands the CompleteMultipartUpload call to the backend's
``complete`` (its write-once wrapper: ``If-None-Match: *``, a 412 becomes ObjectExistsError). A
failed upload is aborted best-effort; a bucket lifecycle rule ``AbortIncompleteMultipartUpload``
cleans up after crashes. With a retention (S3 requires a checksum on a locked write) every part
carries a CRC32 and the completed list names it. Errors are mapped by the backend's ``error``
callback; no botocore type leaves this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from vault.errors import MlvaultError
from vault.storage.base import Retention
from vault.storage.s3_options import lock_args

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

ErrorMapper = Callable[[ClientError | BotoCoreError, str], MlvaultError]  # (error, operation)
Complete = Callable[[Callable[[], object]], None]
MAX_PARTS = 10_000


@dataclass(frozen=True)
class Upload:
    """Where one multipart upload goes and how it is cut."""

    client: S3Client
    pool: Executor
    bucket: str
    name: str
    part_size: int
    parts_in_flight: int
    metadata: dict[str, str]


def put_multipart(
    upload: Upload, path: Path, size: int, retention: Retention | None, complete: Complete, error: ErrorMapper
) -> None:
    """Upload ``path`` (``size`` bytes) as ``upload.name``; ``complete`` runs the final call."""
    client, bucket, name = upload.client, upload.bucket, upload.name
    part_size = max(upload.part_size, -(-size // MAX_PARTS))
    try:
        upload_id = client.create_multipart_upload(
            Bucket=bucket, Key=name, Metadata=upload.metadata, **lock_args(retention)
        )["UploadId"]
    except (ClientError, BotoCoreError) as exc:
        raise error(exc, "CreateMultipartUpload") from exc
    try:
        parts = _upload_parts(upload, upload_id, path, part_size, retention is not None, error)
        complete(
            lambda: client.complete_multipart_upload(
                Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        )
    except BaseException:
        with contextlib.suppress(ClientError, BotoCoreError):  # best effort; a lifecycle rule cleans up
            client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
        raise


def _upload_parts(
    upload: Upload, upload_id: str, path: Path, part_size: int, checksums: bool, error: ErrorMapper
) -> list[CompletedPartTypeDef]:
    """Upload the parts of ``path``; the completed parts in order."""
    done: list[CompletedPartTypeDef] = []
    pending: set[Future[CompletedPartTypeDef]] = set()
    extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if checksums else {}

    def one(number: int, block: bytes) -> CompletedPartTypeDef:
        try:
            response = upload.client.upload_part(
                Bucket=upload.bucket,
                Key=upload.name,
                UploadId=upload_id,
                PartNumber=number,
                Body=block,
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise error(exc, f"UploadPart({number})") from exc
        part: CompletedPartTypeDef = {"PartNumber": number, "ETag": response["ETag"]}
        if checksums and "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def collect(futures: set[Future[CompletedPartTypeDef]]) -> None:
        for future in futures:
            pending.discard(future)
            done.append(future.result())

    try:
        with path.open("rb") as handle:
            number = 1
            while block := handle.read(part_size):
                if len(pending) >= upload.parts_in_flight:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    collect(finished)
                pending.add(upload.pool.submit(one, number, block))
                number += 1
        collect(set(wait(pending).done))
    finally:
        for future in pending:
            future.cancel()
        wait(pending)  # on failure, let running parts finish before the upload is aborted
    return sorted(done, key=lambda part: part["PartNumber"])
