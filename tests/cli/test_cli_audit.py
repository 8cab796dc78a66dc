"""``mlvault audit``: rows from real commands, tampering with plain SQL caught by ``audit verify``.

Each tamper kind (edit, insert, delete, reorder, truncate) is done with SQL on the vault's real
SQLite catalog and must end in exit 5 naming the first bad sequence number.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app

PASSPHRASE = "cli audit passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
Run = Callable[..., Result]


@pytest.fixture
def vault_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLVAULT_VAULT", "MLVAULT_CATALOG", "MLVAULT_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "vault"
    result = CliRunner().invoke(app, ["init", str(path), *FAST_KDF], env={"MLVAULT_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def vrun(vault_dir: Path) -> Run:
    def invoke(*args: str, passphrase: str = PASSPHRASE) -> Result:
        env = {"MLVAULT_PASSPHRASE": passphrase, "MLVAULT_VAULT": str(vault_dir)}
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def history(vrun: Run, tmp_path: Path) -> Run:
    """A vault with pushes, pulls, shows and tag moves: about a dozen audit rows."""
    src = tmp_path / "model"
    src.mkdir()
    for i in range(3):
        (src / "w.bin").write_bytes(bytes([i]) * 1000)
        assert vrun("push", str(src), "team/m", "-q").exit_code == 0
        assert vrun("pull", "team/m", str(tmp_path / f"out{i}"), "-q").exit_code == 0
        assert vrun("show", "team/m").exit_code == 0
        assert vrun("tag", "team/m", "prod").exit_code == 0
    return vrun


def sql(vault_dir: Path, *statements: str) -> None:
    with sqlite3.connect(vault_dir / "catalog.sqlite") as conn:
        for statement in statements:
            conn.execute(statement)


def audit_rows(run: Run) -> list[dict[str, object]]:
    result = run("audit", "ls", "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_commands_leave_rows_and_verify_passes(history: Run, vault_dir: Path) -> None:
    rows = audit_rows(history)
    actions = [r["action"] for r in rows]
    assert actions.count("push") == 3 and actions.count("pull") == 3 and actions.count("show") == 3
    assert actions.count("tag") == 3 and "key" in actions
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["principal"] for r in rows)
    result = history("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"chain intact: {len(rows)} rows" in result.stdout


def test_filters(history: Run) -> None:
    pulls = json.loads(history("audit", "ls", "--action", "pull", "--json").stdout)
    assert len(pulls) == 3 and {r["target"] for r in pulls} == {"team/m@v1", "team/m@v2", "team/m@v3"}
    assert json.loads(history("audit", "ls", "--artifact", "other/x", "--json").stdout) == []
    assert json.loads(history("audit", "ls", "--principal", "nobody", "--json").stdout) == []
    assert len(json.loads(history("audit", "ls", "--since", "1h", "--json").stdout)) > 10


def test_read_only_commands_write_nothing_to_storage(vrun: Run, vault_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 100)
    assert vrun("push", str(src), "team/f", "-q").exit_code == 0
    before = sorted(p.name for p in (vault_dir / "audit").iterdir())
    assert before  # the push wrote a checkpoint
    assert vrun("pull", "team/f", str(tmp_path / "out"), "-q").exit_code == 0
    assert vrun("show", "team/f").exit_code == 0
    assert sorted(p.name for p in (vault_dir / "audit").iterdir()) == before
    assert [r["action"] for r in audit_rows(vrun)][-2:] == ["pull", "show"]


TAMPERS = {
    "edit": ["UPDATE audit_log SET principal = 'someone-else' WHERE seq = 5"],
    "edit-details": ["UPDATE audit_log SET details = '{\"bytes\": 1}' WHERE seq = 5"],
    "insert": [
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5",
        "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1005",
        "INSERT INTO audit_log (seq, at, principal, action, target, outcome, details, prev_hash, hash) "
        "SELECT 5, at, principal, 'pull', 'team/m@v1', outcome, details, prev_hash, hash "
        "FROM audit_log WHERE seq = 4",
    ],
    "delete": ["DELETE FROM audit_log WHERE seq = 5"],
    "reorder": [
        "UPDATE audit_log SET seq = -1 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = -1",
    ],
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_each_tamper_kind_is_caught_naming_the_row(history: Run, vault_dir: Path, kind: str) -> None:
    sql(vault_dir, *TAMPERS[kind])
    result = history("audit", "verify")
    assert result.exit_code == 5, result.output
    assert "first bad row: 5" in result.stderr, result.stderr


def test_truncation_is_caught_against_the_checkpoints_in_storage(history: Run, vault_dir: Path) -> None:
    last = len(audit_rows(history))
    sql(vault_dir, f"DELETE FROM audit_log WHERE seq > {last - 4}")
    result = history("audit", "verify")
    assert result.exit_code == 5, result.output
    assert f"first bad row: {last - 3}" in result.stderr and "deleted" in result.stderr


def test_wholesale_rewrite_is_caught(history: Run, vault_dir: Path) -> None:
    # Re-hash the whole table consistently from row 1 with a changed row 2: internally valid.
    from datetime import UTC, datetime

    from vault.audit.chain import AuditRow, genesis_hash, row_hash

    with sqlite3.connect(vault_dir / "catalog.sqlite") as conn:
        vault_id = bytes.fromhex(
            conn.execute("SELECT value FROM vault_info WHERE key = 'vault_id'").fetchone()[0]
        )
        rows = conn.execute(
            "SELECT seq, at, principal, action, target, outcome, details FROM audit_log ORDER BY seq"
        ).fetchall()
        prev = genesis_hash(vault_id)
        for seq, at, principal, action, target, outcome, details in rows:
            if seq == 2:
                principal = "forged"
            when = datetime.fromisoformat(at).replace(tzinfo=UTC)
            new = row_hash(prev, AuditRow(seq, when, principal, action, target, outcome, json.loads(details)))
            conn.execute(
                "UPDATE audit_log SET principal = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (principal, prev.hex(), new.hex(), seq),
            )
            prev = new
    result = history("audit", "verify")
    assert result.exit_code == 5, result.output
    assert "first bad row: 1" in result.stderr and "rewritten" in result.stderr


def test_verify_failure_is_itself_recorded(history: Run, vault_dir: Path) -> None:
    sql(vault_dir, "DELETE FROM audit_log WHERE seq = 3")
    assert history("audit", "verify").exit_code == 5
    last = audit_rows(history)[-1]
    assert (last["action"], last["target"], last["outcome"]) == ("verify", "audit", "failed")


def test_fail_closed_when_the_table_refuses_inserts(vrun: Run, vault_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"y" * 100)
    assert vrun("push", str(src), "team/f", "-q").exit_code == 0
    sql(
        vault_dir,
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit is read-only'); END",
    )
    pulled = tmp_path / "out"
    result = vrun("pull", "team/f", str(pulled), "-q")
    assert result.exit_code == 7, result.output
    assert "cannot write the audit log" in result.stderr and "refused" in result.stderr
    assert not pulled.exists()  # nothing read without its row
    assert vrun("show", "team/f").exit_code == 7


def test_anomalies_exit_16_on_a_burst_of_failed_unlocks(vrun: Run, tmp_path: Path) -> None:
    assert vrun("audit", "anomalies").exit_code == 0
    for _ in range(5):
        assert vrun("pull", "team/none", str(tmp_path / "o"), passphrase="wrong").exit_code != 0
    result = vrun("audit", "anomalies", "--json")
    assert result.exit_code == 16, result.output
    kinds = {a["kind"] for a in json.loads(result.stdout)}
    assert "failure-burst" in kinds


def test_anomalies_report_chain_problems(history: Run, vault_dir: Path) -> None:
    sql(vault_dir, "DELETE FROM audit_log WHERE seq = 2")
    result = history("audit", "anomalies")
    assert result.exit_code == 16, result.output
    assert "audit-chain" in result.stdout
