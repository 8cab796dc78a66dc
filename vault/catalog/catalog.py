"""The Catalog: every query and write the vault makes, over one database, by aggregate.

:func:`open_catalog` builds the engine (:mod:`vault.catalog.engine`: damage and driver
errors mapped there) and brings the schema to head (:mod:`vault.catalog.migrate`). The
:class:`Catalog` composes one object per aggregate, each in its own module:

- ``info`` (:mod:`vault.catalog.info`): which vault the catalog belongs to;
- ``keyrings`` (:mod:`vault.catalog.keyrings`): namespace → keyring;
- ``chunks`` (:mod:`vault.catalog.chunks`): the chunk index and the packs;
- ``versions`` (:mod:`vault.catalog.versions`): artifacts, versions, tags, files, lineage.

The flat methods below delegate to them and keep the interface the rest of mlvault uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import URL, Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect

from vault.catalog import migrate
from vault.catalog.chunks import ChunkIndex
from vault.catalog.engine import create_catalog_engine, parse_url, shown
from vault.catalog.info import VaultInfo
from vault.catalog.keyrings import KeyringIndex
from vault.catalog.rows import (
    ArtifactRow,
    ChunkLocation,
    NewVersion,
    PackChunk,
    PackRow,
    VersionContents,
    VersionRow,
)
from vault.catalog.schema import vault_info
from vault.catalog.versions import VersionIndex
from vault.errors import ConfigurationError, IntegrityError, StorageUnavailableError


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


class Catalog:
    """Named queries and writes over one catalog database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.info = VaultInfo(engine)
        self.keyrings = KeyringIndex(engine)
        self.chunks = ChunkIndex(engine)
        self.versions = VersionIndex(engine)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- vault identity ---------------------------------------------------------------

    def get_info(self, key: str) -> str | None:
        """A value from the vault_info table."""
        return self.info.get(key)

    def set_info(self, key: str, value: str) -> None:
        """Insert a vault_info value once; ConflictError if it exists with another value."""
        self.info.set(key, value)

    # -- keyrings -------------------------------------------------------------------

    def keyring_for(self, namespace: str) -> str | None:
        """The keyring id of a top-level namespace, if it has one."""
        return self.keyrings.for_namespace(namespace)

    def add_keyring(self, namespace: str, ring_id: str) -> str:
        """Register a keyring for ``namespace``; returns the winner if another push raced us."""
        return self.keyrings.add(namespace, ring_id)

    def all_keyrings(self) -> dict[str, str]:
        """namespace → ring id."""
        return self.keyrings.all()

    # -- chunk index and packs ------------------------------------------------------------

    def lookup_chunks(self, ring_id: str, chunk_ids: Iterable[bytes]) -> dict[bytes, ChunkLocation]:
        """Locations of those ``chunk_ids`` the index knows."""
        return self.chunks.lookup(ring_id, chunk_ids)

    def add_pack(self, pack: PackRow, entries: Sequence[tuple[bytes, int, int]]) -> None:
        """Record a stored pack and index its chunks (first writer of a chunk id wins)."""
        self.chunks.add_pack(pack, entries)

    def all_packs(self, problems: list[IntegrityError] | None = None) -> list[PackRow]:
        """Every pack the catalog knows; with ``problems``, malformed rows go there instead of raising."""
        return self.chunks.all_packs(problems)

    def pack_chunks(self, pack_id: str) -> list[PackChunk]:
        """The chunk records the index places in ``pack_id``."""
        return self.chunks.pack_chunks(pack_id)

    # -- versions -----------------------------------------------------------------------

    def commit_version(self, new: NewVersion) -> int:
        """Insert a version with the next number, its files, metadata, lineage and tags."""
        return self.versions.commit(new)

    def artifact_kind(self, artifact: str) -> str | None:
        """The kind of an existing artifact, or None."""
        return self.versions.artifact_kind(artifact)

    def set_tag(self, version: VersionRow, tag: str, who: str) -> str | None:
        """Point ``tag`` at ``version``; return the version id it pointed at before."""
        return self.versions.set_tag(version, tag, who)

    def resolve(
        self,
        artifact: str,
        *,
        number: int | None = None,
        tag: str | None = None,
        digest_prefix: str | None = None,
    ) -> VersionRow:
        """Find one version by number, tag, digest prefix, or (none given) the latest."""
        return self.versions.resolve(artifact, number=number, tag=tag, digest_prefix=digest_prefix)

    def list_versions(self, artifact: str) -> list[VersionRow]:
        """All versions of ``artifact``, newest first."""
        return self.versions.list_versions(artifact)

    def all_versions(self, problems: list[IntegrityError] | None = None) -> list[VersionRow]:
        """Every version; with ``problems``, malformed rows go there instead of raising."""
        return self.versions.all_versions(problems)

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts whose name starts with ``prefix``, with latest version and tags."""
        return self.versions.list_artifacts(prefix)

    def version_details(self, version_id: str) -> VersionContents:
        """The files, metadata and parent references of a version."""
        return self.versions.details(version_id)
