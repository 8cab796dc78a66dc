"""Every value read from the catalog is checked at the catalog boundary.

Someone with write access to the catalog database edits rows; each read that meets a
hostile value raises an IntegrityError naming the row, never a ValueError, an OS error
from a wild offset, or an "invalid storage key" built from a hostile id.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

import vault
from vault.errors import IntegrityError

Tamper = Callable[[str], None]


def _one_chunk(v: vault.Vault) -> tuple[str, bytes, str]:
    with v.catalog.engine.connect() as conn:
        row = conn.execute(
            text("SELECT ring_id, chunk_id, pack_id FROM chunks ORDER BY pack_id LIMIT 1")
        ).one()
    return row.ring_id, bytes(row.chunk_id), row.pack_id


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ('"offset" = -100', "offset -100"),
        (f'"offset" = {(1 << 63) - 1}', f"offset {(1 << 63) - 1}"),
        ("length = -5", "length -5"),
        ("length = 0", "length 0"),
        ("length = 2000000000", "length 2000000000"),
        ('"offset" = 4294967000, length = 1000', r"the range 4294967000\+1000, past the end of pack"),
    ],
)
def test_hostile_chunk_locations(
    pushed: vault.Vault, tamper: Tamper, assignment: str, complaint: str
) -> None:
    ring, chunk_id, pack = _one_chunk(pushed)
    first = "(SELECT chunk_id FROM chunks ORDER BY pack_id LIMIT 1)"
    tamper(f"UPDATE chunks SET {assignment} WHERE chunk_id = {first}")
    with pytest.raises(IntegrityError, match=f"chunk {chunk_id.hex()} has {complaint}"):
        pushed.catalog.lookup_chunks(ring, [chunk_id])
    if "past the end" not in complaint:
        with pytest.raises(IntegrityError, match=f"chunk {chunk_id.hex()}"):
            pushed.catalog.pack_chunks(pack)


def test_a_chunk_naming_a_hostile_pack_id(pushed: vault.Vault, tamper: Tamper) -> None:
    ring, chunk_id, _ = _one_chunk(pushed)
    tamper("UPDATE chunks SET pack_id = '../config'")
    with pytest.raises(IntegrityError, match=r"chunk .* has pack id '\.\./config'"):
        pushed.catalog.lookup_chunks(ring, [chunk_id])


def test_a_hostile_version_id(pushed: vault.Vault, tamper: Tamper) -> None:
    tamper("UPDATE versions SET id = '../config'")
    for read in (
        lambda: pushed.catalog.resolve("team/m"),
        lambda: pushed.catalog.list_versions("team/m"),
        lambda: pushed.catalog.all_versions(),
    ):
        with pytest.raises(IntegrityError, match=r"version team/m@v1 has the id '\.\./config'"):
            read()
    problems: list[IntegrityError] = []
    assert pushed.catalog.all_versions(problems) == []
    assert len(problems) == 1 and "team/m@v1" in str(problems[0])


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("ring_id = 'zz'", "ring id 'zz'"),
        ("size = -1", "size -1"),
        ("file_count = 99999999", "file count 99999999"),
        ("number = 0", "number 0"),
        ("digest = 'not-hex'", "digest 'not-hex'"),
    ],
)
def test_hostile_version_values(pushed: vault.Vault, tamper: Tamper, assignment: str, complaint: str) -> None:
    version_id = pushed.catalog.resolve("team/m").id
    tamper(f"UPDATE versions SET {assignment}")
    with pytest.raises(IntegrityError, match=f"version {version_id} .* has {complaint}"):
        pushed.catalog.all_versions()


def test_a_hostile_keyring_id(pushed: vault.Vault, tamper: Tamper) -> None:
    tamper("UPDATE keyrings SET ring_id = 'zz'")
    with pytest.raises(IntegrityError, match="keyring of 'team' has ring id 'zz'"):
        pushed.catalog.keyring_for("team")
    with pytest.raises(IntegrityError, match="ring id 'zz'"):
        pushed.catalog.all_keyrings()


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("size = -7", "size -7"),
        ("chunk_count = 1000000", "chunk count 1000000"),
        ("ring_id = 'ZZ'", "ring id 'ZZ'"),
    ],
)
def test_hostile_pack_rows(pushed: vault.Vault, tamper: Tamper, assignment: str, complaint: str) -> None:
    tamper(f"UPDATE packs SET {assignment}")
    with pytest.raises(IntegrityError, match=f"pack [0-9a-f]{{32}} has {complaint}"):
        pushed.catalog.all_packs()
    problems: list[IntegrityError] = []
    assert pushed.catalog.all_packs(problems) == []
    assert problems


def test_hostile_file_rows(pushed: vault.Vault, tamper: Tamper) -> None:
    version_id = pushed.catalog.resolve("team/m").id
    tamper("UPDATE version_files SET size = -3 WHERE path = 'a.bin'")
    with pytest.raises(IntegrityError, match=f"version {version_id} file 'a.bin' has size -3"):
        pushed.catalog.version_details(version_id)


def test_untouched_catalog_reads_back(pushed: vault.Vault) -> None:
    version = pushed.catalog.resolve("team/m")
    assert pushed.catalog.all_versions() == [version]
    assert len(pushed.catalog.all_packs()) >= 1
    ring, chunk_id, pack = _one_chunk(pushed)
    location = pushed.catalog.lookup_chunks(ring, [chunk_id])[chunk_id]
    assert location.pack_id == pack and location.length > 0
