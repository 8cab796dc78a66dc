"""A provenance refusal (exit 13) is a failed verification: one audit row per refusal, whether
``pull``, ``show`` or ``verify`` met it (the nested recording in ``verify`` adds no second row)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams

CHEAP_KDF = KdfParams(1, 8, 1)
PASSPHRASE = "audit provenance refusals"
ADMIN = ("--admin-key", "root")


def test_each_provenance_refusal_leaves_one_verify_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    path, src = tmp_path / "v", tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"v1")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
        v1 = v.catalog.resolve("team/model", number=1).id
    state = ClientState.default()
    state.identities().create("root", None, CHEAP_KDF)
    (tmp_path / "alice.pub").write_bytes(state.identities().create("alice", None, CHEAP_KDF).encode())
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    for args in (
        ("principal", "add", "alice", "--identity", str(tmp_path / "alice.pub"), *ADMIN),
        ("grant", "alice", "team/*", "read,push", *ADMIN),
    ):
        assert run(*args).exit_code == 0
    engine = create_engine(f"sqlite:///{path / 'catalog.sqlite'}")
    with engine.begin() as conn:  # a catalog writer's version 2: no provenance record vouches for it
        conn.execute(
            text(
                "INSERT INTO versions (id, artifact_id, number, digest, size, file_count, root, ring_id,"
                " created_by, created_at) SELECT :id, artifact_id, 2, digest, size, file_count, root,"
                " ring_id, 'mallory', created_at FROM versions WHERE id = :v1"
            ),
            {"id": "f0" * 16, "v1": v1},
        )
    engine.dispose()

    def verify_rows() -> list[tuple[str, str, str]]:
        result = run("audit", "ls", "--action", "verify", "--json")
        assert result.exit_code == 0, result.stderr
        return [(r["target"], r["outcome"], r["details"]["error"]) for r in json.loads(result.stdout)]

    refused = ("team/model@v2", "failed", "ProvenanceRefusedError")
    assert run("pull", "--no-verify", "team/model@v2", str(tmp_path / "out")).exit_code == 13
    assert verify_rows() == [refused]
    assert run("verify", "team/model@v2").exit_code == 13
    assert run("show", "team/model@v2").exit_code == 13
    assert verify_rows() == [refused] * 3
    assert run("pull", "--no-verify", "team/model@v1", str(tmp_path / "out1")).exit_code == 0
    assert len(verify_rows()) == 3
