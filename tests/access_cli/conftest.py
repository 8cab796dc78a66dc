"""Fixtures of the capability-check tests: the world of accessworld.py, built through the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from accessworld import ARTIFACTS, CHEAP_KDF, PASSPHRASE, PRINCIPALS, World

import vault
from vault.clientstate import ClientState


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


@pytest.fixture
def world(tmp_path: Path, catalog_url: str | None) -> Iterator[World]:
    path, src = tmp_path / "v", tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"model bytes" * 100)
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url) as v:
        for name in ARTIFACTS:
            v.push(src, name)
    env = {"MLVAULT_VAULT": str(path)}
    if catalog_url:
        env["MLVAULT_CATALOG"] = catalog_url
    w = World(path, src, env, Path(os.environ["MLVAULT_CONFIG_DIR"]))
    for name in (*PRINCIPALS, "eve"):
        w.ok(None, "identity", "new", name, "--no-passphrase")
    # frank: an identity whose private keys need a passphrase that no test ever gives
    ClientState.default().identities().create("frank", b"frank's secret", CHEAP_KDF)
    admin = ("--admin-key", "root")
    for name in PRINCIPALS:
        w.ok(None, "principal", "add", name, "--identity", w.pub(name), *admin)
    w.ok(None, "grant", "root", "*", "admin", *admin)
    w.ok(None, "grant", "alice", "team/*", "list,read,push,tag,sign", *admin)
    w.ok(None, "grant", "ci", "team/vision/+", "push,list", *admin)
    w.ok(None, "grant", "bob", "*", "admin", *admin)
    w.ok(None, "deny", "bob", "team/secret/*", *admin)
    w.ok(None, "grant", "dave", "team/*", "read,list", *admin)
    w.ok(None, "revoke", "dave", "team/*", "read,list", *admin)
    yield w
