"""Backup schedules and their run history: what the catalog keeps so cron needs nothing else.

A schedule row holds a :class:`~vault.backup.definition.ScheduleDefinition` (cron and zone, target,
include patterns, retention, Object Lock, catch-up, maximum run time) and its state: enabled, the
instant it was saved or last enabled (``enabled_at``: slots before it are never due and never
overdue), the slot and start of the newest run, the end of the newest successful run and the error
of the newest failed one. A run row records one run: its slot (NULL for a run started by hand),
start, end, outcome (``running``, ``success``, ``failed``), objects and bytes copied, error.

The lease of each schedule lives in ``backup_leases``, behind :class:`vault.catalog.leases.SqlLeaseStore`
(:meth:`BackupIndex.backup_lease_store`). Removing a schedule removes its lease and its history in
one transaction and is refused while a live lease says a run is in progress; it never touches a
target: backups outlive their schedule.

Times are passed in by the caller (its injected clock), stored in UTC and read back in UTC. Every
row read back goes through the same constructors that validate user input, so a hostile row is an
:class:`IntegrityError` naming it, never a schedule that backs up the wrong thing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from vault.backup.definition import ObjectLock, ScheduleDefinition, Target, build_definition
from vault.backup.lease import can_take
from vault.backup.schedule import parse_catch_up
from vault.catalog import values
from vault.catalog.engine import Aggregate
from vault.catalog.leases import SqlLeaseStore, read_lease, read_time, utc
from vault.catalog.schema import backup_leases, backup_runs, backup_schedules
from vault.errors import ConflictError, MlvaultError, NotFoundError, UsageError

OUTCOMES = frozenset({"running", "success", "failed"})
MAX_ERROR = 4096
_KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_BIG = (1 << 63) - 1
_MAX_SECONDS = 36_500 * 86_400  # durations are capped at 100 years (vault.backup.definition)


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as stored: its definition and its state."""

    definition: ScheduleDefinition
    enabled: bool
    enabled_at: dt.datetime
    last_scheduled: dt.datetime | None
    last_started: dt.datetime | None
    last_success: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    created_by: str

    @property
    def name(self) -> str:
        """The schedule's name."""
        return self.definition.name

    @property
    def slots_from(self) -> dt.datetime:
        """The instant after which slots count: the newest run's slot, or when it was (re-)enabled."""
        if self.last_scheduled is None:
            return self.enabled_at
        return max(self.last_scheduled, self.enabled_at)


@dataclass(frozen=True)
class BackupRun:
    """One run of a schedule."""

    id: int
    schedule: str
    slot: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    objects_copied: int
    bytes_copied: int
    error: str | None


def _definition_row(definition: ScheduleDefinition) -> dict[str, Any]:
    policy, lock, target = definition.retention, definition.object_lock, definition.target
    return {
        "name": definition.name,
        "cron": definition.cron.expression,
        "tz": definition.cron.timezone,
        "target_url": target.url,
        "target_endpoint_url": target.endpoint_url,
        "target_profile": target.profile,
        "target_region": target.region,
        "include": json.dumps(list(definition.include)),
        **{f"keep_{rule}": getattr(policy, f"keep_{rule}") for rule in _KEEP_RULES},
        "keep_within_seconds": None
        if policy.keep_within is None
        else int(policy.keep_within.total_seconds()),
        "lock_mode": None if lock is None else lock.mode,
        "lock_retain_days": None if lock is None else lock.retain_days,
        "catch_up": definition.catch_up,
        "max_runtime_seconds": None
        if definition.max_runtime is None
        else int(definition.max_runtime.total_seconds()),
    }


