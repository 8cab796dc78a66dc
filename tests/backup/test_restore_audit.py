"""Restore carries the audit log: ``--recovery-key FILE``, the same vault id, the rows of earlier backup
runs, and ``audit verify`` passing on the restored vault — even when storage held a checkpoint newer
than the rows the snapshot exported (a push between the export and the listing)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.storage.local import LocalBackend

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def cli(*args: str, vault_dir: Path | None = None) -> Result:
    env = {"MLVAULT_PASSPHRASE": "pw"}
    if vault_dir is not None:
        env["MLVAULT_VAULT"] = str(vault_dir)
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def test_restore_carries_the_audit_log_and_it_verifies(tmp_path: Path) -> None:
    vault_dir, target = tmp_path / "vault", tmp_path / "target"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    ok(cli("identity", "new", "recovery", "--no-passphrase"))
    config_dir = Path(os.environ["MLVAULT_CONFIG_DIR"])
    ok(cli("keys", "add-recovery", str(config_dir / "identities" / "recovery.pub"), vault_dir=vault_dir))
    data = tmp_path / "model"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(40_000))
    ok(cli("push", str(data), "team/model", "-q", vault_dir=vault_dir))
    add = (
        "backup",
        "schedule",
        "add",
        "nightly",
        "--cron",
        "@daily",
        "--to",
        str(target),
        "--keep-last",
        "5",
    )
    ok(cli(*add, vault_dir=vault_dir))
    first = ok(cli("backup", "run", "nightly", vault_dir=vault_dir))
    assert "snapshots are not signed" in first.stderr  # no service principal: said, not hidden
    vault_id = json.loads((vault_dir / layout.CONFIG).read_bytes())["vault_id"]

    # A checkpoint of a row the next export will not hold (as if a push landed between the export
    # and the listing): the snapshot must not carry it.
    future = layout.audit_checkpoint_key(10_000)
    LocalBackend(vault_dir).put(future, b"a checkpoint of a row the snapshot lacks")
    ok(cli("backup", "run", "nightly", vault_dir=vault_dir))
    newest = snapshot.snapshot_ids(LocalBackend(target))[-1]
    listed = snapshot.read_object_list(LocalBackend(target), newest).objects
    assert future not in listed and not (target / future).exists()
    assert any(layout.parse_audit_checkpoint_key(k) for k in listed)  # the real ones are carried
    shutil.rmtree(vault_dir)

    restored = tmp_path / "restored"
    recovery_file = tmp_path / "recovery-copy.id"  # --recovery-key FILE, not a name
    shutil.copy(config_dir / "identities" / "recovery.id", recovery_file)
    recovery_file.chmod(0o600)
    ok(
        cli(
            "backup",
            "restore",
            "--from",
            str(target),
            "--to",
            str(restored),
            "--recovery-key",
            str(recovery_file),
        )
    )
    assert json.loads((restored / layout.CONFIG).read_bytes())["vault_id"] == vault_id
    runs = json.loads(ok(cli("audit", "ls", "--action", "backup", "--json", vault_dir=restored)).stdout)
    assert [(r["target"], r["outcome"]) for r in runs] == [("nightly", "ok")]  # the first run's row
    verified = ok(cli("audit", "verify", vault_dir=restored))
    assert verified.stdout.startswith("ok: chain intact")
