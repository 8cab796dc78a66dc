"""Catalog schema on open: created or upgraded when older, refused when newer, bound to its vault."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE, write_random
from sqlalchemy import create_engine, text

import vault
from vault.catalog import migrate
from vault.errors import CatalogTooNewError, ConfigurationError

MakeVault = Callable[..., vault.Vault]


def _catalog_engine_url(v: vault.Vault) -> str:
    return v.catalog.engine.url.render_as_string(hide_password=False)


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def test_new_catalog_is_at_head(make_vault: MakeVault, catalog_url: str | None) -> None:
    v = make_vault(catalog_url=catalog_url)
    assert _revision(_catalog_engine_url(v)) == migrate.head_revision()


def test_newer_catalog_is_refused_untouched(
    make_vault: MakeVault, catalog_url: str | None, tmp_path: Path
) -> None:
    v = make_vault(catalog_url=catalog_url)
    v.push(write_random(tmp_path / "f.bin", 1000, seed=41), "team/model")
    url, db = v.backend.url, _catalog_engine_url(v)
    v.close()
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))
    engine.dispose()

    with pytest.raises(CatalogTooNewError, match="upgrade mlvault") as info:
        vault.open_vault(url, passphrase=PASSPHRASE, catalog_url=catalog_url)
    assert isinstance(info.value, ConfigurationError) and info.value.exit_code == 8
    assert _revision(db) == "f00dfeed9999"  # nothing was migrated or stamped


def test_empty_catalog_is_created_on_open(make_vault: MakeVault, tmp_path: Path) -> None:
    """A catalog with no schema at all (the oldest possible) is brought to head when opened."""
    v = make_vault()
    url = v.backend.url
    v.close()
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    create_engine(fresh).dispose()
    with vault.open_vault(url, passphrase=PASSPHRASE, catalog_url=fresh) as reopened:
        assert reopened.list_artifacts() == []
        assert reopened.catalog.get_info("vault_id") == reopened.config.vault_id
    assert _revision(fresh) == migrate.head_revision()


def test_catalog_of_another_vault_is_refused(make_vault: MakeVault) -> None:
    first, second = make_vault(), make_vault()
    with pytest.raises(ConfigurationError, match="belongs to vault"):
        vault.open_vault(first.backend.url, passphrase=PASSPHRASE, catalog_url=_catalog_engine_url(second))
