"""Moving chunk index rows to re-encrypted packs (``rekey --reencrypt``).

A re-encryption writes every chunk of a namespace again, with the same chunk id, into new packs.
:class:`RelocatingCatalog` is the catalog a :class:`vault.repository.packs.PackWriter` is given for
that: its :meth:`~RelocatingCatalog.add_pack` records the new pack and points the existing index
rows of its chunks at it, in one transaction, instead of inserting rows (which would keep the old
location: the first writer of a chunk id wins). A pack is therefore never half moved, and a
re-encryption killed at any point leaves every row pointing at a stored record.

:meth:`~RelocatingCatalog.drop_vacated_packs` then forgets the pack rows of a keyring that no index
row points at any more: the old packs stay in storage for garbage collection, which treats a stored
pack the catalog does not list as unreferenced (``check`` reports it as a note).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, bindparam, exists, select, update

from vault.catalog.catalog import Catalog
from vault.catalog.chunks import insert_pack_row
from vault.catalog.rows import PackRow
from vault.catalog.schema import chunks, packs


class RelocatingCatalog(Catalog):
    """A catalog whose ``add_pack`` moves existing chunk rows into the new pack."""

    def add_pack(self, pack: PackRow, entries: Sequence[tuple[bytes, int, int]]) -> None:
        """Record ``pack`` and point the index rows of its chunks at it (one transaction)."""
        move = (
            update(chunks)
            .where(and_(chunks.c.ring_id == bindparam("ring"), chunks.c.chunk_id == bindparam("cid")))
            .values(pack_id=bindparam("pack"), offset=bindparam("off"), length=bindparam("len"))
        )
        with self._engine.begin() as conn:
            insert_pack_row(conn, pack)
            if entries:
                conn.execute(
                    move,
                    [
                        {"ring": pack.ring_id, "cid": cid, "pack": pack.id, "off": off, "len": ln}
                        for cid, off, ln in entries
                    ],
                )

    def drop_vacated_packs(self, ring_id: str) -> int:
        """Forget the pack rows of ``ring_id`` that no chunk row points at; returns how many."""
        unused = ~exists(select(chunks.c.pack_id).where(chunks.c.pack_id == packs.c.id))
        with self._engine.begin() as conn:
            result = conn.execute(packs.delete().where(packs.c.ring_id == ring_id, unused))
        return int(result.rowcount or 0)


def relocating(catalog: Catalog) -> RelocatingCatalog:
    """A :class:`RelocatingCatalog` on ``catalog``'s database (close ``catalog``, not this)."""
    return RelocatingCatalog(catalog.engine)
