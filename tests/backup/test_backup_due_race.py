"""Four concurrent ``mlvault backup run --due`` processes on a PostgreSQL catalog: the due slot runs
exactly once (one run row, one snapshot); every other process skips it (lease held, or run
meanwhile) or finds nothing due, and all exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import vault
from vault.backup import snapshot
from vault.backup.definition import Target, parse_definition
from vault.clientstate.identities import Identities
from vault.storage.local import LocalBackend

PROCESSES = 4


def test_four_concurrent_due_runs_run_the_slot_once(
    make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object, postgres_url: str
) -> None:
    v = make_vault(catalog_url=postgres_url)
    ids = Identities(tmp_path / "ids")
    v.add_recovery(ids.create("recovery", None, cheap_kdf))  # type: ignore[arg-type]
    data = tmp_path / "data"
    data.mkdir()
    for n in range(6):
        (data / "big.bin").write_bytes(os.urandom(300_000))
        v.push(data, f"team/m{n}")
    target = tmp_path / "target"
    definition = parse_definition(
        name="n", cron="0 * * * *", tz="UTC", target=Target(str(target)), keep={"last": 2}
    )
    enabled = datetime.now(UTC) - timedelta(hours=3)
    v.backup_schedules(clock=lambda: enabled).add(definition)
    vault_dir = v.backend.url.split("://", 1)[-1]
    v.close()

    mlvault = Path(sys.executable).parent / "mlvault"
    command = [str(mlvault), "--vault", vault_dir, "--catalog", postgres_url, "backup", "run", "--due"]
    env = {k: val for k, val in os.environ.items() if k != "MLVAULT_VAULT"}
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, (code, out, err)
    outs = [out.strip() for _, out, _ in results]
    print("\n" + "\n".join(outs))
    assert sum("n: success" in out for out in outs) == 1, outs
    for out in outs:
        assert "n: success" in out or "n: skipped" in out or "no backup schedule is due" in out, out

    reopened = vault.open_vault(vault_dir, catalog_url=postgres_url)
    try:
        history = reopened.catalog.backup_run_history("n")
    finally:
        reopened.close()
    assert [h.outcome for h in history] == ["success"], history
    assert history[0].slot is not None and history[0].slot > enabled
    assert len(snapshot.snapshot_ids(LocalBackend(target))) == 1