class BackupIndex(Aggregate):
    """Backup schedules, their run history, and (through a store) their leases."""

    def backup_lease_store(self) -> SqlLeaseStore:
        """The :class:`~vault.backup.lease.LeaseStore` of this catalog's schedules."""
        return SqlLeaseStore(self._engine)

    def add_backup_schedule(
        self, definition: ScheduleDefinition, actor: str, at: dt.datetime
    ) -> ScheduleRecord:
        """Save a new, enabled schedule; ConflictError when the name is taken."""
        at = utc(at)
        row = {**_definition_row(definition), "enabled": True, "enabled_at": at, "created_at": at}
        with self._engine.begin() as conn:
            inserted = conn.execute(
                self._insert(backup_schedules)
                .values(**row, created_by=actor)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(backup_schedules.c.id)
            ).first()
            if inserted is None:
                raise ConflictError(f"a backup schedule named {definition.name!r} already exists")
            return _record(_schedule_row(conn, definition.name))

    def backup_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(backup_schedules).order_by(backup_schedules.c.name)).mappings().all()
        return [_record(row) for row in rows]

    def backup_schedule(self, name: str) -> ScheduleRecord:
        """The schedule ``name``; NotFoundError when there is none."""
        with self._engine.connect() as conn:
            return _record(_schedule_row(conn, name))

    def remove_backup_schedule(self, name: str, now: dt.datetime) -> ScheduleRecord:
        """Delete a schedule with its lease and history (not its backups); refused while it runs."""
        with self._engine.begin() as conn:
            row = _schedule_row(conn, name, lock=True)
            lease_row = (
                conn.execute(select(backup_leases).where(backup_leases.c.schedule_id == row["id"]))
                .mappings()
                .first()
            )
            lease = (
                None if lease_row is None else read_lease(lease_row, f"the lease of backup schedule {name!r}")
            )
            if lease is not None and not can_take(lease, utc(now)):
                raise ConflictError(
                    f"backup schedule {name!r} is running ({lease.owner}, lease live until "
                    f"{lease.expires_at:%Y-%m-%d %H:%M:%S} UTC); remove it after the run ends"
                )
            record = _record(row)
            conn.execute(delete(backup_leases).where(backup_leases.c.schedule_id == row["id"]))
            conn.execute(delete(backup_runs).where(backup_runs.c.schedule_id == row["id"]))
            conn.execute(delete(backup_schedules).where(backup_schedules.c.id == row["id"]))
        return record

    def set_backup_schedule_enabled(self, name: str, enabled: bool, at: dt.datetime) -> ScheduleRecord:
        """Enable or disable ``name``; enabling a disabled schedule restarts its slots at ``at``."""
        with self._engine.begin() as conn:
            row = _schedule_row(conn, name, lock=True)
            changes: dict[str, Any] = {"enabled": enabled}
            if enabled and not row["enabled"]:
                changes["enabled_at"] = utc(at)
            conn.execute(update(backup_schedules).where(backup_schedules.c.id == row["id"]).values(**changes))
            return _record(_schedule_row(conn, name))

    def start_backup_run(self, name: str, slot: dt.datetime | None, started_at: dt.datetime) -> int:
        """Record the start of a run (for ``slot``, or by hand); returns the run id."""
        started_at = utc(started_at)
        with self._engine.begin() as conn:
            row = _schedule_row(conn, name, lock=True)
            run_id = conn.execute(
                backup_runs.insert()
                .values(
                    schedule_id=row["id"],
                    slot=None if slot is None else utc(slot),
                    started_at=started_at,
                    outcome="running",
                    objects_copied=0,
                    bytes_copied=0,
                )
                .returning(backup_runs.c.id)
            ).scalar_one()
            changes: dict[str, Any] = {"last_started": started_at}
            if slot is not None:
                changes["last_scheduled"] = utc(slot)
            conn.execute(update(backup_schedules).where(backup_schedules.c.id == row["id"]).values(**changes))
        return int(run_id)

    def finish_backup_run(
        self,
        run_id: int,
        finished_at: dt.datetime,
        *,
        success: bool,
        objects_copied: int = 0,
        bytes_copied: int = 0,
        error: str | None = None,
    ) -> None:
        """Record the end of a run, and on its schedule the last success or the last error."""
        finished_at = utc(finished_at)
        message = None if error is None else error[:MAX_ERROR]
        with self._engine.begin() as conn:
            updated = conn.execute(
                update(backup_runs)
                .where(backup_runs.c.id == run_id, backup_runs.c.outcome == "running")
                .values(
                    finished_at=finished_at,
                    outcome="success" if success else "failed",
                    objects_copied=objects_copied,
                    bytes_copied=bytes_copied,
                    error=message,
                )
                .returning(backup_runs.c.schedule_id)
            ).first()
            if updated is None:
                raise NotFoundError(f"no running backup run {run_id}")
            state = {"last_success": finished_at, "last_error": None} if success else {"last_error": message}
            conn.execute(update(backup_schedules).where(backup_schedules.c.id == updated[0]).values(**state))

    def backup_run_history(self, name: str, limit: int = 20) -> list[BackupRun]:
        """The newest ``limit`` runs of ``name``, newest first."""
        with self._engine.connect() as conn:
            row = _schedule_row(conn, name)
            runs = conn.execute(
                select(backup_runs)
                .where(backup_runs.c.schedule_id == row["id"])
                .order_by(backup_runs.c.id.desc())
                .limit(limit)
            ).mappings()
            return [_run(run, name) for run in runs]

    def latest_backup_runs(self) -> dict[str, BackupRun]:
        """Schedule name → its newest run, for every schedule that has run."""
        newest = select(func.max(backup_runs.c.id)).group_by(backup_runs.c.schedule_id).scalar_subquery()
        query = (
            select(backup_runs, backup_schedules.c.name.label("schedule_name"))
            .join(backup_schedules, backup_schedules.c.id == backup_runs.c.schedule_id)
            .where(backup_runs.c.id.in_(newest))
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        runs = [_run(row, _text(row["schedule_name"], "a backup run row", "schedule")) for row in rows]
        return {run.schedule: run for run in runs}


def _schedule_row(conn: Connection, name: str, *, lock: bool = False) -> Any:
    query = select(backup_schedules).where(backup_schedules.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise NotFoundError(f"no backup schedule named {name!r} (see `mlvault backup schedule ls`)")
    return row


def _record(row: Any) -> ScheduleRecord:
    where = f"backup schedule {row['name']!r}"
    try:
        definition = _definition(row)
    except MlvaultError as exc:  # the checks of user input, failed by a stored row
        raise values.bad(where, str(exc)) from None
    enabled = row["enabled"]
    if not isinstance(enabled, bool):
        raise values.bad(where, f"enabled {enabled!r}, not a boolean")
    return ScheduleRecord(
        definition,
        enabled,
        read_time(row["enabled_at"], where, "enabled_at"),
        _maybe_time(row["last_scheduled"], where, "last_scheduled"),
        _maybe_time(row["last_started"], where, "last_started"),
        _maybe_time(row["last_success"], where, "last_success"),
        None if row["last_error"] is None else _message(row["last_error"], where, "last error"),
        read_time(row["created_at"], where, "created_at"),
        _text(row["created_by"], where, "creator"),
    )


def _definition(row: Any) -> ScheduleDefinition:
    for column in ("name", "cron", "tz", "target_url", "include", "catch_up"):
        if not isinstance(row[column], str):
            raise UsageError(f"{column} {row[column]!r}, not text")
    include = json.loads(row["include"]) if _is_json_list(row["include"]) else None
    if include is None or not all(isinstance(p, str) for p in include):
        raise UsageError(f"include {row['include']!r}, not a JSON list of patterns")
    keep = {rule: _count(row[f"keep_{rule}"], f"keep_{rule}") for rule in _KEEP_RULES}
    within, runtime = row["keep_within_seconds"], row["max_runtime_seconds"]
    lock = None
    if row["lock_mode"] is not None or row["lock_retain_days"] is not None:
        lock = ObjectLock(row["lock_mode"], row["lock_retain_days"])
    return build_definition(
        name=row["name"],
        cron=row["cron"],
        tz=row["tz"],
        target=Target(
            row["target_url"], row["target_endpoint_url"], row["target_profile"], row["target_region"]
        ),
        include=include,
        keep=keep,
        keep_within=None if within is None else dt.timedelta(seconds=_count(within, "keep_within_seconds")),
        object_lock=lock,
        catch_up=parse_catch_up(row["catch_up"]),
        max_runtime=None if runtime is None else dt.timedelta(seconds=_count(runtime, "max_runtime_seconds")),
    )


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SECONDS:
        raise UsageError(f"{what} {value!r}, not a count")
    return value


def _is_json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def _run(row: Any, schedule: str) -> BackupRun:
    where = f"backup run {row['id']!r} of {schedule!r}"
    outcome = row["outcome"]
    if outcome not in OUTCOMES:
        raise values.bad(where, f"outcome {outcome!r}, not one of {', '.join(sorted(OUTCOMES))}")
    return BackupRun(
        values.a_count(row["id"], where, "id", _BIG, least=1),
        schedule,
        _maybe_time(row["slot"], where, "slot"),
        read_time(row["started_at"], where, "started_at"),
        _maybe_time(row["finished_at"], where, "finished_at"),
        outcome,
        values.a_count(row["objects_copied"], where, "objects copied", _BIG),
        values.a_count(row["bytes_copied"], where, "bytes copied", _BIG),
        None if row["error"] is None else _message(row["error"], where, "error"),
    )


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255 or not value.isprintable():
        raise values.bad(where, f"{what} {value!r}, not 1..255 printable characters")
    return value


def _message(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_ERROR:
        raise values.bad(where, f"{what} that is not text of at most {MAX_ERROR} characters")
    return value


def _maybe_time(value: object, where: str, what: str) -> dt.datetime | None:
    return None if value is None else read_time(value, where, what)
