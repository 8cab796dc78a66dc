"""A hostile version row is reported against that version; check still walks every other version.

Whoever can write the catalog database can put anything in one row. ``check`` must not let
one such row hide the state of the rest of the vault: the bad row becomes a problem that
names its version, and every other version is checked as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import vault
from vault.layout import manifest_key


def _two_versions(make_vault: Callable[..., vault.Vault], tmp_path: Path) -> vault.Vault:
    v = make_vault()
    for name in ("a", "b"):
        src = tmp_path / f"src-{name}"
        src.mkdir()
        (src / "weights.bin").write_bytes(name.encode() * 300_000)
        v.push(src, f"team/{name}")
    return v


def _sqlite(v: vault.Vault, statement: str) -> None:
    """Run ``statement`` on the vault's SQLite catalog behind mlvault's back, foreign keys off."""
    database = make_url(v.catalog.display_url).database
    assert database
    conn = sqlite3.connect(database)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        assert conn.execute(statement).rowcount == 1
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("read_data", [False, True])
def test_a_hostile_version_id_does_not_stop_the_walk(
    make_vault: Callable[..., vault.Vault], tmp_path: Path, read_data: bool
) -> None:
    v = _two_versions(make_vault, tmp_path)
    other = v.resolve("team/b")
    _sqlite(v, f"UPDATE versions SET id = '../config' WHERE id = '{v.resolve('team/a').id}'")

    report = v.check(read_data=read_data)

    assert not report.ok
    hostile = [p for p in report.problems if "team/a@v1" in p]
    assert hostile and "the id '../config'" in hostile[0], report.problems
    assert report.versions_checked == 1
    assert not any("team/b" in p for p in report.problems), report.problems
    if read_data:
        assert report.chunks_checked > 0 and report.damaged_files == []
    assert v.backend.exists(manifest_key(other.id))


def test_the_other_version_is_still_checked(make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    v = _two_versions(make_vault, tmp_path)
    bad, other = v.resolve("team/a"), v.resolve("team/b")
    _sqlite(v, f"UPDATE versions SET digest = 'not-hex' WHERE id = '{bad.id}'")
    v.backend.delete(manifest_key(other.id))

    report = v.check(read_data=False)

    assert any(bad.id in p and "digest 'not-hex'" in p for p in report.problems), report.problems
    assert "team/b@v1: manifest is missing from storage" in report.problems
    assert "team/b@v1: (all files)" in report.damaged_files
