"""Alembic migrations: an older catalog is upgraded on open, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

import mlvault_migrations as migrations
from vault.catalog import open_catalog
from vault.catalog.migrate import head_revision


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _revision(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def test_old_catalog_is_upgraded_on_open(empty_catalog: str) -> None:
    command.upgrade(_config(empty_catalog), "0001")
    assert _revision(empty_catalog) == "0001"
    assert head_revision() != "0001", "this test needs at least two revisions"
    catalog = open_catalog(empty_catalog)
    try:
        catalog.set_info("vault_id", "ab" * 16)
        assert catalog.get_info("vault_id") == "ab" * 16
    finally:
        catalog.close()
    assert _revision(empty_catalog) == head_revision()


def test_fresh_catalog_matches_the_schema_module(empty_catalog: str) -> None:
    """The migrations create exactly the tables vault/catalog/schema.py declares."""
    from vault.catalog.schema import metadata

    open_catalog(empty_catalog).close()
    engine = create_engine(empty_catalog)
    try:
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert tables == set(metadata.tables)


def test_every_revision_downgrades_and_upgrades_again(empty_catalog: str) -> None:
    cfg = _config(empty_catalog)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert _revision(empty_catalog) == head_revision()


def test_the_fast_path_head_constant_matches_the_scripts() -> None:
    from vault.catalog.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION
