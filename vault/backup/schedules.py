"""Backup schedules as a service: add, list, show, remove, enable, disable, and their status.

:class:`BackupSchedules` works on the catalog's backup aggregate (:class:`vault.catalog.backups.BackupIndex`)
with an injected clock and the principal recorded as creator; the CLI and ``Vault.backup_schedules``
pass the real clock, tests a moved one. It opens no key: managing schedules and reading their status
needs catalog access only.

**Status** (:func:`schedule_status`, a pure function of a schedule, its newest run, its lease and
``now``). For an enabled schedule:

- *next due* is the first slot after :attr:`~vault.catalog.backups.ScheduleRecord.slots_from`
  (the newest run's slot, or when the schedule was saved or re-enabled); in the past when
  ``backup run --due`` has not caught up with it yet;
- *running* when the newest run has not ended and its lease is live; *interrupted* when it has not
  ended and its lease is gone or expired (the process died), which counts as *failed*, as does a
  newest run that ended in failure;
- *overdue* when the newest slot at or before ``now - grace`` (15 minutes by default, as cron's
  catch-up grace) came after both the last success and ``enabled_at``, and no run that started at
  or after that slot is still going: the backup that slot asked for has not happened.

:meth:`StatusReport.raise_for_problems` raises :class:`BackupFailedError` (exit 17) when any enabled
schedule is overdue or failed; a disabled schedule is reported but never counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vault.backup.definition import ScheduleDefinition, check_schedule_name
from vault.backup.lease import Lease
from vault.backup.schedule import DEFAULT_GRACE
from vault.catalog.backups import BackupIndex, BackupRun, ScheduleRecord
from vault.errors import BackupFailedError, UsageError

Clock = Callable[[], datetime]
HISTORY = 10


@dataclass(frozen=True)
class ScheduleStatus:
    """How one schedule is doing at ``now``."""

    name: str
    enabled: bool
    last_success: datetime | None
    last_run: BackupRun | None
    next_due: datetime | None
    overdue_slot: datetime | None
    running: bool
    interrupted: bool

    @property
    def overdue(self) -> bool:
        """A slot's backup has not happened (see the module docstring)."""
        return self.overdue_slot is not None

    @property
    def failed(self) -> bool:
        """The newest run failed or was interrupted."""
        return self.interrupted or (self.last_run is not None and self.last_run.outcome == "failed")

    @property
    def needs_attention(self) -> bool:
        """Counted by ``backup status``'s exit code 17."""
        return self.enabled and (self.overdue or self.failed)

    def to_json(self) -> dict[str, Any]:
        """The ``backup status --json`` shape of one schedule."""
        run = self.last_run
        return {
            "name": self.name,
            "enabled": self.enabled,
            "last_success": _iso(self.last_success),
            "last_run": None
            if run is None
            else {
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "outcome": "interrupted" if self.interrupted else run.outcome,
                "slot": _iso(run.slot),
                "objects_copied": run.objects_copied,
                "bytes_copied": run.bytes_copied,
                "error": run.error,
            },
            "next_due": _iso(self.next_due),
            "overdue": self.overdue,
            "overdue_since": _iso(self.overdue_slot),
            "running": self.running,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class StatusReport:
    """Every schedule's status at one instant."""

    now: datetime
    schedules: tuple[ScheduleStatus, ...]

    def problems(self) -> list[str]:
        """One phrase per schedule that needs attention."""
        out = []
        for s in self.schedules:
            if not s.needs_attention:
                continue
            what = []
            if s.overdue and s.overdue_slot is not None:
                what.append(f"overdue since {s.overdue_slot:%Y-%m-%d %H:%M} UTC")
            if s.failed:
                what.append("its last run was interrupted" if s.interrupted else "its last run failed")
            out.append(f"{s.name}: {' and '.join(what)}")
        return out

    def raise_for_problems(self) -> None:
        """BackupFailedError (exit 17) naming every schedule that is overdue or failed."""
        problems = self.problems()
        if problems:
            raise BackupFailedError(
                f"{len(problems)} backup schedule(s) need attention: {'; '.join(problems)}"
            )

    def to_json(self) -> dict[str, Any]:
        """The ``backup status --json`` shape."""
        return {
            "now": _iso(self.now),
            "ok": not self.problems(),
            "schedules": [s.to_json() for s in self.schedules],
        }


@dataclass(frozen=True)
class ScheduleDetails:
    """One schedule with its recent runs, its lease and its status, for ``backup schedule show``."""

    record: ScheduleRecord
    runs: tuple[BackupRun, ...]
    lease: Lease | None
    status: ScheduleStatus


def schedule_status(
    record: ScheduleRecord,
    last_run: BackupRun | None,
    lease: Lease | None,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> ScheduleStatus:
    """The status of ``record`` at ``now`` (see the module docstring)."""
    unfinished = last_run is not None and last_run.outcome == "running"
    running = unfinished and lease is not None and lease.is_live(now)
    cron = record.definition.cron
    next_due = overdue = None
    if record.enabled:
        next_due = cron.next_after(record.slots_from)
        expected = cron.latest_at_or_before(now - grace)
        covered = (
            record.enabled_at if record.last_success is None else max(record.enabled_at, record.last_success)
        )
        caught_up = (
            running and last_run is not None and expected is not None and last_run.started_at >= expected
        )
        if expected is not None and expected > covered and not caught_up:
            overdue = expected
    return ScheduleStatus(
        name=record.name,
        enabled=record.enabled,
        last_success=record.last_success,
        last_run=last_run,
        next_due=next_due,
        overdue_slot=overdue,
        running=running,
        interrupted=unfinished and not running,
    )


class BackupSchedules:
    """The schedules of one catalog, with an injected clock."""

    def __init__(self, catalog: BackupIndex, *, principal: str, clock: Clock) -> None:
        self._catalog = catalog
        self._principal = principal
        self._clock = clock

    def add(self, definition: ScheduleDefinition) -> ScheduleRecord:
        """Save a new, enabled schedule (refused: a name in use, a lock not longer than the cadence)."""
        now = self._clock()
        definition.check_lock_cadence(now)
        return self._catalog.add_backup_schedule(definition, self._principal, now)

    def list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        return self._catalog.backup_schedules()

    def show(self, name: str) -> ScheduleDetails:
        """A schedule with its newest runs, its lease and its status."""
        record = self._catalog.backup_schedule(check_schedule_name(name))
        runs = tuple(self._catalog.backup_run_history(name, HISTORY))
        lease = self._catalog.backup_lease_store().current(name)
        status = schedule_status(record, runs[0] if runs else None, lease, self._clock())
        return ScheduleDetails(record, runs, lease, status)

    def remove(self, name: str) -> ScheduleRecord:
        """Delete a schedule, its lease and run history; never a backup (refused while it runs)."""
        return self._catalog.remove_backup_schedule(check_schedule_name(name), self._clock())

    def enable(self, name: str) -> ScheduleRecord:
        """Enable ``name``; a disabled schedule restarts from now, without catching up on its pause."""
        return self._catalog.set_backup_schedule_enabled(check_schedule_name(name), True, self._clock())

    def disable(self, name: str) -> ScheduleRecord:
        """Disable ``name``: ``run --due`` skips it and ``status`` does not count it."""
        return self._catalog.set_backup_schedule_enabled(check_schedule_name(name), False, self._clock())

    def status(self, grace: timedelta = DEFAULT_GRACE) -> StatusReport:
        """Every schedule's status now."""
        if grace < timedelta(0):
            raise UsageError("the grace period must not be negative")
        now = self._clock()
        latest = self._catalog.latest_backup_runs()
        leases = self._catalog.backup_lease_store()
        statuses = []
        for record in self._catalog.backup_schedules():
            run = latest.get(record.name)
            lease = leases.current(record.name) if run is not None and run.outcome == "running" else None
            statuses.append(schedule_status(record, run, lease, now, grace))
        return StatusReport(now, tuple(statuses))


def schedule_json(record: ScheduleRecord) -> dict[str, Any]:
    """The ``backup schedule ls --json`` shape of one schedule."""
    d = record.definition
    policy, lock, target = d.retention, d.object_lock, d.target
    return {
        "name": d.name,
        "cron": d.cron.expression,
        "tz": d.cron.timezone,
        "enabled": record.enabled,
        "target": {
            "url": target.url,
            "endpoint_url": target.endpoint_url,
            "profile": target.profile,
            "region": target.region,
        },
        "include": list(d.include),
        "retention": {
            "keep_last": policy.keep_last,
            "keep_hourly": policy.keep_hourly,
            "keep_daily": policy.keep_daily,
            "keep_weekly": policy.keep_weekly,
            "keep_monthly": policy.keep_monthly,
            "keep_yearly": policy.keep_yearly,
            "keep_within_seconds": None
            if policy.keep_within is None
            else int(policy.keep_within.total_seconds()),
        },
        "object_lock": None if lock is None else {"mode": lock.mode, "retain_days": lock.retain_days},
        "catch_up": d.catch_up,
        "max_runtime_seconds": None if d.max_runtime is None else int(d.max_runtime.total_seconds()),
        "enabled_at": _iso(record.enabled_at),
        "last_scheduled": _iso(record.last_scheduled),
        "last_started": _iso(record.last_started),
        "last_success": _iso(record.last_success),
        "last_error": record.last_error,
        "created_at": _iso(record.created_at),
        "created_by": record.created_by,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
