"""S3-specific behaviour beyond the contract: URLs, refusals, layout, multipart, range coalescing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from faultproxy import FaultProxy

from vault.errors import NotFoundError, StorageUnavailableError, UsageError
from vault.storage import StorageOptions, open_backend
from vault.storage.base import ObjectExistsError
from vault.storage.s3 import MiB, S3Backend, S3Tuning, check_endpoint, parse_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.usefixtures("aws_env")

SMALL_PARTS = S3Tuning(multipart_threshold=6 * MiB, part_size=5 * MiB, parts_in_flight=2)


@pytest.fixture
def store(moto_endpoint: str, s3_bucket: str) -> Iterator[S3Backend]:
    backend = S3Backend.from_url(f"s3://{s3_bucket}/team/vault", StorageOptions(endpoint_url=moto_endpoint))
    yield backend
    backend.close()


@pytest.fixture
def multipart_store(moto_endpoint: str, s3_bucket: str) -> Iterator[S3Backend]:
    backend = S3Backend.from_url(
        f"s3://{s3_bucket}/vault", StorageOptions(endpoint_url=moto_endpoint), tuning=SMALL_PARTS
    )
    yield backend
    backend.close()


# -- URLs and endpoints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://my.bucket-1/team/vault/", ("my.bucket-1", "team/vault")),
    ],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://B", "s3://Bucket/x", "s3://bucket/a//b", "s3://bucket/../x", "s3://b/x?y=1", "file:///x"],
)
def test_parse_s3_url_refuses_malformed(url: str) -> None:
    with pytest.raises(UsageError):
        parse_s3_url(url)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "http://127.9.9.9",
        "http://localhost:4566",
        "http://[::1]:9000",
        "https://s3.example",
    ],
)
def test_secure_or_loopback_endpoints_need_no_flag(endpoint: str) -> None:
    check_endpoint(endpoint, allow_insecure_http=False)


def test_plain_http_to_another_host_is_refused_before_any_io() -> None:
    # 192.0.2.0/24 is TEST-NET-1: if the refusal came after a connection attempt, this would hang.
    options = StorageOptions(endpoint_url="http://192.0.2.10:9000")
    with pytest.raises(UsageError, match="allow-insecure-http"):
        S3Backend.from_url("s3://bucket/vault", options)
    with pytest.raises(UsageError, match="allow-insecure-http"):
        open_backend("s3://bucket/vault", options)


def test_plain_http_with_the_flag_is_accepted() -> None:
    check_endpoint("http://minio.internal:9000", allow_insecure_http=True)


def test_backend_url_names_bucket_and_prefix(store: S3Backend) -> None:
    assert store.url.endswith("/team/vault")


def test_unknown_profile_is_a_usage_error(moto_endpoint: str) -> None:
    with pytest.raises(UsageError, match="no-such-profile"):
        S3Backend.from_url(
            "s3://bucket/v", StorageOptions(endpoint_url=moto_endpoint, profile="no-such-profile")
        )


def test_missing_credentials(moto_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageUnavailableError, match="credentials"):
        S3Backend.from_url(f"s3://{s3_bucket}/v", StorageOptions(endpoint_url=moto_endpoint))


# -- the bucket must exist and be ours ---------------------------------------------------------


def test_missing_bucket_is_not_found_and_named(moto_endpoint: str) -> None:
    with pytest.raises(NotFoundError, match="bucket no-such-bucket-here does not exist"):
        S3Backend.from_url("s3://no-such-bucket-here/vault", StorageOptions(endpoint_url=moto_endpoint))


def test_wrong_credentials_are_access_denied(fault_proxy: FaultProxy, s3_bucket: str) -> None:
    fault_proxy.deny = True
    with pytest.raises(
        StorageUnavailableError, match=f"access denied to bucket {s3_bucket}: check credentials"
    ):
        S3Backend.from_url(f"s3://{s3_bucket}/vault", StorageOptions(endpoint_url=fault_proxy.endpoint_url))


def test_access_denied_after_open(fault_proxy: FaultProxy, s3_bucket: str) -> None:
    store = S3Backend.from_url(
        f"s3://{s3_bucket}/vault", StorageOptions(endpoint_url=fault_proxy.endpoint_url)
    )
    try:
        store.put("config", b"c")
        fault_proxy.deny = True
        for call in (lambda: store.get("config"), lambda: store.size("config"), lambda: store.put("x", b"")):
            with pytest.raises(StorageUnavailableError, match="access denied"):
                call()
    finally:
        store.close()


# -- layout and semantics ------------------------------------------------------------------------


def test_objects_live_under_the_prefix(store: S3Backend, s3_admin: S3Client, s3_bucket: str) -> None:
    store.put("packs/ab/p1", b"data")
    raw = s3_admin.get_object(Bucket=s3_bucket, Key="team/vault/packs/ab/p1")
    assert raw["Body"].read() == b"data"
    s3_admin.put_object(Bucket=s3_bucket, Key="team/vault-other/config", Body=b"not ours")
    s3_admin.put_object(Bucket=s3_bucket, Key="team/vault/Not A Key", Body=b"foreign")
    assert sorted(store.list()) == ["packs/ab/p1"]


def test_hostile_keys_never_reach_s3(s3_bucket: str, fault_proxy: FaultProxy) -> None:
    store = S3Backend.from_url(f"s3://{s3_bucket}/v", StorageOptions(endpoint_url=fault_proxy.endpoint_url))
    before = fault_proxy.requests
    for call in (
        lambda: store.get_range("../config", 0, 1),
        lambda: store.get("a//b"),
        lambda: store.delete("/abs"),
        lambda: store.exists("UP"),
    ):
        with pytest.raises(UsageError):
            call()
    assert fault_proxy.requests == before
    store.close()


def test_multipart_put_file_round_trip(
    multipart_store: S3Backend, tmp_path: Path, s3_admin: S3Client
) -> None:
    payload = os.urandom(13 * MiB + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(payload)
    multipart_store.put_file("packs/00/big", src)
    assert not src.exists()
    assert multipart_store.size("packs/00/big") == len(payload)
    assert multipart_store.get_range("packs/00/big", 5 * MiB - 10, 20) == payload[5 * MiB - 10 : 5 * MiB + 10]
    assert multipart_store.get("packs/00/big") == payload
    head = s3_admin.head_object(Bucket=multipart_store.bucket, Key="vault/packs/00/big")
    assert head["ETag"].endswith('-3"')  # really three parts


def test_multipart_put_file_is_write_once_and_cleans_up(
    multipart_store: S3Backend, tmp_path: Path, s3_admin: S3Client
) -> None:
    first, second = os.urandom(7 * MiB), os.urandom(8 * MiB)
    (tmp_path / "a").write_bytes(first)
    multipart_store.put_file("packs/00/once", tmp_path / "a")
    (tmp_path / "b").write_bytes(second)
    with pytest.raises(ObjectExistsError):
        multipart_store.put_file("packs/00/once", tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert multipart_store.get("packs/00/once") == first
    assert s3_admin.list_multipart_uploads(Bucket=multipart_store.bucket).get("Uploads", []) == []


def test_put_file_of_a_missing_file(store: S3Backend, tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailableError, match="cannot read"):
        store.put_file("packs/00/x", tmp_path / "missing")
    assert not store.exists("packs/00/x")


def test_many_threads_share_one_backend(multipart_store: S3Backend, tmp_path: Path) -> None:
    blobs = {f"packs/{i:02x}/t": os.urandom(256 * 1024 + i) for i in range(24)}

    def write(key: str) -> None:
        src = tmp_path / key.replace("/", "_")
        src.write_bytes(blobs[key])
        multipart_store.put_file(key, src)

    def read(key: str) -> bytes:
        half = len(blobs[key]) // 2
        return multipart_store.get_range(key, 0, half) + multipart_store.get_range(key, half, 10 * MiB)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, blobs))
        assert list(pool.map(read, blobs)) == list(blobs.values())


def test_plain_http_endpoint_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads AWS_ENDPOINT_URL_S3 itself; the plain-HTTP rule must still apply."""
    from vault.storage import StorageOptions
    from vault.storage.s3 import S3Backend

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://198.51.100.7:80")
    with pytest.raises(UsageError, match="plain-HTTP"):
        S3Backend.from_url("s3://some-bucket/prefix", StorageOptions())
