"""Repository operations: push, pull and check (later gc, rebuild, copy), one module each.

An operation receives a :class:`Repository` — the storage backend, the catalog, the key
cache and the vault config, nothing else — never the :class:`vault.service.Vault` facade,
so each one can be read, tested and reused on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from vault.catalog import Catalog
from vault.formats.config import VaultConfig
from vault.keycache import KeyCache
from vault.storage import Backend


@dataclass(frozen=True)
class Repository:
    """The narrow parts an operation works on."""

    backend: Backend
    catalog: Catalog
    keys: KeyCache
    config: VaultConfig
    workers: int

    @property
    def vault_id(self) -> str:
        """The vault's id (hex)."""
        return self.config.vault_id
