"""The Catalog: every query and write the vault makes, over one database, as one flat interface.

:func:`open_catalog` builds the engine (:mod:`vault.catalog.engine`: damage and driver
errors mapped there) and brings the schema to head (:mod:`vault.catalog.migrate`). The
queries live in one module per aggregate:

- :mod:`vault.catalog.info`: which vault the catalog belongs to (``get_info``, ``set_info``);
- :mod:`vault.catalog.keyrings`: namespace → keyring (``keyring_for``, ``add_keyring``, …);
- :mod:`vault.catalog.keyslots`: key slot labels and last use, key events (``record_slot``, …);
- :mod:`vault.catalog.chunks`: the chunk index and the packs (``lookup_chunks``, ``add_pack``, …);
- :mod:`vault.catalog.versions`: artifacts, versions, tags, files, lineage (``resolve``, …);
- :mod:`vault.catalog.backups`: backup schedules, run history, leases (``add_backup_schedule``, …);
- :mod:`vault.catalog.audit`: the hash-chained audit log (``append_audit``, ``audit_stored_rows``, …);
- :mod:`vault.catalog.access`: signed access-policy documents and their index (``store_access_policy``, …);
- :mod:`vault.catalog.provenance`: an index of the provenance records in storage (``index_record``, …).

:class:`Catalog` *inherits* them, so the rest of mlvault sees one flat interface and the
aggregates are not part of the public surface. Of the two ways to drop the duplicated
surface (flat methods that only delegated, beside public ``catalog.versions`` /
``catalog.chunks`` / ``catalog.keyrings`` / ``catalog.info``) this leaves the least code:
no delegating method is written at all, and no caller changes, where the other way would
rewrite every call site across the vault, the repository operations, the key cache,
bootstrap and the tests for no gain in what they can do. The aggregates' public method
names are distinct (a test holds them to it), so none shadows another.

Signature bundles and trust-policy documents (:mod:`vault.catalog.signatures`) are stored
beside the rest but vouched for elsewhere: :meth:`Catalog.signature_store` hands out that
store, so no one outside this package needs the engine.
"""

from __future__ import annotations

from sqlalchemy import URL, Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect

from vault.catalog import migrate
from vault.catalog.access import AccessIndex
from vault.catalog.audit import AuditLogIndex
from vault.catalog.backups import BackupIndex
from vault.catalog.chunks import ChunkIndex
from vault.catalog.engine import create_catalog_engine, parse_url, shown
from vault.catalog.info import VaultInfo
from vault.catalog.keyrings import KeyringIndex
from vault.catalog.keyslots import KeySlotIndex
from vault.catalog.provenance import ProvenanceIndex
from vault.catalog.schema import vault_info
from vault.catalog.signatures import SignatureCatalog
from vault.catalog.versions import VersionIndex
from vault.errors import ConfigurationError, StorageUnavailableError


def open_catalog(url: str, *, only_for_vault: str | None = None) -> Catalog:
    """Connect to the catalog at ``url`` and upgrade its schema if it is older.

    With ``only_for_vault`` (a URL that came from storage, not from the user) the catalog
    must already exist and carry that vault id: nothing is created and no migration runs
    on a database that is not this vault's. SQLite URLs are refused outright then, since
    connecting to a SQLite path creates the file.
    """
    parsed = parse_url(url)
    if only_for_vault is not None and parsed.get_backend_name() == "sqlite":
        raise ConfigurationError(
            f"the vault's stored config names the SQLite catalog {shown(parsed)}; a catalog URL from "
            "storage is never followed to a local file (pass --catalog to use it)"
        )
    engine = create_catalog_engine(parsed)
    try:
        if only_for_vault is not None:
            _require_vault(engine, parsed, only_for_vault)
        migrate.upgrade(engine)
    except sa_exc.OperationalError as exc:
        engine.dispose()
        raise StorageUnavailableError(f"cannot reach the catalog at {shown(parsed)}: {exc.orig}") from exc
    except BaseException:  # e.g. CatalogTooNewError, CatalogDamagedError: do not leak pooled connections
        engine.dispose()
        raise
    return Catalog(engine)


def _require_vault(engine: Engine, parsed: URL, vault_id: str) -> None:
    """Refuse a database that does not already say it is the catalog of ``vault_id``."""
    try:
        with engine.connect() as conn:
            stored = None
            if sa_inspect(conn).has_table(vault_info.name):
                stored = conn.scalar(select(vault_info.c.value).where(vault_info.c.key == "vault_id"))
    except sa_exc.OperationalError as exc:
        raise StorageUnavailableError(f"cannot reach the catalog at {shown(parsed)}: {exc.orig}") from exc
    if stored != vault_id:
        raise ConfigurationError(
            f"the catalog {shown(parsed)} named by the vault's stored config is not the catalog of vault "
            f"{vault_id}; nothing was created or migrated there (pass --catalog to choose one)"
        )


class Catalog(
    VaultInfo,
    KeyringIndex,
    KeySlotIndex,
    ChunkIndex,
    VersionIndex,
    BackupIndex,
    AuditLogIndex,
    AccessIndex,
    ProvenanceIndex,
):
    """Named queries and writes over one catalog database (the aggregates' methods, inherited)."""

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; only this package and test fixtures use it."""
        return self._engine

    @property
    def display_url(self) -> str:
        """The catalog's URL as it may be shown to a user (password hidden)."""
        return shown(self._engine.url)

    def signature_store(self) -> SignatureCatalog:
        """A store of signature bundles and trust-policy documents on this catalog's database."""
        return SignatureCatalog(self._engine)

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()
