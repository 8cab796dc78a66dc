"""The audit log table: a serialized appender and readers that hand back rows as they are stored.

**Appending** (:meth:`AuditLogIndex.append_audit`) is the only write. One short transaction takes
the append lock — ``pg_advisory_xact_lock`` on PostgreSQL; on SQLite every transaction already
starts ``BEGIN IMMEDIATE`` (:mod:`vault.catalog.engine`), which is the database's single write
lock — reads the head row, links the new rows after it (the caller's ``link``, i.e.
:func:`vault.audit.chain.append` bound to the vault id), inserts them and commits. Only the
append is serialized, never the command around it, so many processes append at once and the
chain stays one chain. The same transaction imports key events (``key_events``) not yet in the
log, so an add, remove or rekey recorded by :mod:`vault.keys` reaches the chain exactly once.

**Fail closed**: any database error during the append is an :class:`AuditUnavailableError`
naming the catalog; the caller's operation fails with it.

**Reading** never trusts the table: a value that cannot be what the appender wrote (a hash that
is not 64 hex digits, details that are not a JSON object, a time that is not a time) is read as
a placeholder that cannot give the stored hash, so ``audit verify`` names that row as altered.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select, text
from sqlalchemy import exc as sa_exc

from vault.audit.chain import AuditRow, StoredRow
from vault.catalog.engine import Aggregate, shown
from vault.catalog.schema import artifacts, audit_log, key_events, versions
from vault.errors import AuditUnavailableError, IntegrityError

Link = Callable[[StoredRow | None, AuditRow], StoredRow]
_APPEND_LOCK = 0x6D6C6175  # "mlau"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UNREADABLE_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
READ_BATCH = 20_000


@dataclass(frozen=True)
class PendingRow:
    """A row to append; the appender gives it its sequence number and hashes."""

    at: dt.datetime
    principal: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]


KeyEventRow = Callable[[RowMapping], PendingRow]


class AuditLogIndex(Aggregate):
    """The ``audit_log`` table."""

    def append_audit(
        self, link: Link, rows: Sequence[PendingRow], *, key_event_row: KeyEventRow | None = None
    ) -> list[StoredRow]:
        """Append ``rows`` (after any key events not yet imported, if ``key_event_row`` converts them)."""
        try:
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK})
                previous, imported, newest_event = _head_and_key_events(conn)
                todo: list[tuple[PendingRow, int | None]] = []
                if key_event_row is not None and (previous is None or newest_event > imported):
                    todo += _unimported_key_events(conn, key_event_row)
                todo += [(row, None) for row in rows]
                stored: list[StoredRow] = []
                values: list[dict[str, Any]] = []
                for pending, event_id in todo:
                    seq = 1 if previous is None else previous.row.seq + 1
                    previous = link(previous, _audit_row(seq, pending))
                    values.append({**_columns(previous), "key_event": event_id})
                    stored.append(previous)
                if values:
                    conn.execute(audit_log.insert(), values)
                return stored
        except sa_exc.DBAPIError as exc:
            raise AuditUnavailableError(
                f"cannot write the audit log in the catalog {shown(self._engine.url)} "
                f"({type(exc.orig).__name__}: {exc.orig}); the operation was refused"
            ) from exc

    def audit_head(self) -> StoredRow | None:
        """The newest row, or None for an empty log."""
        with self._engine.connect() as conn:
            return _head(conn)

    def audit_stored_rows(self, after: int = 0, batch: int = READ_BATCH) -> Iterator[StoredRow]:
        """Every row with seq > ``after``, in seq order, read in batches (memory stays flat).

        Each batch is one keyset query (``seq > last ORDER BY seq LIMIT batch``) fetched as plain
        tuples on a connection closed before any row is handed out, so a caller that stops early
        (or records a failed verify) holds no transaction open.
        """
        while True:
            query = select(*_READ).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _stored(row)
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def audit_rows_at(self, seqs: Sequence[int]) -> dict[int, StoredRow]:
        """The rows with these sequence numbers (those that exist)."""
        found: dict[int, StoredRow] = {}
        for start in range(0, len(seqs), 500):
            with self._engine.connect() as conn:
                query = select(audit_log).where(audit_log.c.seq.in_(list(seqs[start : start + 500])))
                for row in conn.execute(query).mappings():
                    stored = _stored(row)
                    found[stored.row.seq] = stored
        return found

    def audit_events(
        self, *, since: dt.datetime | None = None, principal: str | None = None, action: str | None = None
    ) -> list[AuditRow]:
        """Rows at or after ``since``, by ``principal``, of ``action`` (each filter optional), by seq."""
        query = select(audit_log).order_by(audit_log.c.seq)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if principal is not None:
            query = query.where(audit_log.c.principal == principal)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        with self._engine.connect() as conn:
            return [_stored(row).row for row in conn.execute(query).mappings()]

    def audit_version_ref(self, version_id: str) -> str | None:
        """``artifact@vN`` of a version id, for naming what a row is about."""
        query = (
            select(artifacts.c.name, versions.c.number)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id == version_id)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else f"{row[0]}@v{row[1]}"


def _audit_row(seq: int, pending: PendingRow) -> AuditRow:
    return AuditRow(
        seq, pending.at, pending.principal, pending.action, pending.target, pending.outcome, pending.details
    )


def _head(conn: Connection) -> StoredRow | None:
    row = conn.execute(select(*_READ).order_by(audit_log.c.seq.desc()).limit(1)).first()
    return None if row is None else _stored(row)


_IMPORTED = select(func.max(audit_log.c.key_event)).scalar_subquery()
_NEWEST_EVENT = select(func.max(key_events.c.id)).scalar_subquery()


def _head_and_key_events(conn: Connection) -> tuple[StoredRow | None, int, int]:
    """The head row, the newest key event imported and the newest key event, in one round trip
    (the append holds the lock meanwhile); for an empty log, (None, 0, 0)."""
    query = select(*_READ, _IMPORTED, _NEWEST_EVENT).order_by(audit_log.c.seq.desc()).limit(1)
    row = conn.execute(query).first()
    if row is None:
        return None, 0, 0
    return _stored(row[: len(_READ)]), int(row[-2] or 0), int(row[-1] or 0)


def _unimported_key_events(conn: Connection, convert: KeyEventRow) -> list[tuple[PendingRow, int | None]]:
    done = conn.scalar(select(func.max(audit_log.c.key_event))) or 0
    query = select(key_events).where(key_events.c.id > done).order_by(key_events.c.id)
    return [(convert(row), int(row["id"])) for row in conn.execute(query).mappings()]


def _columns(stored: StoredRow) -> dict[str, Any]:
    row = stored.row
    return {
        "seq": row.seq,
        "at": row.at,
        "principal": row.principal,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "details": json.dumps(row.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        "prev_hash": stored.prev_hash.hex(),
        "hash": stored.hash.hex(),
    }


_READ = (
    audit_log.c.seq,
    audit_log.c.at,
    audit_log.c.principal,
    audit_log.c.action,
    audit_log.c.target,
    audit_log.c.outcome,
    audit_log.c.details,
    audit_log.c.prev_hash,
    audit_log.c.hash,
)


def _stored(row: RowMapping | Sequence[Any]) -> StoredRow:
    """A row as stored (a mapping, or a tuple of :data:`_READ`'s columns). A value that cannot be
    what the writer wrote (hex that is not lower-case hex, details that are not a JSON object, a
    time that is not one) is replaced by a placeholder that cannot hash to the stored hash, so
    ``audit verify`` names this row as altered."""
    if isinstance(row, RowMapping):
        row = tuple(row[column.name] for column in _READ)
    seq, at, principal, action, target, outcome, details_text, prev_hash, row_hash = row
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise IntegrityError(f"the audit log holds a row whose sequence number is {seq!r}")
    if not isinstance(at, dt.datetime):
        at = _UNREADABLE_TIME
    elif at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)  # SQLite drops the zone
    try:
        details = json.loads(details_text)
    except (TypeError, ValueError):
        details = None
    if type(details) is not dict:
        details = {"unreadable": str(details_text)}
    if type(principal) is not str or type(action) is not str or type(target) is not str:
        principal, action, target = str(principal), str(action), str(target)
    outcome = outcome if type(outcome) is str else str(outcome)
    row_ = AuditRow(seq, at, principal, action, target, outcome, details)
    return StoredRow(row_, _hash(prev_hash), _hash(row_hash))


def _hash(value: object) -> bytes:
    """The bytes of 64 lower-case hex digits; 32 zero bytes for anything else."""
    if type(value) is str and len(value) == 64:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return bytes(32)
        if len(raw) == 32 and raw.hex() == value:
            return raw
    return bytes(32)
