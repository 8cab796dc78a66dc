"""Catalog tests run on a SQLite file and, with MLVAULT_TEST_POSTGRES_URL, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine

import vault

WRITE_ANY_ROW = "SET session_replication_role = replica"  # PostgreSQL: foreign keys not enforced


@pytest.fixture
def any_catalog_url(catalog_url: str | None, tmp_path: Path) -> str:
    """A fresh catalog URL: a SQLite file, or a fresh PostgreSQL database (the shared fixture)."""
    return catalog_url or f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture
def pushed(make_vault: Callable[..., vault.Vault], any_catalog_url: str, tmp_path: Path) -> vault.Vault:
    """An open vault whose catalog holds one pushed version team/m@v1 (two files, several chunks)."""
    v = make_vault(catalog_url=any_catalog_url)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(bytes(range(256)) * 4096)
    (src / "b.txt").write_bytes(b"hello\n" * 1000)
    v.push(src, "team/m")
    return v


@pytest.fixture
def tamper(pushed: vault.Vault) -> Iterator[Callable[[str], None]]:
    """``tamper(sql)``: run one statement on the catalog behind mlvault's back, as an attacker would."""
    engine = create_engine(pushed.catalog.engine.url)

    def run(sql: str) -> None:
        with engine.begin() as conn:
            _allow_any_row(conn)
            conn.exec_driver_sql(sql)

    yield run
    engine.dispose()


def _allow_any_row(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(WRITE_ANY_ROW)
