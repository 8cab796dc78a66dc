"""``mlvault principal …``, ``grant``, ``deny``, ``revoke``, ``access ls / explain`` through CliRunner."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"model bytes")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
    state = ClientState.default()
    state.identities().create("root", None, CHEAP_KDF)  # the admin: an identity's signing key
    for name in ("alice", "bob"):
        public = state.identities().create(name, None, CHEAP_KDF)
        (tmp_path / f"{name}.pub").write_bytes(public.encode())
    return {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, says: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and says in line, line


ADMIN = ("--admin-key", "root")


def test_principals_grants_and_explain(env: dict[str, str], tmp_path: Path) -> None:
    added = ok(run(env, "principal", "add", "alice", "--identity", str(tmp_path / "alice.pub"), *ADMIN))
    assert "added principal alice" in added.stdout and "pinned" in added.stderr
    ok(run(env, "principal", "add", "bob", "--identity", str(tmp_path / "bob.pub"), "--kind", "service",
           "--expires", "2030-06-30", *ADMIN))  # fmt: skip
    listed = json.loads(ok(run(env, "principal", "ls", "--json")).stdout)
    assert [(p["name"], p["kind"], p["expires"]) for p in listed] == [
        ("alice", "user", None),
        ("bob", "service", "2030-06-30"),
    ]
    granted = ok(run(env, "grant", "alice", "team/*", "read,push,tag", *ADMIN))
    assert "added x25519 slot" in granted.stdout
    pushed = ok(run(env, "grant", "bob", "team/vision/+", "push", *ADMIN))
    assert "note:" in pushed.stderr
    ok(run(env, "deny", "bob", "team/secret/*", *ADMIN))

    rules = json.loads(ok(run(env, "access", "ls", "--json")).stdout)
    assert {(r["principal"], r["pattern"], r["enforced_by"]) for r in rules} == {
        ("alice", "team/*", "keys"),
        ("bob", "team/vision/+", "policy"),
        ("bob", "team/secret/*", "policy"),
    }
    only = json.loads(ok(run(env, "access", "ls", "--principal", "bob", "--json")).stdout)
    assert {r["principal"] for r in only} == {"bob"}
    assert "enforced by" in ok(run(env, "access", "ls")).stdout

    told = ok(run(env, "access", "explain", "alice", "pull", "team/vision/resnet")).stdout
    assert told.startswith("allowed") and "grant team/* (push,read,tag) to alice" in told
    told = ok(run(env, "access", "explain", "bob", "pull", "team/secret/x")).stdout
    assert told.startswith("denied") and "deny team/secret/* to bob" in told
    assert "default deny" in ok(run(env, "access", "explain", "bob", "pull", "research/x")).stdout
    fails(run(env, "access", "explain", "bob", "fly", "team/x"), 2, "unknown action")

    revoked = ok(run(env, "revoke", "alice", "team/*", "read", *ADMIN))
    assert "rekeyed it (epoch 1)" in revoked.stdout and "team/model@v1" in revoked.stdout
    ok(run(env, "revoke", "bob", "team/secret/*", "--deny", *ADMIN))
    fails(run(env, "revoke", "bob", "team/secret/*", *ADMIN), 2, "--deny")


def test_rm_then_re_add_starts_with_no_grants(env: dict[str, str], tmp_path: Path) -> None:
    pub = str(tmp_path / "alice.pub")
    ok(run(env, "principal", "add", "alice", "--identity", pub, *ADMIN))
    ok(run(env, "grant", "alice", "*", "admin", *ADMIN))
    fails(run(env, "principal", "rm", "alice", *ADMIN), 2, "admin on '*'")
    ok(run(env, "principal", "add", "bob", "--identity", str(tmp_path / "bob.pub"), *ADMIN))
    ok(run(env, "grant", "bob", "*", "admin", *ADMIN))
    ok(run(env, "principal", "rm", "alice", *ADMIN))
    ok(run(env, "principal", "add", "alice", "--identity", pub, *ADMIN))
    assert "default deny" in ok(run(env, "access", "explain", "alice", "pull", "team/x")).stdout
    ok(run(env, "principal", "rename", "bob", "robert", *ADMIN))
    assert ok(run(env, "access", "explain", "robert", "push", "team/x")).stdout.startswith("allowed")
    assert len(json.loads(ok(run(env, "principal", "ls", "--all", "--json")).stdout)) == 3


def test_a_grant_row_inserted_with_sqlite3_is_ignored(env: dict[str, str], tmp_path: Path) -> None:
    ok(run(env, "principal", "add", "alice", "--identity", str(tmp_path / "alice.pub"), *ADMIN))
    (alice,) = json.loads(ok(run(env, "principal", "ls", "--json")).stdout)
    with vault.open_vault(env["MLVAULT_VAULT"], passphrase=PASSPHRASE) as v:
        db = v.catalog.engine.url.database
    assert db is not None
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO access_grants (principal_id, pattern, capabilities, deny) "
            "VALUES (?, '*', 'admin', 0)",
            (alice["id"],),
        )
    told = ok(run(env, "access", "explain", "alice", "pull", "team/model")).stdout
    assert told.startswith("denied") and "default deny" in told


def test_errors_have_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    pub = str(tmp_path / "alice.pub")
    ok(run(env, "principal", "add", "alice", "--identity", pub, *ADMIN))
    fails(run(env, "principal", "add", "alice", "--identity", str(tmp_path / "bob.pub"), *ADMIN), 9, "exists")
    fails(run(env, "grant", "nobody", "team/*", "read", *ADMIN), 3, "no principal")
    fails(run(env, "grant", "alice", "team/*/x", "read", *ADMIN), 2, "invalid pattern")
    fails(run(env, "grant", "alice", "team/*", "fly", *ADMIN), 2, "unknown capability")
    fails(run(env, "principal", "add", "x", "--identity", pub, "--expires", "soon", *ADMIN), 2, "expiry")
    ClientState.default().identities().create("mallory", None, CHEAP_KDF)
    fails(
        run(env, "grant", "alice", "team/*", "read", "--admin-key", "mallory"), 15, "not a pinned admin key"
    )
