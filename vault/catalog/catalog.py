"""The Catalog class: every query and write the vault makes, as named methods."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from vault.catalog import migrate
from vault.catalog.schema import (
    artifacts,
    chunks,
    keyrings,
    lineage,
    packs,
    tags,
    vault_info,
    version_files,
    version_metadata,
    versions,
)
from vault.errors import ConfigurationError, ConflictError, NotFoundError, StorageUnavailableError

_MAX_ATTEMPTS = 8
_LOOKUP_BATCH = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ChunkLocation:
    """Where the chunk index says a chunk is stored."""

    pack_id: str
    offset: int
    length: int


@dataclass(frozen=True)
class PackRow:
    """A sealed pack."""

    id: str
    ring_id: str
    size: int
    chunk_count: int


@dataclass(frozen=True)
class ArtifactRow:
    """An artifact with a summary of its versions."""

    name: str
    kind: str
    latest: int | None
    size: int | None
    tags: dict[str, int]


@dataclass(frozen=True)
class VersionRow:
    """One committed version."""

    id: str
    artifact: str
    kind: str
    number: int
    digest: str
    size: int
    file_count: int
    root: str
    ring_id: str
    created_by: str
    created_at: dt.datetime
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewVersion:
    """What a push commits."""

    id: str
    artifact: str
    namespace: str
    kind: str
    digest: str
    size: int
    root: str
    ring_id: str
    created_by: str
    files: Sequence[tuple[str, int, int, str]]  # path, size, mode, sha256 hex
    metadata: dict[str, str] = field(default_factory=dict)
    parents: Sequence[str] = ()
    tags: Sequence[str] = ()


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_catalog(url: str) -> Catalog:
    """Connect to the catalog at ``url`` and upgrade its schema if it is older."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError(f"invalid catalog URL {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    elif parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, pool_pre_ping=True, pool_size=4)
    else:
        raise ConfigurationError(
            f"unsupported catalog {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    try:
        migrate.upgrade(engine)
    except sa_exc.OperationalError as exc:
        engine.dispose()
        raise StorageUnavailableError(
            f"cannot reach the catalog at {parsed.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    except BaseException:  # e.g. CatalogTooNewError: do not leak pooled connections
        engine.dispose()
        raise
    return Catalog(engine)


class Catalog:
    """Named queries and writes over one catalog database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- vault identity ---------------------------------------------------------------

    def get_info(self, key: str) -> str | None:
        """A value from the vault_info table."""
        with self.engine.connect() as conn:
            return conn.scalar(select(vault_info.c.value).where(vault_info.c.key == key))

    def set_info(self, key: str, value: str) -> None:
        """Insert a vault_info value once; ConflictError if it exists with another value."""
        with self.engine.begin() as conn:
            existing = conn.scalar(select(vault_info.c.value).where(vault_info.c.key == key))
            if existing is None:
                conn.execute(vault_info.insert().values(key=key, value=value))
            elif existing != value:
                raise ConflictError(f"catalog already belongs to another vault ({key}={existing})")

    # -- keyrings -------------------------------------------------------------------

    def keyring_for(self, namespace: str) -> str | None:
        """The keyring id of a top-level namespace, if it has one."""
        with self.engine.connect() as conn:
            return conn.scalar(select(keyrings.c.ring_id).where(keyrings.c.namespace == namespace))

    def add_keyring(self, namespace: str, ring_id: str) -> str:
        """Register a keyring for ``namespace``; returns the winner if another push raced us."""
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(keyrings)
                .values(ring_id=ring_id, namespace=namespace, created_at=_now())
                .on_conflict_do_nothing()
            )
            winner = conn.execute(
                select(keyrings.c.ring_id).where(keyrings.c.namespace == namespace)
            ).scalar_one()
        return str(winner)

    def all_keyrings(self) -> dict[str, str]:
        """namespace → ring id."""
        with self.engine.connect() as conn:
            return {r.namespace: r.ring_id for r in conn.execute(select(keyrings))}

    # -- chunk index and packs ------------------------------------------------------------

    def lookup_chunks(self, ring_id: str, chunk_ids: Iterable[bytes]) -> dict[bytes, ChunkLocation]:
        """Locations of those ``chunk_ids`` the index knows."""
        wanted = list(dict.fromkeys(chunk_ids))
        found: dict[bytes, ChunkLocation] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[start : start + _LOOKUP_BATCH]
                rows = conn.execute(
                    select(chunks.c.chunk_id, chunks.c.pack_id, chunks.c.offset, chunks.c.length).where(
                        chunks.c.ring_id == ring_id, chunks.c.chunk_id.in_(batch)
                    )
                )
                for row in rows:
                    found[bytes(row.chunk_id)] = ChunkLocation(row.pack_id, row.offset, row.length)
        return found

    def add_pack(self, pack: PackRow, entries: Sequence[tuple[bytes, int, int]]) -> None:
        """Record a stored pack and index its chunks (first writer of a chunk id wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                packs.insert().values(
                    id=pack.id,
                    ring_id=pack.ring_id,
                    size=pack.size,
                    chunk_count=pack.chunk_count,
                    created_at=_now(),
                )
            )
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

    def all_packs(self) -> list[PackRow]:
        """Every pack the catalog knows."""
        with self.engine.connect() as conn:
            return [PackRow(r.id, r.ring_id, r.size, r.chunk_count) for r in conn.execute(select(packs))]

    def pack_chunks(self, pack_id: str) -> list[tuple[bytes, int, int]]:
        """(chunk id, offset, length) the index places in ``pack_id``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(chunks.c.chunk_id, chunks.c.offset, chunks.c.length).where(chunks.c.pack_id == pack_id)
            )
            return [(bytes(r.chunk_id), r.offset, r.length) for r in rows]

    # -- versions -----------------------------------------------------------------------

    def commit_version(self, new: NewVersion) -> int:
        """Insert a version with the next number, its files, metadata, lineage and tags."""
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return self._commit_version(conn, new)
            except sa_exc.IntegrityError as exc:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise ConflictError(f"could not allocate a version number for {new.artifact}") from exc
        raise AssertionError("unreachable")

    def _commit_version(self, conn: Connection, new: NewVersion) -> int:
        conn.execute(
            self._insert(artifacts)
            .values(name=new.artifact, namespace=new.namespace, kind=new.kind, created_at=_now())
            .on_conflict_do_nothing()
        )
        artifact = conn.execute(
            select(artifacts.c.id, artifacts.c.kind).where(artifacts.c.name == new.artifact).with_for_update()
        ).one()
        if artifact.kind != new.kind:
            raise ConflictError(
                f"{new.artifact} is a {artifact.kind}, not a {new.kind}; drop --kind or fix it"
            )
        artifact_id = artifact.id
        number = (
            conn.scalar(
                select(func.coalesce(func.max(versions.c.number), 0)).where(
                    versions.c.artifact_id == artifact_id
                )
            )
            or 0
        ) + 1
        now = _now()
        conn.execute(
            versions.insert().values(
                id=new.id,
                artifact_id=artifact_id,
                number=number,
                digest=new.digest,
                size=new.size,
                file_count=len(new.files),
                root=new.root,
                ring_id=new.ring_id,
                created_by=new.created_by,
                created_at=now,
            )
        )
        if new.files:
            conn.execute(
                version_files.insert(),
                [
                    {"version_id": new.id, "path": p, "size": s, "mode": m, "sha256": h}
                    for p, s, m, h in new.files
                ],
            )
        if new.metadata:
            conn.execute(
                version_metadata.insert(),
                [{"version_id": new.id, "key": k, "value": v} for k, v in new.metadata.items()],
            )
        if new.parents:
            conn.execute(lineage.insert(), [{"version_id": new.id, "parent_id": p} for p in new.parents])
        for tag in new.tags:
            self._set_tag(conn, artifact_id, tag, new.id, new.created_by)
        return number

    def _set_tag(self, conn: Connection, artifact_id: int, tag: str, version_id: str, who: str) -> None:
        values = {"version_id": version_id, "updated_by": who, "updated_at": _now()}
        conn.execute(
            self._insert(tags)
            .values(artifact_id=artifact_id, name=tag, **values)
            .on_conflict_do_update(index_elements=[tags.c.artifact_id, tags.c.name], set_=values)
        )

    def artifact_kind(self, artifact: str) -> str | None:
        """The kind of an existing artifact, or None."""
        with self.engine.connect() as conn:
            return conn.scalar(select(artifacts.c.kind).where(artifacts.c.name == artifact))

    def set_tag(self, version: VersionRow, tag: str, who: str) -> str | None:
        """Point ``tag`` at ``version``; return the version id it pointed at before."""
        with self.engine.begin() as conn:
            artifact_id = conn.execute(
                select(artifacts.c.id).where(artifacts.c.name == version.artifact)
            ).scalar_one()
            previous = conn.scalar(
                select(tags.c.version_id).where(tags.c.artifact_id == artifact_id, tags.c.name == tag)
            )
            self._set_tag(conn, artifact_id, tag, version.id, who)
            return previous

    def _version_query(self) -> Any:
        return select(versions, artifacts.c.name.label("artifact"), artifacts.c.kind.label("kind")).join(
            artifacts, artifacts.c.id == versions.c.artifact_id
        )

    def _row(self, conn: Connection, row: RowMapping) -> VersionRow:
        names = conn.scalars(select(tags.c.name).where(tags.c.version_id == row["id"]).order_by(tags.c.name))
        return VersionRow(
            id=row["id"],
            artifact=row["artifact"],
            kind=row["kind"],
            number=row["number"],
            digest=row["digest"],
            size=row["size"],
            file_count=row["file_count"],
            root=row["root"],
            ring_id=row["ring_id"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            tags=tuple(names),
        )

    def resolve(
        self,
        artifact: str,
        *,
        number: int | None = None,
        tag: str | None = None,
        digest_prefix: str | None = None,
    ) -> VersionRow:
        """Find one version by number, tag, digest prefix, or (none given) the latest."""
        with self.engine.connect() as conn:
            if conn.scalar(select(artifacts.c.id).where(artifacts.c.name == artifact)) is None:
                raise NotFoundError(f"no artifact named {artifact!r} (see `mlvault ls`)")
            query = self._version_query().where(artifacts.c.name == artifact)
            if number is not None:
                query = query.where(versions.c.number == number)
                what = f"{artifact}@v{number}"
            elif tag is not None:
                query = query.join(tags, tags.c.version_id == versions.c.id).where(tags.c.name == tag)
                what = f"tag {tag!r} on {artifact}"
            elif digest_prefix is not None:
                query = query.where(versions.c.digest.startswith(digest_prefix, autoescape=True))
                what = f"{artifact}@sha256:{digest_prefix}"
            else:
                query = query.order_by(versions.c.number.desc()).limit(1)
                what = f"any version of {artifact}"
            rows = conn.execute(query).mappings().all()
            if not rows:
                raise NotFoundError(f"no {what} (see `mlvault log {artifact}`)")
            if len({r["digest"] for r in rows}) > 1:
                raise NotFoundError(
                    f"digest prefix {digest_prefix} is ambiguous in {artifact}; give more digits"
                )
            return self._row(conn, rows[-1] if digest_prefix else rows[0])

    def list_versions(self, artifact: str) -> list[VersionRow]:
        """All versions of ``artifact``, newest first."""
        with self.engine.connect() as conn:
            if conn.scalar(select(artifacts.c.id).where(artifacts.c.name == artifact)) is None:
                raise NotFoundError(f"no artifact named {artifact!r} (see `mlvault ls`)")
            rows = conn.execute(
                self._version_query().where(artifacts.c.name == artifact).order_by(versions.c.number.desc())
            ).mappings()
            return [self._row(conn, r) for r in rows]

    def all_versions(self) -> list[VersionRow]:
        """Every version in the catalog."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._version_query().order_by(artifacts.c.name, versions.c.number)
            ).mappings()
            return [self._row(conn, r) for r in rows]

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts whose name starts with ``prefix``, with latest version and tags."""
        with self.engine.connect() as conn:
            query = select(artifacts).order_by(artifacts.c.name)
            if prefix:
                query = query.where(artifacts.c.name.startswith(prefix, autoescape=True))
            result = []
            for art in conn.execute(query).mappings():
                latest = conn.execute(
                    select(versions.c.number, versions.c.size)
                    .where(versions.c.artifact_id == art["id"])
                    .order_by(versions.c.number.desc())
                    .limit(1)
                ).first()
                tag_rows = conn.execute(
                    select(tags.c.name, versions.c.number)
                    .join(versions, versions.c.id == tags.c.version_id)
                    .where(tags.c.artifact_id == art["id"])
                    .order_by(tags.c.name)
                )
                result.append(
                    ArtifactRow(
                        art["name"],
                        art["kind"],
                        latest.number if latest else None,
                        latest.size if latest else None,
                        {t.name: t.number for t in tag_rows},
                    )
                )
            return result

    def version_details(
        self, version_id: str
    ) -> tuple[list[tuple[str, int, int, str]], dict[str, str], list[str]]:
        """(files, metadata, parent references) of a version."""
        with self.engine.connect() as conn:
            files = [
                (r.path, r.size, r.mode, r.sha256)
                for r in conn.execute(
                    select(version_files)
                    .where(version_files.c.version_id == version_id)
                    .order_by(version_files.c.path)
                )
            ]
            meta = {
                r.key: r.value
                for r in conn.execute(
                    select(version_metadata).where(version_metadata.c.version_id == version_id)
                )
            }
            parents = [
                f"{r.name}@v{r.number}"
                for r in conn.execute(
                    select(artifacts.c.name, versions.c.number)
                    .join(versions, versions.c.artifact_id == artifacts.c.id)
                    .join(lineage, lineage.c.parent_id == versions.c.id)
                    .where(lineage.c.version_id == version_id)
                )
            ]
            return files, meta, parents
