"""A push killed mid-way (``kill -9``, or Ctrl-C) against S3, then run again.

The vault is made through the Python API with 1 MiB packs, so a push of a few dozen MiB
uploads many packs; the installed ``mlvault`` console script pushes in a subprocess and is
interrupted once a few packs are in the bucket. Nothing is committed; the next push of the
same content reuses the chunks of every pack that was stored and indexed, and the vault
checks clean.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2ehelpers import PASSPHRASE, MiB, file_sha256, ok_json, pack_keys, write_random
from typer.testing import Result

import vault
from vault.crypto.kdf import KdfParams
from vault.storage import StorageOptions

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def _interrupt_when_packs_stored(
    proc: subprocess.Popen[str], s3: S3Client, bucket: str, sig: signal.Signals, packs: int = 4
) -> tuple[str, str]:
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if len(pack_keys(s3, bucket, "vault")) >= packs:
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    else:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the push ended (exit {proc.returncode}) before it could be interrupted: {err}")
    return proc.communicate(timeout=60)


def _settled_pack_keys(s3: S3Client, bucket: str) -> set[str]:
    """The stored packs once no upload of the interrupted push is still landing.

    A PUT whose body reached the server before ``kill -9`` still completes there afterwards,
    so the listing is taken again until it stays the same for half a second.
    """
    seen = pack_keys(s3, bucket, "vault")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = pack_keys(s3, bucket, "vault")
        if again == seen:
            return seen
        seen = again
    pytest.fail("packs kept arriving 10 s after the push was interrupted")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_push_is_completed_by_the_next_push(
    sig: signal.Signals,
    mlvault: Callable[..., Result],
    spawn: Callable[..., subprocess.Popen[str]],
    s3_admin: S3Client,
    bucket: str,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/vault"
    options = StorageOptions(endpoint_url=moto_endpoint)
    vault.init_vault(
        url, passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), storage_options=options, pack_size=MiB
    ).close()
    monkeypatch.setenv("MLVAULT_VAULT", url)
    monkeypatch.setenv("MLVAULT_ENDPOINT_URL", moto_endpoint)
    model = write_random(tmp_path / "model.bin", 32 * MiB)

    proc = spawn("push", "--quiet", model, "team/model")
    _, stderr = _interrupt_when_packs_stored(proc, s3_admin, bucket, sig)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "interrupted; nothing was committed", stderr
        assert "Traceback" not in stderr

    stored = _settled_pack_keys(s3_admin, bucket)
    assert len(stored) >= 4
    assert mlvault("log", "team/model").exit_code == 3  # nothing was committed
    with vault.open_vault(url, storage_options=options) as reader:
        indexed = sum(len(reader.catalog.pack_chunks(pack.id)) for pack in reader.catalog.all_packs())
    assert indexed > 0

    rerun = ok_json(mlvault("push", "--json", model, "team/model"))
    assert rerun["number"] == 1
    assert rerun["reused_chunks"] == indexed
    assert 0 < rerun["new_chunks"] < rerun["new_chunks"] + rerun["reused_chunks"]
    after = pack_keys(s3_admin, bucket, "vault")
    assert stored <= after and len(after - stored) == rerun["packs"]

    check = mlvault("check", "--read-data")
    assert check.exit_code == 0, check.stdout + check.stderr
    assert check.stdout.splitlines()[-1].startswith("ok: "), check.stdout
    assert all(line.startswith("note: stored pack") for line in check.stdout.splitlines()[:-1])
    out = tmp_path / "model.out"
    assert mlvault("pull", "team/model", out).exit_code == 0
    assert file_sha256(out) == file_sha256(model)
