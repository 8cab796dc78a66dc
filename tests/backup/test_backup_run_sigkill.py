"""A real SIGKILL in the middle of ``backup run --due``, then the next ``--due`` after the lease TTL
(1 s, real time, so the wait is bounded) completes the backup without copying anything twice.

The child process is this file run as a script: it runs ``--due`` with a target that SIGKILLs its own
process after a few objects, so the kill lands mid-copy every time (no timing guesswork).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.backup.definition import Target, parse_definition
from vault.backup.run import BackupRunner
from vault.clientstate.identities import Identities
from vault.storage import Backend
from vault.storage.local import LocalBackend

KILL_AFTER = 3


class KillingTarget(LocalBackend):
    def __init__(self, path: Path) -> None:
        super().__init__(path, create=True)
        self.puts = 0

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        self.puts += 1
        if self.puts > KILL_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)


def child(vault_dir: str) -> None:
    v = vault.open_vault(vault_dir)

    def open_target(target: Target) -> Backend:
        return KillingTarget(Path(target.url))

    runner = BackupRunner(
        v.backend,
        v.catalog,
        v.config.vault_id,
        clock=lambda: datetime.now(UTC),
        lease_ttl=timedelta(seconds=1),
        open_target=open_target,
    )
    runner.run_due()
    raise SystemExit("not killed")


def test_sigkill_mid_run_then_due_after_the_ttl_completes_it(
    make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object
) -> None:
    v = make_vault()
    ids = Identities(tmp_path / "ids")
    v.add_recovery(ids.create("recovery", None, cheap_kdf))  # type: ignore[arg-type]
    data = tmp_path / "data"
    data.mkdir()
    for n in range(4):
        (data / "big.bin").write_bytes(os.urandom(100_000))
        v.push(data, f"team/m{n}")
    target = tmp_path / "target"
    definition = parse_definition(
        name="n", cron="0 * * * *", tz="UTC", target=Target(str(target)), keep={"last": 2}
    )
    v.backup_schedules(clock=lambda: datetime.now(UTC) - timedelta(hours=2)).add(definition)
    objects = {key: v.backend.size(key) for key in v.backend.list()}
    vault_dir = v.backend.url if "://" not in v.backend.url else v.backend.url.split("://", 1)[1]
    v.close()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, __file__, vault_dir], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    copied = {k for k in LocalBackend(target).list() if not layout.is_backup_key(k)}
    assert 0 < len(copied) < len(objects) and snapshot.snapshot_ids(LocalBackend(target)) == []

    reopened = vault.open_vault(vault_dir)
    lease = reopened.catalog.backup_lease_store().current("n")
    assert lease is not None  # the killed run never released it
    assert reopened.catalog.backup_run_history("n")[0].outcome == "running"
    time.sleep(max(0.0, (lease.expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
    reopened.close()

    result = CliRunner().invoke(
        app, ["--vault", vault_dir, "backup", "run", "--due", "--lease-ttl", "1s"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert "n: success" in result.stdout
    assert f"; {len(objects) - len(copied) + 2} objects" in result.stdout  # only the rest, then the snapshot
    final = vault.open_vault(vault_dir)
    history = final.catalog.backup_run_history("n")
    final.close()
    assert [h.outcome for h in history] == ["success", "failed"] and "interrupted" in (history[1].error or "")
    assert len(snapshot.snapshot_ids(LocalBackend(target))) == 1
    assert {k for k in LocalBackend(target).list() if not layout.is_backup_key(k)} == set(objects)


if __name__ == "__main__":
    child(sys.argv[1])
