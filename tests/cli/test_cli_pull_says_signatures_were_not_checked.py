"""A pull that no trust rule covered says so: "signatures: not checked", never silence."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mlvault_cli.main import app

PASSPHRASE = "cli test passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


def test_pull_says_when_no_trust_rule_covered_the_artifact(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(tmp_path / "v")}
    assert runner.invoke(app, ["init", str(tmp_path / "v"), *FAST_KDF], env=env).exit_code == 0
    (tmp_path / "m.bin").write_bytes(b"weights")
    assert runner.invoke(app, ["push", "-q", str(tmp_path / "m.bin"), "team/m"], env=env).exit_code == 0
    result = runner.invoke(app, ["pull", "team/m", str(tmp_path / "out.bin")], env=env)
    assert result.exit_code == 0, result.output
    assert "signatures: not checked" in result.stderr
