"""Plain helpers for the S3 end-to-end tests: test data, digests, bucket listings, CLI output."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.testing import Result

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1 << 20
MLVAULT = str(Path(sys.executable).parent / "mlvault")
PASSPHRASE = "s3 end-to-end passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
FAKE_CREDENTIALS = {"aws_access_key_id": "AKIAMLVAULTE2E", "aws_secret_access_key": "mlvault-e2e-secret"}
REGION = "us-east-1"


def write_random(path: Path, size: int, block: int = 8 * MiB) -> Path:
    """Write ``size`` random bytes to ``path`` without holding them all in memory."""
    with path.open("wb") as out:
        left = size
        while left:
            n = min(block, left)
            out.write(os.urandom(n))
            left -= n
    return path


def write_small_files(root: Path, count: int, *, seed: int = 0) -> Path:
    """``count`` small files (0 B to ~3 KiB, some identical) spread over nested directories."""
    for i in range(count):
        directory = root / f"part-{i % 10:02d}" / f"group-{i % 3}"
        directory.mkdir(parents=True, exist_ok=True)
        if i % 97 == 0:
            data = b""
        elif i % 50 == 1:
            data = b"duplicate content shared by several files\n"
        else:
            data = hashlib.sha256(f"{seed}:{i}".encode()).digest() * (1 + (i * 7919) % 100)
        (directory / f"sample-{i:04d}.bin").write_bytes(data)
    return root


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """Relative POSIX path → SHA-256 of every regular file under ``root``."""
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def object_keys(s3: S3Client, bucket: str, prefix: str = "") -> set[str]:
    """Every object key under ``prefix`` in ``bucket``, listed directly (not through mlvault)."""
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def pack_keys(s3: S3Client, bucket: str, vault_prefix: str) -> set[str]:
    """The pack objects of the vault at ``s3://bucket/vault_prefix``."""
    return object_keys(s3, bucket, f"{vault_prefix}/packs/")


def ok_json(result: Result) -> Any:
    """The JSON a successful ``--json`` command printed (fails the test with stderr otherwise)."""
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_error_line(stderr: str, *fragments: str) -> str:
    """stderr is exactly one ``error: ...`` line that mentions every fragment; return it."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
