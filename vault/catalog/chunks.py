"""The chunk index and the packs table: where each chunk record is stored.

A pack row and its chunk rows are written in one transaction; the first writer of a
chunk id (per keyring) wins. Locations read back are checked (:mod:`vault.catalog.values`):
ids, offsets and lengths in range and, where the catalog knows the pack, inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select

from vault.catalog import values
from vault.catalog.engine import Aggregate, now
from vault.catalog.rows import ChunkLocation, PackChunk, PackRow
from vault.catalog.schema import chunks, packs
from vault.errors import IntegrityError

_LOOKUP_BATCH = 500


def insert_pack_row(conn: Connection, pack: PackRow) -> None:
    """Insert the row of a stored pack (inside the caller's transaction)."""
    conn.execute(
        packs.insert().values(
            id=pack.id, ring_id=pack.ring_id, size=pack.size, chunk_count=pack.chunk_count, created_at=now()
        )
    )


class ChunkIndex(Aggregate):
    """Chunk id → location, and the packs those locations are in."""

    def lookup_chunks(self, ring_id: str, chunk_ids: Iterable[bytes]) -> dict[bytes, ChunkLocation]:
        """Locations of those ``chunk_ids`` the index knows."""
        wanted = list(dict.fromkeys(chunk_ids))
        found: dict[bytes, ChunkLocation] = {}
        query = select(chunks.c.chunk_id, chunks.c.pack_id, chunks.c.offset, chunks.c.length, packs.c.size)
        query = query.outerjoin(packs, packs.c.id == chunks.c.pack_id)
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[start : start + _LOOKUP_BATCH]
                rows = conn.execute(query.where(chunks.c.ring_id == ring_id, chunks.c.chunk_id.in_(batch)))
                for row in rows:
                    chunk_id = values.a_chunk_id(row.chunk_id, "a chunk row")
                    where = f"chunk {chunk_id.hex()}"
                    size = (
                        None
                        if row.size is None
                        else values.a_count(row.size, where, "pack size", values.MAX_PACK_SIZE)
                    )
                    found[chunk_id] = ChunkLocation(
                        *values.a_location(row.pack_id, row.offset, row.length, where, size)
                    )
        return found

    def add_pack(self, pack: PackRow, entries: Sequence[tuple[bytes, int, int]]) -> None:
        """Record a stored pack and index its chunks (first writer of a chunk id wins)."""
        with self._engine.begin() as conn:
            insert_pack_row(conn, pack)
            if entries:
                conn.execute(
                    self._insert(chunks).on_conflict_do_nothing(),
                    [
                        {
                            "ring_id": pack.ring_id,
                            "chunk_id": cid,
                            "pack_id": pack.id,
                            "offset": off,
                            "length": ln,
                        }
                        for cid, off, ln in entries
                    ],
                )

    def all_packs(self, problems: list[IntegrityError] | None = None) -> list[PackRow]:
        """Every pack the catalog knows; with ``problems``, malformed rows go there instead of raising."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(packs.c.id, packs.c.ring_id, packs.c.size, packs.c.chunk_count)).all()
        result = []
        for row in rows:
            try:
                result.append(_pack_row(row.id, row.ring_id, row.size, row.chunk_count))
            except IntegrityError as exc:
                if problems is None:
                    raise
                problems.append(exc)
        return result

    def pack_chunks(self, pack_id: str) -> list[PackChunk]:
        """The chunk records the index places in ``pack_id``."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(chunks.c.chunk_id, chunks.c.offset, chunks.c.length).where(chunks.c.pack_id == pack_id)
            ).all()
        result = []
        for row in rows:
            chunk_id = values.a_chunk_id(row.chunk_id, f"a chunk row of pack {pack_id}")
            _, offset, length = values.a_location(pack_id, row.offset, row.length, f"chunk {chunk_id.hex()}")
            result.append(PackChunk(chunk_id, offset, length))
        return result


def _pack_row(pack_id: object, ring_id: object, size: object, chunk_count: object) -> PackRow:
    checked = values.an_id(pack_id, "a pack row", "the id")
    where = f"pack {checked}"
    return PackRow(
        checked,
        values.an_id(ring_id, where, "ring id"),
        values.a_count(size, where, "size", values.MAX_PACK_SIZE),
        values.a_count(chunk_count, where, "chunk count", values.MAX_PACK_ENTRIES),
    )
