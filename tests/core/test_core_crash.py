"""A push killed with SIGKILL mid-way leaves a consistent vault, and pushing again resumes it.

The real CLI runs in a subprocess on a file large enough for many 1 MiB packs; it is killed
as soon as a few packs have reached storage. Nothing may be committed, ``check --read-data``
must pass (the index never points at missing bytes), and the next push of the same content
must reuse the chunks of every pack that made it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE, pack_files, sha256_file, write_random

import vault
from vault.errors import NotFoundError

MakeVault = Callable[..., vault.Vault]
MLVAULT = str(Path(sys.executable).parent / "mlvault")


def _kill_push_after_packs(vault_dir: Path, source: Path, artifact: str, packs: int) -> int:
    """Run `mlvault push` and SIGKILL it once ``packs`` pack objects exist; return how many were seen."""
    env = {**os.environ, "MLVAULT_PASSPHRASE": PASSPHRASE}
    env.pop("MLVAULT_VAULT", None)
    proc = subprocess.Popen(
        [MLVAULT, "--vault", str(vault_dir), "push", "--quiet", str(source), artifact],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = len(pack_files(vault_dir)) if (vault_dir / "packs").exists() else 0
            if seen >= packs:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"push ended before it could be killed (rc={proc.returncode}): {out!r} {err!r}")
            time.sleep(0.005)
        else:
            pytest.fail("push stored no packs in time")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return seen


@pytest.mark.slow
def test_killed_push_resumes_and_reuses_stored_packs(make_vault: MakeVault, tmp_path: Path) -> None:
    v = make_vault(pack_size=1 << 20)
    source = write_random(tmp_path / "weights.bin", 80 << 20, seed=77)

    _kill_push_after_packs(Path(v.backend.root), source, "team/big", packs=4)  # type: ignore[attr-defined]

    with pytest.raises(NotFoundError):
        v.resolve("team/big")  # nothing was committed
    indexed = v.catalog.all_packs()
    assert indexed, "no pack was indexed before the kill"
    report = v.check(read_data=True)
    assert report.ok, report.problems  # the index only ever points at stored packs

    result = v.push(source, "team/big")
    total = result.new_chunks + result.reused_chunks
    assert result.number == 1
    assert result.reused_chunks >= sum(p.chunk_count for p in indexed) > 0
    assert result.new_chunks < total

    pulled = v.pull("team/big", tmp_path / "back.bin")
    assert pulled.sha256["weights.bin"] == sha256_file(source) == sha256_file(tmp_path / "back.bin")
    report = v.check(read_data=True)
    assert report.ok, report.problems
