"""Through the CLI: after ``mlvault init`` the owner identity signs trust and access policy changes when
no ``--admin-key`` is given; a separately named admin key may sign the first policy only (the owner
key holder names it, and it is pinned beside the owner), and afterwards an unpinned key is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.access.service import access_pins
from vault.clientstate import ClientState
from vault.keys import owner_identity

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(path: Path, *args: str) -> Result:
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, says: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert says in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "v"
    ok(run(path, "init", str(path), *FAST_KDF))
    for name in ("signer", "other"):
        ok(run(path, "key", "new", name, "--unencrypted"))
    public = ClientState.default().identities().create("alice", None, owner_identity_kdf())
    (tmp_path / "alice.pub").write_bytes(public.encode())
    return path


def owner_identity_kdf() -> vault.KdfParams:
    return vault.KdfParams(1, 8, 1)


def owner_fingerprint(path: Path) -> str:
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        return owner_identity.owner_identity(
            v.keys, v.backend, create_missing=False
        ).public.signing_fingerprint


def key_pub(name: str) -> str:
    return str(ClientState.default().keys_dir / f"{name}.pub")


def test_the_owner_signs_both_policies_by_default(path: Path, tmp_path: Path) -> None:
    fp = owner_fingerprint(path)
    added = ok(run(path, "trust", "add", "team/*", "--key", key_pub("signer")))
    assert "pinned trust-policy admin key" not in added.stderr  # pinned by init, not on first use
    shown = json.loads(ok(run(path, "trust", "show", "--json")).stdout)
    assert (shown["serial"], shown["admin_fingerprint"]) == (1, fp)
    ok(run(path, "principal", "add", "alice", "--identity", str(tmp_path / "alice.pub")))
    granted = ok(run(path, "grant", "alice", "team/*", "read"))
    assert f"signed by {fp}" in granted.stdout
    fails(
        run(path, "trust", "add", "team/*", "--key", key_pub("other"), "--admin-key", "other"),
        13,
        "not the pinned",
    )
    fails(run(path, "grant", "alice", "x/*", "read", "--admin-key", "other"), 15, "not a pinned admin key")


def test_a_named_admin_key_may_sign_the_first_policy_only(path: Path) -> None:
    fp = owner_fingerprint(path)
    added = ok(run(path, "trust", "add", "team/*", "--key", key_pub("signer"), "--admin-key", "other"))
    assert "pinned trust-policy admin key" in added.stderr
    vid = vault.open_vault(str(path)).config.vault_id
    assert set(ClientState.default().trust_pins.admins(vid)) == {
        fp,
        ClientState.default().signing_keys().signer("other", lambda: b"").fingerprint(),
    }
    ok(run(path, "trust", "remove", "team/*"))  # the owner still signs (serial 2)
    assert json.loads(ok(run(path, "trust", "show", "--json")).stdout)["admin_fingerprint"] == fp
    assert access_pins(ClientState.default()).admins(vid) == (fp,)
