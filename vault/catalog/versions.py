"""Artifacts, versions, tags, files, metadata and lineage.

Version numbers are allocated in the transaction that inserts the version: the artifact
row is locked (``FOR UPDATE`` on PostgreSQL; SQLite transactions start ``IMMEDIATE`` and
so are serialized), the next number is max + 1, and a unique constraint on (artifact,
number) backs it up with a retry.

Reads cost a constant number of queries however many versions they return: versions in
one query, their tags in one more (never one query per version). Every row is checked
(:mod:`vault.catalog.values`) before it becomes a :class:`VersionRow`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, func, select, true
from sqlalchemy import exc as sa_exc

from vault.catalog import values
from vault.catalog.engine import Aggregate, now
from vault.catalog.provenance import RecordIndexRow
from vault.catalog.rows import ArtifactRow, FileRow, NewVersion, VersionContents, VersionRow
from vault.catalog.schema import (
    artifacts,
    lineage,
    provenance_records,
    tags,
    version_files,
    version_metadata,
    versions,
)
from vault.errors import ConflictError, IntegrityError, NotFoundError

_MAX_ATTEMPTS = 8
Seal = Callable[[NewVersion, int], Sequence[RecordIndexRow]]  # stores provenance records (vault.access)
IN_CHUNK = 500  # ids per IN (...) list: well under every driver's bound-parameter limit
_VERSION_COLUMNS = (versions, artifacts.c.name.label("artifact"), artifacts.c.kind.label("kind"))


class VersionIndex(Aggregate):
    """Named queries and writes over artifacts and their versions."""

    # -- writes ---------------------------------------------------------------------------

    def commit_version(self, new: NewVersion, seal: Seal | None = None) -> int:
        """Insert a version with the next number, its files, metadata, lineage and tags.

        ``seal(new, number)`` runs inside the transaction once the number is allocated, before the
        row is inserted: it stores the version's provenance records (none is ever visible without)
        and returns their index rows, inserted in the same transaction.
        """
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with self._engine.begin() as conn:
                    return self._commit_version(conn, new, seal)
            except sa_exc.IntegrityError as exc:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise ConflictError(f"could not allocate a version number for {new.artifact}") from exc
        raise AssertionError("unreachable")

    def _commit_version(self, conn: Connection, new: NewVersion, seal: Seal | None = None) -> int:
        conn.execute(
            self._insert(artifacts)
            .values(name=new.artifact, namespace=new.namespace, kind=new.kind, created_at=now())
            .on_conflict_do_nothing()
        )
        artifact = conn.execute(
            select(artifacts.c.id, artifacts.c.kind).where(artifacts.c.name == new.artifact).with_for_update()
        ).one()
        if artifact.kind != new.kind:
            raise ConflictError(
                f"{new.artifact} is a {artifact.kind}, not a {new.kind}; drop --kind or fix it"
            )
        latest = conn.scalar(
            select(func.coalesce(func.max(versions.c.number), 0)).where(versions.c.artifact_id == artifact.id)
        )
        number = (
            values.a_count(latest or 0, f"artifact {new.artifact}", "latest number", values.MAX_NUMBER - 1)
            + 1
        )
        records = seal(new, number) if seal is not None else ()
        if records:
            conn.execute(provenance_records.insert(), [vars(r) for r in records])
        conn.execute(
            versions.insert().values(
                id=new.id,
                artifact_id=artifact.id,
                number=number,
                digest=new.digest,
                size=new.size,
                file_count=len(new.files),
                root=new.root,
                ring_id=new.ring_id,
                created_by=new.created_by,
                created_at=now(),
            )
        )
        if new.files:
            conn.execute(
                version_files.insert(),
                [
                    {"version_id": new.id, "path": f.path, "size": f.size, "mode": f.mode, "sha256": f.sha256}
                    for f in new.files
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
            self._set_tag(conn, artifact.id, tag, new.id, new.created_by)
        return number

    def _set_tag(self, conn: Connection, artifact_id: int, tag: str, version_id: str, who: str) -> None:
        row = {"version_id": version_id, "updated_by": who, "updated_at": now()}
        conn.execute(
            self._insert(tags)
            .values(artifact_id=artifact_id, name=tag, **row)
            .on_conflict_do_update(index_elements=[tags.c.artifact_id, tags.c.name], set_=row)
        )

    def set_tag(self, version: VersionRow, tag: str, who: str) -> str | None:
        """Point ``tag`` at ``version``; return the version id it pointed at before."""
        with self._engine.begin() as conn:
            artifact_id = conn.execute(
                select(artifacts.c.id).where(artifacts.c.name == version.artifact)
            ).scalar_one()
            previous = conn.scalar(
                select(tags.c.version_id).where(tags.c.artifact_id == artifact_id, tags.c.name == tag)
            )
            self._set_tag(conn, artifact_id, tag, version.id, who)
        if previous is None:
            return None
        return values.an_id(previous, f"tag {tag!r} of {version.artifact}", "version id")

    # -- reads ----------------------------------------------------------------------------

    def artifact_kind(self, artifact: str) -> str | None:
        """The kind of an existing artifact, or None."""
        with self._engine.connect() as conn:
            kind = conn.scalar(select(artifacts.c.kind).where(artifacts.c.name == artifact))
        return None if kind is None else str(kind)

    def resolve(
        self,
        artifact: str,
        *,
        number: int | None = None,
        tag: str | None = None,
        digest_prefix: str | None = None,
    ) -> VersionRow:
        """Find one version by number, tag, digest prefix, or (none given) the latest."""
        with self._engine.connect() as conn:
            _require_artifact(conn, artifact)
            query = _version_query().where(artifacts.c.name == artifact)
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
            row = rows[-1] if digest_prefix else rows[0]
            names = _tags_by_version(
                conn, select(tags.c.version_id, tags.c.name).where(tags.c.version_id == row["id"])
            )
        return _version_row(row, names)

    def list_versions(self, artifact: str) -> list[VersionRow]:
        """All versions of ``artifact``, newest first."""
        with self._engine.connect() as conn:
            artifact_id = _require_artifact(conn, artifact)
            rows = conn.execute(
                _version_query()
                .where(versions.c.artifact_id == artifact_id)
                .order_by(versions.c.number.desc())
            ).mappings()
            names = _tags_by_version(
                conn, select(tags.c.version_id, tags.c.name).where(tags.c.artifact_id == artifact_id)
            )
            return [_version_row(r, names) for r in rows]

    def all_versions(self, problems: list[IntegrityError] | None = None) -> list[VersionRow]:
        """Every version; with ``problems``, malformed rows go there instead of raising."""
        with self._engine.connect() as conn:
            rows = (
                conn.execute(_version_query().order_by(artifacts.c.name, versions.c.number)).mappings().all()
            )
            names = _tags_by_version(conn, select(tags.c.version_id, tags.c.name))
        result = []
        for row in rows:
            try:
                result.append(_version_row(row, names))
            except IntegrityError as exc:
                if problems is None:
                    raise
                problems.append(exc)
        return result

    def artifact_ids(self, prefix: str = "") -> dict[str, int]:
        """Name → id of every artifact whose name starts with ``prefix`` (one query), so that the
        caller can decide in Python which ones to show and then ask :meth:`list_artifacts` for them."""
        matching = artifacts.c.name.startswith(prefix, autoescape=True) if prefix else true()
        with self._engine.connect() as conn:
            rows = conn.execute(select(artifacts.c.name, artifacts.c.id).where(matching)).all()
        return {str(r.name): int(r.id) for r in rows}

    def list_artifacts(
        self, prefix: str = "", *, only_ids: Collection[int] | None = None
    ) -> list[ArtifactRow]:
        """Artifacts whose name starts with ``prefix``, with latest version and tags (three queries).

        With ``only_ids``, only those artifacts: the filter is inside the queries (``IN``, at most
        :data:`IN_CHUNK` ids per query, three queries per chunk), so counts never include the rest.
        """
        matching = artifacts.c.name.startswith(prefix, autoescape=True) if prefix else true()
        if only_ids is None:
            return self._list_artifacts(matching)
        ids = sorted(set(only_ids))
        result: list[ArtifactRow] = []
        for start in range(0, len(ids), IN_CHUNK):
            result += self._list_artifacts(matching & artifacts.c.id.in_(ids[start : start + IN_CHUNK]))
        return sorted(result, key=lambda row: row.name)

    def _list_artifacts(self, matching: ColumnElement[bool]) -> list[ArtifactRow]:
        with self._engine.connect() as conn:
            arts = conn.execute(
                select(artifacts.c.id, artifacts.c.name, artifacts.c.kind)
                .where(matching)
                .order_by(artifacts.c.name)
            ).all()
            newest = (
                select(versions.c.artifact_id, func.max(versions.c.number).label("number"))
                .group_by(versions.c.artifact_id)
                .subquery()
            )
            latest = {
                r.artifact_id: (r.number, r.size)
                for r in conn.execute(
                    select(versions.c.artifact_id, versions.c.number, versions.c.size)
                    .join(
                        newest,
                        (newest.c.artifact_id == versions.c.artifact_id)
                        & (newest.c.number == versions.c.number),
                    )
                    .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                    .where(matching)
                )
            }
            tag_rows = conn.execute(
                select(tags.c.artifact_id, tags.c.name, versions.c.number)
                .join(versions, versions.c.id == tags.c.version_id)
                .join(artifacts, artifacts.c.id == tags.c.artifact_id)
                .where(matching)
                .order_by(tags.c.name)
            ).all()
        by_artifact: dict[int, dict[str, int]] = defaultdict(dict)
        for t in tag_rows:
            by_artifact[t.artifact_id][t.name] = t.number
        result = []
        for art in arts:
            number, size = latest.get(art.id, (None, None))
            result.append(ArtifactRow(art.name, art.kind, number, size, by_artifact.get(art.id, {})))
        return result

    def version_details(self, version_id: str) -> VersionContents:
        """The files, metadata and parent references of a version."""
        where = f"version {version_id}"
        with self._engine.connect() as conn:
            files = [
                FileRow(
                    r.path,
                    values.a_count(r.size, f"{where} file {r.path!r}", "size", values.MAX_BYTES),
                    r.mode,
                    values.a_sha256(r.sha256, f"{where} file {r.path!r}", "SHA-256"),
                )
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
        return VersionContents(files, meta, parents)


def _version_query() -> Select[Any]:
    return select(*_VERSION_COLUMNS).join(artifacts, artifacts.c.id == versions.c.artifact_id)


def _require_artifact(conn: Connection, artifact: str) -> int:
    artifact_id = conn.scalar(select(artifacts.c.id).where(artifacts.c.name == artifact))
    if artifact_id is None:
        raise NotFoundError(f"no artifact named {artifact!r} (see `mlvault ls`)")
    return int(artifact_id)


def _tags_by_version(conn: Connection, query: Select[Any]) -> dict[object, list[str]]:
    names: dict[object, list[str]] = defaultdict(list)
    for row in conn.execute(query.order_by(tags.c.name)):
        names[row.version_id].append(row.name)
    return names


def _version_row(row: RowMapping, names: dict[object, list[str]]) -> VersionRow:
    label = f"version {row['artifact']}@v{row['number']}"
    version_id = values.an_id(row["id"], label, "the id")
    where = f"version {version_id} ({row['artifact']}@v{row['number']})"
    return VersionRow(
        id=version_id,
        artifact=row["artifact"],
        kind=row["kind"],
        number=values.a_count(row["number"], where, "number", values.MAX_NUMBER, least=1),
        digest=values.a_sha256(row["digest"], where, "digest"),
        size=values.a_count(row["size"], where, "size", values.MAX_BYTES),
        file_count=values.a_count(row["file_count"], where, "file count", values.MAX_FILES),
        root=row["root"],
        ring_id=values.an_id(row["ring_id"], where, "ring id"),
        created_by=row["created_by"],
        created_at=row["created_at"],
        tags=tuple(names.get(row["id"], ())),
    )
