"""``mlvault identity new / ls / export``: identities in the config directory, through the real CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault.clientstate import ClientState
from vault.clientstate.identities import PublicIdentity

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
SECRET = "identity secret"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith("MLVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(tmp_path / "config"))


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def test_new_ls_export(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    alice = ok(run("identity", "new", "alice", *FAST_KDF, "--identity-passphrase-file", str(secret_file)))
    assert "created identity alice (encrypted with Argon2id)" in alice.stdout
    ci = ok(run("identity", "new", "ci", "--no-passphrase"))
    assert "unencrypted, mode 0600" in ci.stdout

    ids = ClientState(tmp_path / "config").identities()
    alice_fp = ids.public("alice").fingerprint
    assert f"fingerprint {alice_fp}" in alice.stdout
    assert stat.S_IMODE((ids.directory / "ci.id").stat().st_mode) == 0o600

    rows = json.loads(ok(run("identity", "ls", "--json")).stdout)
    assert [(r["name"], r["fingerprint"], r["encrypted"]) for r in rows] == [
        ("alice", alice_fp, True),
        ("ci", ids.public("ci").fingerprint, False),
    ]
    table = ok(run("identity", "ls")).stdout
    assert "alice" in table and alice_fp in table and "yes" in table and "no" in table

    exported = ok(run("identity", "export", "alice", "--public")).stdout
    assert PublicIdentity.parse(exported.encode()) == ids.public("alice")
    assert exported.encode() == (ids.directory / "alice.pub").read_bytes()
    # the passphrase from the file opens it; the environment variable works the same way
    assert ids.load("alice", lambda: SECRET.encode()).name == "alice"


def test_passphrase_from_the_environment() -> None:
    ok(run("identity", "new", "bob", *FAST_KDF, env={"MLVAULT_IDENTITY_PASSPHRASE": SECRET}))
    assert json.loads(ok(run("identity", "ls", "--json")).stdout)[0]["encrypted"] is True


def test_no_passphrase_source_and_no_terminal_is_exit_4() -> None:
    result = run("identity", "new", "bob", *FAST_KDF)
    assert result.exit_code == 4
    assert "MLVAULT_IDENTITY_PASSPHRASE" in result.stderr and "--identity-passphrase-file" in result.stderr


def test_an_existing_name_is_refused_like_key_new() -> None:
    ok(run("identity", "new", "alice", "--no-passphrase"))
    again = run("identity", "new", "alice", "--no-passphrase")
    key_first = ok(run("key", "new", "k", "--unencrypted"))
    key_again = run("key", "new", "k", "--unencrypted")
    assert key_first.exit_code == 0
    assert again.exit_code == key_again.exit_code == 6
    assert "identity alice already exists" in again.stderr


def test_bad_names_and_missing_identities() -> None:
    bad = run("identity", "new", "../evil", "--no-passphrase")
    assert bad.exit_code == 2 and "invalid identity name" in bad.stderr
    missing = run("identity", "export", "nobody", "--public")
    assert missing.exit_code == 3


def test_private_export_is_not_offered() -> None:
    ok(run("identity", "new", "alice", "--no-passphrase"))
    result = run("identity", "export", "alice")
    assert result.exit_code == 2
    assert "private keys is not offered" in result.stderr
    assert result.stdout == ""


def test_ls_with_no_identities() -> None:
    assert json.loads(ok(run("identity", "ls", "--json")).stdout) == []
