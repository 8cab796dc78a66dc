"""``mlvault audit anomalies`` judges rows against the access policy's principals, end to end.

A removed principal cannot act through mlvault (the gate refuses before any row), so the row
after removal is appended the way a client that skipped the gate would: through the Python API,
under the removed principal's identity.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.clientstate import ClientState

PASSPHRASE = "cli anomalies principals"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


def test_an_action_by_a_removed_principal_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    vault_dir, model = tmp_path / "vault", tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    identities = Path(os.environ["MLVAULT_CONFIG_DIR"]) / "identities"

    def run(*args: str, who: str | None = None) -> Result:
        env = {"MLVAULT_VAULT": str(vault_dir), **({} if who else {"MLVAULT_PASSPHRASE": PASSPHRASE})}
        prefix = ("--identity", who) if who else ()
        result = CliRunner().invoke(app, [*prefix, *args], env=env, catch_exceptions=False)
        assert result.exit_code in (0, 16), (args, result.exit_code, result.stdout, result.stderr)
        return result

    run("init", str(vault_dir), *FAST_KDF)
    run("push", str(model), "team/m", "-q")
    admin = ("--admin-key", "root")
    for name in ("root", "alice"):
        run("identity", "new", name, "--no-passphrase")
        run("principal", "add", name, "--identity", str(identities / f"{name}.pub"), *admin)
    run("grant", "root", "*", "admin", *admin)
    run("grant", "alice", "team/*", "read,list", *admin)
    run("pull", "team/m", str(tmp_path / "out"), "-q", who="alice")
    assert json.loads(run("audit", "anomalies", "--json").stdout) == []

    run("principal", "rm", "alice", *admin)
    alice = ClientState.default().identities().load("alice", None)
    with vault.open(str(vault_dir), identity=lambda: alice) as stale:  # a client that skipped the gate
        stale.audit.record("pull", "team/m@v1", details={"bytes": 700})
    result = run("audit", "anomalies", "--json")
    assert result.exit_code == 16
    found = json.loads(result.stdout)
    assert [(a["principal"], a["kind"]) for a in found] == [("alice", "removed-principal")]
    assert found[0]["explanation"].startswith("1 action by principal alice (")
    assert "after it was removed at" in found[0]["explanation"]
    assert ", first pull team/m@v1 at " in found[0]["explanation"]
