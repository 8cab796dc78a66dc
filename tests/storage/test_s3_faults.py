"""The S3 backend under injected faults: throttling, 5xx, connection resets, cut-off bodies.

Every request goes through :class:`faultproxy.FaultProxy` in front of the moto server.
At a ~10 % fault rate every operation must still succeed with byte-identical results
(botocore's retries plus the backend's own retry of cut-off bodies and its handling of
ambiguous retried conditional writes). At 100 % every operation must fail with
StorageUnavailableError in bounded time, and the same backend must work again once the
faults stop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from vault.errors import StorageUnavailableError
from vault.storage import StorageOptions
from vault.storage.base import ObjectExistsError
from vault.storage.s3 import MiB, S3Backend, S3Tuning

pytestmark = pytest.mark.usefixtures("aws_env")

FAST_RETRIES = S3Tuning(
    max_attempts=6,
    connect_timeout=2,
    read_timeout=5,
    max_concurrency=8,
    multipart_threshold=6 * MiB,
    part_size=5 * MiB,
    parts_in_flight=3,
)


@pytest.fixture
def store(fault_proxy: FaultProxy, s3_bucket: str) -> Iterator[S3Backend]:
    options = StorageOptions(endpoint_url=fault_proxy.endpoint_url)
    backend = S3Backend.from_url(f"s3://{s3_bucket}/vault", options, tuning=FAST_RETRIES)
    yield backend
    backend.close()


def _spool(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_ten_percent_faults_change_nothing(store: S3Backend, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    small = {f"manifests/m{i}": os.urandom(1000 + i) for i in range(20)}
    big = os.urandom(12 * MiB + 5)  # three parts
    medium = os.urandom(3 * MiB)  # one streamed PUT
    fault_proxy.fault_rate = 0.10

    for key, data in small.items():
        store.put(key, data)
    store.put_file("packs/00/big", _spool(tmp_path, "big", big))
    store.put_file("packs/00/medium", _spool(tmp_path, "medium", medium))

    assert {key: store.get(key) for key in small} == small
    assert store.get("packs/00/big") == big
    assert store.get("packs/00/medium") == medium

    def read_back(offset: int) -> bytes:
        return store.get_range("packs/00/big", offset, 256 * 1024)

    offsets = list(range(0, len(big), 256 * 1024))
    with ThreadPoolExecutor(8) as pool:
        pieces = list(pool.map(read_back, offsets))
    assert b"".join(pieces) == big
    assert store.size("packs/00/big") == len(big)
    assert sorted(store.list("manifests/")) == sorted(small)

    # Write-once still holds under faults: a retried write never hides a real conflict.
    with pytest.raises(ObjectExistsError):
        store.put("manifests/m0", b"other")
    with pytest.raises(ObjectExistsError):
        store.put_file("packs/00/big", _spool(tmp_path, "again", os.urandom(7 * MiB)))
    fault_proxy.fault_rate = 0.0
    assert store.get("manifests/m0") == small["manifests/m0"]
    assert store.get("packs/00/big") == big
    assert sum(fault_proxy.injected.values()) >= 5, fault_proxy.injected


@pytest.mark.parametrize("fault", ["reset_after", "truncate"])
def test_ambiguous_failures_are_resolved(
    fault_proxy: FaultProxy, s3_bucket: str, tmp_path: Path, fault: str, request: pytest.FixtureRequest
) -> None:
    """The write happened but its answer was lost; a read's body was cut off mid-stream."""
    # 25 % faults: ten attempts per request keep the chance of a spurious failure below 1e-5.
    options = StorageOptions(endpoint_url=fault_proxy.endpoint_url)
    tuning = S3Tuning(max_attempts=10, multipart_threshold=6 * MiB, part_size=5 * MiB)
    store = S3Backend.from_url(f"s3://{s3_bucket}/vault", options, tuning=tuning)
    request.addfinalizer(store.close)
    fault_proxy.faults = (fault,)
    fault_proxy.fault_rate = 0.25
    payloads = {f"keys/ring/s{i}": os.urandom(20_000 + i) for i in range(8)}
    for key, data in payloads.items():
        store.put(key, data)  # a 412 on the retry must be recognised as our own write
    big = os.urandom(11 * MiB)
    store.put_file("packs/01/big", _spool(tmp_path, "big", big))
    assert {key: store.get(key) for key in payloads} == payloads
    assert store.get_range("packs/01/big", 1, 6 * MiB) == big[1 : 6 * MiB + 1]
    assert fault_proxy.injected[fault] > 0


