"""An include backup of a vault under an access policy carries the provenance records of the
versions it includes, so the restored vault's pulls (which check them) work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault import layout
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.storage.local import LocalBackend

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def ok(*args: str, vault_dir: Path) -> Result:
    env = {"MLVAULT_PASSPHRASE": "pw", "MLVAULT_VAULT": str(vault_dir)}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
    return result


def test_an_include_backup_carries_the_records_of_its_versions(tmp_path: Path) -> None:
    vault_dir, target, restored = tmp_path / "vault", tmp_path / "target", tmp_path / "restored"
    ok("init", str(vault_dir), *FAST_KDF, vault_dir=vault_dir)
    identities = ClientState.default().identities()
    for name in ("recovery", "alice"):
        (tmp_path / f"{name}.pub").write_bytes(identities.create(name, None, KdfParams(1, 8, 1)).encode())
    ok("keys", "add-recovery", str(tmp_path / "recovery.pub"), vault_dir=vault_dir)
    ok("principal", "add", "alice", "--identity", str(tmp_path / "alice.pub"), vault_dir=vault_dir)
    for name in ("team/a", "lab/b"):
        data = tmp_path / name.replace("/", "_")
        data.mkdir()
        (data / "w.bin").write_bytes(os.urandom(30_000))
        ok("push", str(data), name, "--tag", "prod", "-q", vault_dir=vault_dir)
    records = [k for k in LocalBackend(vault_dir).list() if layout.parse_version_record_key(k)]
    assert len(records) == 2  # the policy makes every push write a record
    add = ("backup", "schedule", "add", "teams", "--cron", "@daily", "--to", str(target), "--keep-last", "2")
    ok(*add, "--include", "team/*", vault_dir=vault_dir)
    ok("backup", "run", "teams", vault_dir=vault_dir)
    on_target = {k for k in LocalBackend(target).list() if layout.parse_version_record_key(k)}
    assert len(on_target) == 1  # team/a's record only

    ok("backup", "restore", "--from", str(target), "--to", str(restored), "--recovery-key", "recovery",
       vault_dir=vault_dir)  # fmt: skip
    pulled = tmp_path / "pulled"
    ok("pull", "team/a@prod", str(pulled), vault_dir=restored)
    assert (pulled / "w.bin").read_bytes() == (tmp_path / "team_a" / "w.bin").read_bytes()
