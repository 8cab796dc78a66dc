"""The catalog's :class:`~vault.backup.lease.LeaseStore`: one ``backup_leases`` row per running schedule.

Each method is one short transaction, and the rules are the pure ones of :mod:`vault.backup.lease`
(:func:`~vault.backup.lease.can_take`), decided in Python on the row read inside the transaction:

- SQLite: every transaction starts ``BEGIN IMMEDIATE`` (:mod:`vault.catalog.engine`), so takers are
  serialized by the database's write lock.
- PostgreSQL: the lease row is read ``FOR UPDATE SKIP LOCKED``. A row another transaction holds is
  being taken, renewed or released right now, so the caller does not wait: it did not get the lease.
  When no row is visible, the lease is inserted with ``ON CONFLICT DO NOTHING``; a conflict means a
  concurrent caller inserted it (or holds the row locked), and this caller did not get it either.

Exactly one of any number of concurrent takers wins a free or expired lease, and a live lease is
never taken (tested with four processes on PostgreSQL). Leases are keyed by schedule: a schedule
that does not exist has no lease to take (:class:`NotFoundError`). Times are stored in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from vault.backup.lease import Lease, LeaseOwner, can_take, validate_ttl
from vault.catalog import values
from vault.catalog.engine import upsert_for
from vault.catalog.schema import backup_leases, backup_schedules
from vault.errors import NotFoundError

MAX_PID = (1 << 31) - 1
MAX_TTL_SECONDS = 366 * 86_400.0


def utc(value: dt.datetime) -> dt.datetime:
    """An aware ``value`` in UTC, as the catalog stores times; ValueError for a naive one."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"catalog times must be timezone-aware, got {value!r}")
    return value.astimezone(dt.UTC)


def read_time(value: object, where: str, what: str) -> dt.datetime:
    """A timestamp read back, in UTC (SQLite returns them without a zone: they were stored in UTC)."""
    if not isinstance(value, dt.datetime):
        raise values.bad(where, f"{what} {value!r}, not a timestamp")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def read_lease(row: Any, where: str) -> Lease:
    """A lease row, checked."""
    host, pid, ttl = row["owner_host"], row["owner_pid"], row["ttl_seconds"]
    if not isinstance(host, str) or not 0 < len(host) <= 255 or not host.isprintable():
        raise values.bad(where, f"owner host {host!r}, not 1..255 printable characters")
    pid = values.a_count(pid, where, "owner pid", MAX_PID)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL_SECONDS:
        raise values.bad(where, f"TTL {ttl!r}, not 0..{MAX_TTL_SECONDS:.0f} seconds")
    return Lease(host, pid, read_time(row["heartbeat_at"], where, "heartbeat"), dt.timedelta(seconds=ttl))


def _check_owner(owner: LeaseOwner) -> None:
    if not 0 < len(owner.host) <= 255 or not owner.host.isprintable() or not 0 <= owner.pid <= MAX_PID:
        raise ValueError(f"invalid lease owner {owner!r}")


class SqlLeaseStore:
    """Leases of backup schedules in the catalog (implements :class:`vault.backup.lease.LeaseStore`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = upsert_for(engine)

    def try_acquire(self, schedule: str, owner: LeaseOwner, now: dt.datetime, ttl: dt.timedelta) -> bool:
        """See :meth:`vault.backup.lease.LeaseStore.try_acquire`."""
        validate_ttl(ttl)
        _check_owner(owner)
        if ttl.total_seconds() > MAX_TTL_SECONDS:
            raise ValueError(f"a lease TTL of at most {MAX_TTL_SECONDS / 86400:.0f} days")
        row = {
            "owner_host": owner.host,
            "owner_pid": owner.pid,
            "heartbeat_at": utc(now),
            "ttl_seconds": ttl.total_seconds(),
        }
        with self._engine.begin() as conn:
            schedule_id = _schedule_id(conn, schedule)
            if schedule_id is None:
                raise NotFoundError(f"no backup schedule named {schedule!r}")
            existing = (
                conn.execute(
                    select(backup_leases)
                    .where(backup_leases.c.schedule_id == schedule_id)
                    .with_for_update(skip_locked=True)
                )
                .mappings()
                .first()
            )
            if existing is None:
                inserted = conn.execute(
                    self._insert(backup_leases)
                    .values(schedule_id=schedule_id, **row)
                    .on_conflict_do_nothing()
                    .returning(backup_leases.c.schedule_id)
                ).first()
                return inserted is not None
            if not can_take(read_lease(existing, _where(schedule)), now):
                return False
            conn.execute(
                update(backup_leases).where(backup_leases.c.schedule_id == schedule_id).values(**row)
            )
            return True

    def heartbeat(self, schedule: str, owner: LeaseOwner, now: dt.datetime) -> bool:
        """See :meth:`vault.backup.lease.LeaseStore.heartbeat`."""
        with self._engine.begin() as conn:
            schedule_id = _schedule_id(conn, schedule)
            existing = (
                None
                if schedule_id is None
                else conn.execute(
                    select(backup_leases).where(backup_leases.c.schedule_id == schedule_id).with_for_update()
                )
                .mappings()
                .first()
            )
            if existing is None:
                return False
            lease = read_lease(existing, _where(schedule))
            if lease.owner != owner:
                return False
            conn.execute(
                update(backup_leases)
                .where(backup_leases.c.schedule_id == schedule_id)
                .values(heartbeat_at=max(utc(now), lease.heartbeat_at))
            )
            return True

    def release(self, schedule: str, owner: LeaseOwner) -> bool:
        """See :meth:`vault.backup.lease.LeaseStore.release`."""
        with self._engine.begin() as conn:
            schedule_id = _schedule_id(conn, schedule)
            if schedule_id is None:
                return False
            deleted = conn.execute(
                delete(backup_leases).where(
                    backup_leases.c.schedule_id == schedule_id,
                    backup_leases.c.owner_host == owner.host,
                    backup_leases.c.owner_pid == owner.pid,
                )
            )
            return deleted.rowcount == 1

    def current(self, schedule: str) -> Lease | None:
        """See :meth:`vault.backup.lease.LeaseStore.current`."""
        query = (
            select(backup_leases)
            .join(backup_schedules, backup_schedules.c.id == backup_leases.c.schedule_id)
            .where(backup_schedules.c.name == schedule)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else read_lease(row, _where(schedule))


def _schedule_id(conn: Connection, schedule: str) -> int | None:
    value = conn.scalar(select(backup_schedules.c.id).where(backup_schedules.c.name == schedule))
    return None if value is None else values.a_count(value, _where(schedule), "schedule id", (1 << 63) - 1)


def _where(schedule: str) -> str:
    return f"the lease of backup schedule {schedule!r}"
