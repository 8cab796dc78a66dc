"""Shared fixtures: cheap KDF parameters, vault factories, and catalog URLs.

Catalog-facing tests run on SQLite always and on PostgreSQL when
``MLVAULT_TEST_POSTGRES_URL`` points at a server (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a fresh database
created on that server and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import vault
from vault.crypto.kdf import KdfParams

# Explicit, deliberately weak Argon2id parameters: tests must stay fast. Production code
# has no way to lower them other than passing them like this.
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
POSTGRES_ENV = "MLVAULT_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolated_client_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep pins, keys and S3-vault catalogs of every test out of the real home directory."""
    home = tmp_path_factory.mktemp("client")
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture
def cheap_kdf() -> KdfParams:
    return CHEAP_KDF


def _postgres_database() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mlvault_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (skips without MLVAULT_TEST_POSTGRES_URL)."""
    yield from _postgres_database()


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (the vault's own SQLite file) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
    else:
        yield from _postgres_database()


@pytest.fixture
def make_vault(tmp_path: Path) -> Iterator[Callable[..., vault.Vault]]:
    """Factory: ``make_vault(catalog_url=None, **init_kwargs)`` → an open local vault."""
    opened: list[vault.Vault] = []

    def factory(catalog_url: str | None = None, **kwargs: object) -> vault.Vault:
        path = tmp_path / f"vault-{len(opened)}"
        v = vault.init_vault(
            str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url, **kwargs
        )  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield factory
    for v in opened:
        v.close()


@pytest.fixture
def local_vault(make_vault: Callable[..., vault.Vault]) -> vault.Vault:
    """An open local vault with a SQLite catalog."""
    return make_vault()