def test_total_outage_fails_in_bounded_time_then_recovers(
    fault_proxy: FaultProxy, s3_bucket: str, tmp_path: Path
) -> None:
    tuning = S3Tuning(
        max_attempts=3, connect_timeout=1, read_timeout=2, multipart_threshold=6 * MiB, part_size=5 * MiB
    )
    store = S3Backend.from_url(
        f"s3://{s3_bucket}/vault", StorageOptions(endpoint_url=fault_proxy.endpoint_url), tuning=tuning
    )
    try:
        store.put("config", b"cfg")
        # Only faults that stop the request before it reaches the store: see the next test.
        fault_proxy.faults = ("503", "500", "reset")
        fault_proxy.fault_rate = 1.0
        calls: list[Callable[[], object]] = [
            lambda: store.put("manifests/a", b"a"),
            lambda: store.get("config"),
            lambda: store.get_range("config", 0, 2),
            lambda: store.size("config"),
            lambda: store.put_file("packs/02/p", _spool(tmp_path, "p", os.urandom(7 * MiB))),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError, match=r"storage unavailable: .*retried \d+ times"):
                call()
            assert time.monotonic() - started < 15
        assert not (tmp_path / "p").exists()  # put_file consumes its file even when it fails

        fault_proxy.fault_rate = 0.0
        store.put("manifests/a", b"a")
        assert store.get("manifests/a") == b"a"
        store.put_file("packs/02/p", _spool(tmp_path, "p", b"p" * (7 * MiB)))
        assert store.get("packs/02/p") == b"p" * (7 * MiB)
    finally:
        store.close()


@pytest.mark.parametrize("fault", ["503", "500"])
def test_error_status_past_retries_names_the_status(
    fault_proxy: FaultProxy, s3_bucket: str, fault: str
) -> None:
    store = S3Backend.from_url(
        f"s3://{s3_bucket}/v",
        StorageOptions(endpoint_url=fault_proxy.endpoint_url),
        tuning=S3Tuning(max_attempts=2),
    )
    try:
        fault_proxy.faults = (fault,)
        fault_proxy.fault_rate = 1.0
        code = "SlowDown" if fault == "503" else "InternalError"
        with pytest.raises(StorageUnavailableError, match=f"{fault} {code} \\(retried 1 times\\)"):
            store.put("config", b"x")
    finally:
        store.close()


def test_a_failed_write_may_still_have_happened(fault_proxy: FaultProxy, s3_bucket: str) -> None:
    """StorageUnavailableError from a write means "unknown": the object may exist, and a
    second attempt with other bytes is then refused (callers treat content-addressed
    objects as done; the backend never silently keeps either version)."""
    store = S3Backend.from_url(
        f"s3://{s3_bucket}/v",
        StorageOptions(endpoint_url=fault_proxy.endpoint_url),
        tuning=S3Tuning(max_attempts=2),
    )
    try:
        fault_proxy.faults = ("reset_after",)
        fault_proxy.fault_rate = 1.0
        with pytest.raises(StorageUnavailableError, match="cannot reach"):
            store.put("manifests/m", b"first")
        fault_proxy.fault_rate = 0.0
        with pytest.raises(ObjectExistsError):
            store.put("manifests/m", b"second")
        assert store.get("manifests/m") == b"first"
    finally:
        store.close()
