"""``mlvault push`` scans first: a dangerous file is refused (exit 18, one line, nothing stored);
``--allow-unsafe`` stores it and records that in the version's metadata; a clean push records nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import scancorpus as corpus
from typer.testing import CliRunner, Result

from mlvault_cli.main import app

PASSPHRASE = "scan push passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


@pytest.fixture
def vrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_url: str | None) -> Callable[..., Result]:
    for name in ("MLVAULT_VAULT", "MLVAULT_CATALOG", "MLVAULT_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "vault"
    init = ["init", str(path), *FAST_KDF] + (["--catalog", catalog_url] if catalog_url else [])
    result = CliRunner().invoke(app, init, env={"MLVAULT_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output

    def invoke(*args: str) -> Result:
        env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


def test_push_refuses_then_allow_unsafe_records(vrun: Callable[..., Result], tmp_path: Path) -> None:
    model = corpus.write(
        tmp_path / "model", corpus.clean() | {"extra.pt": corpus.malicious()["torch_model.pt"]}
    )
    refused = vrun("push", str(model), "team/m", "--quiet")
    assert refused.exit_code == 18
    assert refused.stderr.startswith("error: refusing to push: extra.pt (pytorch-zip) imports posix.system")
    assert refused.stderr.count("\n") == 1
    assert json.loads(vrun("ls", "--json").stdout) == []

    clean = vrun("push", str(corpus.write(tmp_path / "clean", corpus.clean())), "team/m", "--quiet", "--json")
    assert clean.exit_code == 0, clean.output
    shown = json.loads(vrun("show", "team/m@v1", "--json").stdout)
    assert not any(k.startswith("mlvault.scan") for k in shown["metadata"])

    allowed = vrun("push", str(model), "team/m", "--quiet", "--allow-unsafe")
    assert allowed.exit_code == 0, allowed.output
    metadata = json.loads(vrun("show", "team/m@v2", "--json").stdout)["metadata"]
    assert metadata["mlvault.scan"].startswith("dangerous, pushed with --allow-unsafe (picklescan 1.")
    assert metadata["mlvault.scan.dangerous"] == "extra.pt"
