"""Fixtures for signing through the vault and the CLI: a real vault made by ``mlvault init``,
real keys made by ``mlvault key new``, and direct access to the catalog file for the tests
that play a catalog writer.

Every test gets its own config directory (``MLVAULT_CONFIG_DIR``), so pins and keys never
leak between tests or from the developer's machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import ARTIFACT, FAST_KDF, KEY_NAMES, PASSPHRASE, Keys, Run, ok
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault.catalog.signatures import SignatureCatalog
from vault.signing.keys import generate_private_key, public_key_pem, save_private_key


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MLVAULT_* from the developer's shell, a private config dir, a cwd without mlvault.toml."""
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith("MLVAULT_TEST_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config"
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(config))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return config


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def run(vault_dir: Path) -> Run:
    """``run(*args, env=None)`` → the CliRunner result, with the test vault and its passphrase set."""

    def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
        full_env: dict[str, str | None] = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(vault_dir)}
        full_env.update(env or {})
        return CliRunner().invoke(app, list(args), env=full_env, catch_exceptions=False)

    return invoke


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model whose names sort differently by path components than as strings."""
    root = tmp_path / "model"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").write_bytes(b"nested under a\n")
    (root / "a.b").write_bytes(b"a dot b\n")
    (root / "weights").mkdir()
    (root / "weights" / "model.safetensors").write_bytes(os.urandom(200_000))
    (root / "weights" / "empty.bin").write_bytes(b"")
    (root / "config.json").write_text('{"depth": 50}\n')
    return root


@pytest.fixture
def vault_ready(run: Run, vault_dir: Path, model_dir: Path) -> str:
    """A vault with ``team/vision/resnet@v1`` pushed; returns its reference."""
    ok(run("init", str(vault_dir), *FAST_KDF))
    ok(run("push", str(model_dir), ARTIFACT))
    return f"{ARTIFACT}@v1"


@pytest.fixture(scope="session")
def key_pairs() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {name: generate_private_key() for name in KEY_NAMES}


@pytest.fixture
def keys(clean_environment: Path, key_pairs: dict[str, ec.EllipticCurvePrivateKey], tmp_path: Path) -> Keys:
    """Unencrypted keys ``signer``, ``second``, ``other`` and ``admin`` in the config dir (as
    ``mlvault key new --unencrypted`` leaves them), with the public keys also exported elsewhere."""
    key_dir = clean_environment / "keys"
    key_dir.mkdir(parents=True)
    exported = tmp_path / "pub"
    exported.mkdir()
    for name, private in key_pairs.items():
        save_private_key(private, key_dir / f"{name}.key", passphrase=None)
        for directory in (key_dir, exported):
            directory.joinpath(f"{name}.pub").write_bytes(public_key_pem(private.public_key()))
    return Keys(exported)


@pytest.fixture
def catalog_engine(vault_dir: Path) -> Iterator[Engine]:
    """A plain engine on the vault's SQLite catalog: what a catalog writer has."""
    engine = create_engine(f"sqlite:///{vault_dir / 'catalog.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def catalog_writer(catalog_engine: Engine) -> SignatureCatalog:
    return SignatureCatalog(catalog_engine)
