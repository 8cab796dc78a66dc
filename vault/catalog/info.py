"""The vault_info table: which vault a catalog belongs to, as key → value pairs set once."""

from __future__ import annotations

from sqlalchemy import select

from vault.catalog.engine import Aggregate
from vault.catalog.schema import vault_info
from vault.errors import ConflictError


class VaultInfo(Aggregate):
    """Read and set-once the vault_info values."""

    def get_info(self, key: str) -> str | None:
        """A value from the vault_info table, or None if it was never set."""
        with self._engine.connect() as conn:
            value = conn.scalar(select(vault_info.c.value).where(vault_info.c.key == key))
        return None if value is None else str(value)

    def set_info(self, key: str, value: str) -> None:
        """Insert a vault_info value once; ConflictError if it exists with another value."""
        with self._engine.begin() as conn:
            existing = conn.scalar(select(vault_info.c.value).where(vault_info.c.key == key))
            if existing is None:
                conn.execute(vault_info.insert().values(key=key, value=value))
            elif existing != value:
                raise ConflictError(f"catalog already belongs to another vault ({key}={existing})")
