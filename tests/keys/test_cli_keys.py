"""``mlvault keys …`` and the global ``--identity`` / ``--kms`` options through Typer's CliRunner.

Each command once, every error one line with its documented exit code, and the global options
both before and after the command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, new_identity
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.clientstate import ClientState

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "0.01", "--kdf-parallelism", "1"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"model bytes")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
        v.push(src, "research/model")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, says: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and says in line, line
    return line


PW = {"MLVAULT_PASSPHRASE": PASSPHRASE}


def public_file(tmp_path: Path, name: str) -> Path:
    new_identity(name)
    path = tmp_path / f"{name}.pub"
    path.write_bytes(ClientState.default().identities().public(name).encode())
    return path


def slots(vault_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok(run("keys", "ls", "--json", "--vault", str(vault_dir))).stdout)
    return rows


def test_ls_lists_every_slot(vault_dir: Path) -> None:
    rows = slots(vault_dir)
    assert sorted((r["kind"], r["opens"], r["namespace"]) for r in rows) == [
        ("owner", "keyring", "research"),
        ("owner", "keyring", "team"),
        ("passphrase", "owner", None),
    ]
    table = ok(run("--vault", str(vault_dir), "keys", "ls")).stdout
    assert "passphrase" in table and "namespace team" in table


def test_add_passphrase_then_open_with_it(vault_dir: Path, tmp_path: Path) -> None:
    env = {**PW, "MLVAULT_NEW_PASSPHRASE": "second one"}
    added = ok(
        run("keys", "add-passphrase", "--label", "laptop", *FAST_KDF, "--vault", str(vault_dir), env=env)
    )
    slot_id = added.stdout.split()[-1]
    assert {r["slot_id"]: r["label"] for r in slots(vault_dir)}[slot_id] == "laptop"
    ok(
        run(
            "pull",
            "team/model",
            str(tmp_path / "o"),
            "-V",
            str(vault_dir),
            env={"MLVAULT_PASSPHRASE": "second one"},
        )
    )


def test_add_passphrase_refuses_slow_kdf(vault_dir: Path) -> None:
    env = {**PW, "MLVAULT_NEW_PASSPHRASE": "x"}
    slow = ["--kdf-time", "13", "--kdf-memory-mib", "64", "--kdf-parallelism", "4"]
    fails(run("keys", "add-passphrase", *slow, "-V", str(vault_dir), env=env), 2, "--allow-slow-kdf")


def test_recipient_identity_reads_its_namespace_only(vault_dir: Path, tmp_path: Path) -> None:
    alice = public_file(tmp_path, "alice")
    done = ok(run("keys", "add-recipient", str(alice), "--namespace", "team", "-V", str(vault_dir), env=PW))
    assert "can read and push namespace team" in done.stdout
    ok(run("--identity", "alice", "pull", "team/model", str(tmp_path / "a"), "-V", str(vault_dir)))
    ok(run("pull", "team/model", str(tmp_path / "b"), "-V", str(vault_dir), "--identity", "alice"))
    ok(
        run(
            "pull", "team/model", str(tmp_path / "c"), "-V", str(vault_dir), env={"MLVAULT_IDENTITY": "alice"}
        )
    )
    identity_file = ClientState.default().identities().find("alice")
    ok(run("pull", "team/model", str(tmp_path / "d"), "-V", str(vault_dir), "--identity", str(identity_file)))
    fails(
        run("pull", "research/model", str(tmp_path / "r"), "-V", str(vault_dir), "--identity", "alice"),
        4,
        "no key slot you can open for namespace research",
    )
    assert not (tmp_path / "r").exists()


def test_wrong_identity_exits_4(vault_dir: Path, tmp_path: Path) -> None:
    new_identity("mallory")
    fails(
        run("pull", "team/model", str(tmp_path / "o"), "-V", str(vault_dir), "--identity", "mallory"),
        4,
        "no key slot you can open for namespace team",
    )
    fails(
        run("pull", "team/model", str(tmp_path / "o"), "-V", str(vault_dir), "--identity", "nobody"),
        3,
        "nobody",
    )


def test_recipient_help_says_write_implies_read() -> None:
    assert "READ AND PUSH" in ok(run("keys", "add-recipient", "--help")).stdout


def test_add_recovery_and_rm(vault_dir: Path, tmp_path: Path) -> None:
    backup = public_file(tmp_path, "backup")
    ok(run("keys", "add-recovery", str(backup), "-V", str(vault_dir), env=PW))
    rows = slots(vault_dir)
    (recovery,) = [r for r in rows if r["kind"] == "x25519"]
    assert (recovery["opens"], recovery["label"]) == ("owner", "recovery")
    (passphrase,) = [r["slot_id"] for r in rows if r["kind"] == "passphrase"]
    # the recovery identity alone opens everything
    ok(run("pull", "research/model", str(tmp_path / "r"), "-V", str(vault_dir), "--identity", "backup"))
    ok(run("keys", "rm", passphrase, "-V", str(vault_dir), "--identity", "backup"))
    fails(
        run("keys", "rm", recovery["slot_id"], "-V", str(vault_dir), "--identity", "backup"),
        2,
        "last slot that can open the vault's owner key",
    )
    fails(run("keys", "rm", "nope", "-V", str(vault_dir), env=PW), 2, "invalid slot id")
    fails(run("keys", "rm", "ab" * 16, "-V", str(vault_dir), env=PW), 3, "no key slot")


def test_add_recipient_refuses_a_bad_public_file(vault_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("{}")
    fails(
        run("keys", "add-recipient", str(bad), "--namespace", "team", "-V", str(vault_dir), env=PW),
        2,
        "bad.pub",
    )
    fails(
        run(
            "keys",
            "add-recipient",
            str(tmp_path / "missing.pub"),
            "--namespace",
            "team",
            "-V",
            str(vault_dir),
        ),
        2,
        "cannot read public identity",
    )
    good = public_file(tmp_path, "carol")
    fails(
        run("keys", "add-recipient", str(good), "--namespace", "a/b", "-V", str(vault_dir), env=PW),
        2,
        "namespace",
    )


def test_kms_slot_through_the_cli(
    vault_dir: Path, tmp_path: Path, kms_admin: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    key_id = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["KeyId"]
    done = ok(run("keys", "add-kms", key_id, "--label", "ci", "-V", str(vault_dir), env=PW))
    assert "added aws-kms slot" in done.stdout
    (row,) = [r for r in slots(vault_dir) if r["kind"] == "aws-kms"]
    assert row["kms_key_id"].endswith(key_id) and row["label"] == "ci"
    ok(run("pull", "team/model", str(tmp_path / "auto"), "-V", str(vault_dir)))  # no passphrase: KMS
    ok(run("--kms", "pull", "team/model", str(tmp_path / "explicit"), "-V", str(vault_dir)))
    ok(run("pull", "team/model", str(tmp_path / "after"), "-V", str(vault_dir), "--kms"))
    kms_admin.disable_key(KeyId=key_id)  # moto ignores key state; the refusals are in test_keys_kms.py
    fails(run("keys", "add-kms", "alias/none", "-V", str(vault_dir), env=PW), 4, "no usable key")
