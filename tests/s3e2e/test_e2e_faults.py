"""Whole commands through a fault-injecting proxy in front of the moto server.

At about 10 % of requests answered with 503 SlowDown, 500, a reset before or after the
request reached S3, or a body cut off mid-stream, ``init``, ``push``, ``pull`` and
``check --read-data`` still succeed and the bytes come back identical. When every request
fails from the middle of a push on, the push ends with one "storage unavailable" line and
exit code 7, nothing is committed, and re-running the same push once the store is back
reuses every pack that reached S3 instead of uploading it again. A store whose reads fail
during ``check`` or ``pull`` is reported as unavailable (exit 7), never as damaged data.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2ehelpers import (
    FAST_KDF,
    PASSPHRASE,
    MiB,
    assert_one_error_line,
    file_sha256,
    ok_json,
    pack_keys,
    tree_digest,
    write_random,
    write_small_files,
)
from typer.testing import Result

import vault
from vault.crypto.kdf import KdfParams
from vault.errors import StorageUnavailableError
from vault.storage import StorageOptions
from vault.storage.s3 import S3Tuning

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Few, quick retries so that a store that stays down fails the command in seconds.
FAIL_FAST = S3Tuning(max_attempts=3, connect_timeout=2, read_timeout=5, max_concurrency=4)


def test_ten_percent_faults_leave_push_pull_and_check_byte_identical(
    mlvault: Callable[..., Result],
    fault_proxy: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/vault"
    monkeypatch.setenv("MLVAULT_VAULT", url)
    monkeypatch.setenv("MLVAULT_ENDPOINT_URL", fault_proxy.endpoint_url)
    model = write_random(tmp_path / "model.bin", 24 * MiB + 12345)
    data = write_small_files(tmp_path / "data", 25)
    fault_proxy.fault_rate = 0.10

    init = mlvault("init", url, *FAST_KDF)
    assert init.exit_code == 0, init.stderr
    pushed = ok_json(mlvault("push", "--json", model, "team/model"))
    assert (pushed["number"], pushed["size"]) == (1, 24 * MiB + 12345)
    assert ok_json(mlvault("push", "--json", data, "team/data"))["files"] == 25
    out = tmp_path / "out"
    out.mkdir()
    for ref, dest in (("team/model", out / "model.bin"), ("team/data@v1", out / "data")):
        pulled = mlvault("pull", ref, dest)
        assert pulled.exit_code == 0, pulled.stderr
    check = mlvault("check", "--read-data")
    assert check.exit_code == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: "), check.stdout

    assert file_sha256(out / "model.bin") == file_sha256(model)
    assert tree_digest(out / "data") == tree_digest(data)
    assert sum(fault_proxy.injected.values()) >= 5, fault_proxy.injected  # faults really happened
    assert fault_proxy.requests > 50


def test_store_failing_mid_push_commits_nothing_and_rerun_reuses_stored_packs(
    mlvault: Callable[..., Result],
    fault_proxy: Any,
    s3_admin: S3Client,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/vault"
    model = write_random(tmp_path / "model.bin", 20 * MiB)
    spool = tmp_path / "spool"  # an S3 push spools its packs in the temporary directory
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    options = StorageOptions(endpoint_url=fault_proxy.endpoint_url, tuning=FAIL_FAST)
    v = vault.init_vault(
        url, passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), storage_options=options, pack_size=MiB
    )
    fault_proxy.faults = ("503", "500", "reset")
    read = 0
    switched = threading.Event()

    def fail_the_store_midway(nbytes: int) -> None:
        # Called on the pushing thread: once half the file is read, wait until a few packs
        # are durably in S3 (uploads go on meanwhile), then make every request fail.
        nonlocal read
        read += nbytes
        if read < 10 * MiB or switched.is_set():
            return
        deadline = time.monotonic() + 30
        while len(pack_keys(s3_admin, bucket, "vault")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        fault_proxy.fault_rate = 1.0
        switched.set()

    started = time.monotonic()
    with v, pytest.raises(StorageUnavailableError) as failed:
        v.push(model, "team/model", progress=fail_the_store_midway)
    assert switched.is_set()
    assert time.monotonic() - started < 60
    message = str(failed.value)
    assert failed.value.exit_code == 7
    assert "\n" not in message and "storage unavailable" in message and "retried" in message, message
    assert list(spool.iterdir()) == []  # no pack file left behind by the failed push

    fault_proxy.fault_rate = 0.0
    monkeypatch.setenv("MLVAULT_VAULT", url)
    monkeypatch.setenv("MLVAULT_ENDPOINT_URL", fault_proxy.endpoint_url)
    log = mlvault("log", "team/model")
    assert log.exit_code == 3
    assert_one_error_line(log.stderr, "team/model")
    assert ok_json(mlvault("ls", "--json")) == []

    stored = pack_keys(s3_admin, bucket, "vault")
    assert len(stored) >= 3
    with vault.open_vault(
        url, storage_options=StorageOptions(endpoint_url=fault_proxy.endpoint_url)
    ) as reader:
        indexed = {pack.id: len(reader.catalog.pack_chunks(pack.id)) for pack in reader.catalog.all_packs()}
        assert reader.catalog.all_versions() == []
    # Every pack that reached S3 is in the chunk index, and only those: nothing orphaned, nothing lost.
    assert {f"vault/packs/{pid[:2]}/{pid}" for pid in indexed} == stored

    rerun = ok_json(mlvault("push", "--json", model, "team/model"))
    assert rerun["number"] == 1
    assert rerun["reused_chunks"] == sum(indexed.values()) > 0
    assert rerun["new_chunks"] > 0
    after = pack_keys(s3_admin, bucket, "vault")
    assert stored < after
    assert len(after - stored) == rerun["packs"]  # only the missing chunks were uploaded, in new packs

    out = tmp_path / "model.out"
    pulled = mlvault("pull", "team/model@v1", out)
    assert pulled.exit_code == 0, pulled.stderr
    assert file_sha256(out) == file_sha256(model)
    check = mlvault("check", "--read-data")
    assert check.exit_code == 0, check.stdout + check.stderr


def test_storage_outage_during_check_and_pull_is_unavailability_not_damage(
    get_fault_proxy: Any, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/vault"
    options = StorageOptions(endpoint_url=get_fault_proxy.endpoint_url, tuning=FAIL_FAST)
    model = write_random(tmp_path / "model.bin", 6 * MiB)
    with vault.init_vault(url, passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), storage_options=options) as v:
        v.push(model, "team/model")
    get_fault_proxy.faults = ("503", "500", "reset")

    with vault.open_vault(url, passphrase=PASSPHRASE, storage_options=options) as v:
        v.unlock()
        chunks = sum(len(v.catalog.pack_chunks(pack.id)) for pack in v.catalog.all_packs())
        seen = 0

        def fail_after_the_first_chunk(_: int) -> None:
            nonlocal seen
            seen += 1
            if seen == 1:  # manifests and the first chunk were fine; the packs cannot be read any more
                get_fault_proxy.fault_rate = 1.0

        with pytest.raises(StorageUnavailableError) as checked:
            v.check(read_data=True, progress=fail_after_the_first_chunk)
        assert checked.value.exit_code == 7
        assert 1 <= seen < chunks

        get_fault_proxy.fault_rate = 1.0  # every read fails from now on; HEADs still answer
        with pytest.raises(StorageUnavailableError):
            v.check(read_data=True)
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(StorageUnavailableError):
            v.pull("team/model", out / "model.bin")
        assert list(out.iterdir()) == []  # no partial output, no staging directory left behind
