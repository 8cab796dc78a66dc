"""vault.catalog.export: every table classified, rows round-trip, hostile rows and full catalogs refused."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault.catalog import open_catalog
from vault.catalog.export import EXPORTED, NOT_EXPORTED, export_rows, import_rows
from vault.catalog.schema import metadata
from vault.errors import ConflictError, IntegrityError


def test_every_table_is_exported_or_deliberately_not() -> None:
    names = [t.name for t in (*EXPORTED, *NOT_EXPORTED)]
    assert sorted(names) == sorted(metadata.tables) and len(set(names)) == len(names)


@pytest.fixture
def source(make_vault: Callable[..., vault.Vault], tmp_path: Path, catalog_url: str | None) -> vault.Vault:
    v = make_vault(catalog_url)
    data = tmp_path / "d"
    data.mkdir()
    (data / "w.bin").write_bytes(os.urandom(5000))
    v.push(data, "team/a", tags=["prod"], metadata={"k": "v"})
    v.push(data, "team/a", parents=["team/a@v1"])
    return v


def test_rows_round_trip_into_an_empty_catalog(source: vault.Vault, tmp_path: Path) -> None:
    rows = export_rows(source.catalog)
    fresh = open_catalog(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        assert import_rows(fresh, rows) == sum(len(t["rows"]) for t in rows.values())
        assert export_rows(fresh) == rows
        with pytest.raises(ConflictError):
            import_rows(fresh, rows)
        assert [v.id for v in fresh.all_versions()] == [v.id for v in source.catalog.all_versions()]
    finally:
        fresh.close()


@pytest.mark.parametrize(
    ("table", "mutate"),
    [
        ("versions", lambda t: t["rows"][0].__setitem__(t["columns"].index("size"), "big")),
        ("versions", lambda t: t["rows"][0].__setitem__(t["columns"].index("created_at"), "yesterday")),
        ("chunks", lambda t: t["rows"][0].__setitem__(t["columns"].index("chunk_id"), "zz")),
        ("tags", lambda t: t["rows"][0].__setitem__(t["columns"].index("name"), "x" * 1000)),
        ("artifacts", lambda t: t["columns"].append("evil")),
        ("keyrings", lambda t: t["rows"][0].__setitem__(t["columns"].index("namespace"), None)),
    ],
)
def test_hostile_rows_are_refused(
    source: vault.Vault, tmp_path: Path, table: str, mutate: Callable[..., None]
) -> None:
    rows = copy.deepcopy(export_rows(source.catalog))
    mutate(rows[table])
    fresh = open_catalog(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        with pytest.raises(IntegrityError):
            import_rows(fresh, rows)
        assert fresh.all_versions() == []
    finally:
        fresh.close()


def test_an_unknown_table_is_refused(source: vault.Vault, tmp_path: Path) -> None:
    rows = {**export_rows(source.catalog), "secrets": {"columns": [], "rows": []}}
    fresh = open_catalog(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        with pytest.raises(IntegrityError, match="secrets"):
            import_rows(fresh, rows)
    finally:
        fresh.close()
