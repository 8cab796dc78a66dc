"""``mlvault audit verify`` names a checkpoint signed by a key the vault does not know (exit 5)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault import layout
from vault.audit.checkpoint import Checkpoint, encode_checkpoint
from vault.audit.log import CheckpointSigner, make_checkpoint
from vault.signing.keys import fingerprint, generate_private_key

PASSPHRASE = "cli checkpoint signers"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


def test_a_planted_checkpoint_by_an_unknown_key_fails_audit_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLVAULT_VAULT", "MLVAULT_CATALOG", "MLVAULT_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(tmp_path / "config"))
    vault_dir, model = tmp_path / "vault", tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(vault_dir)}

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    assert run("init", str(vault_dir), *FAST_KDF).exit_code == 0
    assert run("push", str(model), "team/m", "-q").exit_code == 0
    assert run("audit", "verify").exit_code == 0
    with sqlite3.connect(vault_dir / "catalog.sqlite") as conn:
        seq, chain_hash = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    stranger = generate_private_key()
    vault_id = bytes.fromhex(json.loads((vault_dir / "config").read_bytes())["vault_id"])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    # a storage writer plants a validly signed checkpoint for the next row; its key is the problem
    planted = make_checkpoint(
        vault_id, Checkpoint(seq + 1, bytes.fromhex(chain_hash)), at, CheckpointSigner(stranger)
    )
    (vault_dir / layout.audit_checkpoint_key(seq + 1)).write_bytes(encode_checkpoint(planted))
    result = run("audit", "verify")
    assert result.exit_code == 5, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert f"checkpoint at row {seq + 1} is not trusted" in error[0]
    assert f"unknown key {fingerprint(stranger.public_key())[:16]}" in error[0]
