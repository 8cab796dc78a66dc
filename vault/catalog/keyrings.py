"""The keyrings table: which keyring encrypts each top-level namespace."""

from __future__ import annotations

from sqlalchemy import select

from vault.catalog import values
from vault.catalog.engine import Aggregate, now
from vault.catalog.schema import keyrings


class KeyringIndex(Aggregate):
    """namespace → keyring id, first writer wins."""

    def keyring_for(self, namespace: str) -> str | None:
        """The keyring id of a top-level namespace, if it has one."""
        with self._engine.connect() as conn:
            ring = conn.scalar(select(keyrings.c.ring_id).where(keyrings.c.namespace == namespace))
        return None if ring is None else values.an_id(ring, f"keyring of {namespace!r}", "ring id")

    def add_keyring(self, namespace: str, ring_id: str) -> str:
        """Register a keyring for ``namespace``; returns the winner if another push raced us."""
        with self._engine.begin() as conn:
            conn.execute(
                self._insert(keyrings)
                .values(ring_id=ring_id, namespace=namespace, created_at=now())
                .on_conflict_do_nothing()
            )
            winner = conn.execute(
                select(keyrings.c.ring_id).where(keyrings.c.namespace == namespace)
            ).scalar_one()
        return values.an_id(winner, f"keyring of {namespace!r}", "ring id")

    def all_keyrings(self) -> dict[str, str]:
        """namespace → ring id."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(keyrings.c.namespace, keyrings.c.ring_id)).all()
        return {r.namespace: values.an_id(r.ring_id, f"keyring of {r.namespace!r}", "ring id") for r in rows}
