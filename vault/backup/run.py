"""``backup run``: run schedules under their lease, copy what the target lacks, write a snapshot.

For each schedule that runs (every enabled one that is due for ``--due``, or the one named):

1. Take its lease (:class:`vault.catalog.leases.SqlLeaseStore`); a live lease means another process
   runs it, and the schedule is *skipped* with the holder's name. With the lease held, ``--due``
   checks again whether the schedule is due (the plan was made before: another process may have
   run the slot and released its lease meanwhile), and skips it when it no longer is. A newest
   run still marked ``running`` whose lease could be taken was interrupted (its process died): it
   is recorded as failed, and ``--due`` runs its slot again even when no new slot is due.
2. Start a run row, claim the target (its ``backup/target`` marker must name this vault, exit 8
   otherwise; an empty target gets the marker first), and export the catalog rows
   (:mod:`vault.catalog.export`) — *before* listing storage: a push stores its objects before it
   commits its rows, so every object the rows name is in the listing that follows.
3. Copy every vault object the target lacks, verbatim (:mod:`vault.backup.copy`), heartbeating the
   lease every third of its TTL; a heartbeat that finds the lease taken over stops the run. Sizes
   of objects already there come from the newest readable object list, else from the target.
4. Write the object list, then the sealed snapshot (:mod:`vault.backup.snapshot`) to the vault's
   recovery recipients, signed by the job's identity (:mod:`vault.backup.job`): the sealed one is
   the commit point, so an interrupted run leaves no snapshot and only complete objects, and the
   next run copies the rest. With Object Lock (:mod:`vault.backup.objectlock`) all is written
   locked; objects retained snapshots need get their retain-until moved to now + the lock period.
5. Record the run in the audit log (an unrecordable run fails), finish the run row (objects and
   bytes written, snapshot included), release the lease.

With include patterns, :func:`vault.backup.include.select_included` picks the rows and objects.
Nothing here decrypts: the job needs storage, catalog, the recovery recipients' public keys
(:func:`vault.backup.job.recovery_recipients`; a vault without one is refused, exit 2) and its own
signing key; before anything runs, a job whose snapshots the vault would not accept is refused
(exit 8). :meth:`RunReport.raise_for_failures` turns failures into exit 17; pings and
the metrics file never fail a backup (their problems become warnings).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from vault import layout
from vault.backup import snapshot
from vault.backup.copy import copy_objects
from vault.backup.definition import ScheduleDefinition, Target
from vault.backup.forget import retained_keys
from vault.backup.include import select_included
from vault.backup.job import (
    BackupJob,
    exported_checkpoints,
    record_run,
    recovery_recipients,
    seal_run_snapshot,
)
from vault.backup.lease import LeaseOwner, validate_ttl
from vault.backup.metrics import RunRecord, write_metrics
from vault.backup.objectlock import extend_locks, put_object, run_retention
from vault.backup.ping import HealthcheckPinger
from vault.catalog import Catalog
from vault.catalog.backups import BackupRun, ScheduleRecord
from vault.catalog.export import export_rows
from vault.errors import (
    BackupFailedError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
)
from vault.storage import Backend, StorageOptions, open_backend
from vault.storage.base import Retention

Clock = Callable[[], datetime]
OpenTarget = Callable[[Target], Backend]
DEFAULT_LEASE_TTL = timedelta(minutes=10)


def this_process() -> LeaseOwner:
    """The lease owner for this process."""
    return LeaseOwner(socket.gethostname()[:255] or "localhost", os.getpid())


def target_opener(allow_insecure_http: bool = False) -> OpenTarget:
    """Opens a schedule's target with its own storage options (never the vault's)."""

    def open_target(target: Target) -> Backend:
        options = StorageOptions(target.endpoint_url, target.profile, target.region, allow_insecure_http)
        return open_backend(target.url, options, create=True)

    return open_target


@dataclass(frozen=True)
class ScheduleRun:
    """What happened to one schedule in this invocation."""

    schedule: str
    outcome: str  # success, failed, skipped
    message: str = ""
    snapshot_id: str | None = None
    objects_copied: int = 0
    bytes_copied: int = 0
    refused: bool = False  # failed on a configuration error (another vault's target, a foreign one)


@dataclass(frozen=True)
class RunReport:
    """Every schedule this invocation ran or skipped, and the warnings it printed."""

    runs: tuple[ScheduleRun, ...]
    warnings: tuple[str, ...] = ()

    def raise_for_failures(self) -> None:
        """BackupFailedError (exit 17) naming every failed run; ConfigurationError (exit 8) when each
        failure was a refused target."""
        failed = [r for r in self.runs if r.outcome == "failed"]
        if failed and all(r.refused for r in failed):
            raise ConfigurationError("; ".join(f"{r.schedule}: {r.message}" for r in failed))
        if failed:
            raise BackupFailedError(
                f"{len(failed)} backup run(s) failed: "
                + "; ".join(f"{r.schedule}: {r.message}" for r in failed)
            )


@dataclass
class _Progress:
    objects: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


class BackupRunner:
    """Runs the backup schedules of one vault (storage + catalog), with an injected clock."""

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        vault_id: str,
        *,
        clock: Clock,
        owner: LeaseOwner | None = None,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        open_target: OpenTarget | None = None,
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._vault_id = vault_id
        self._clock = clock
        self._owner = owner or this_process()
        self._ttl = validate_ttl(lease_ttl)
        self._open_target = open_target or target_opener()
        self._leases = catalog.backup_lease_store()

    def run_due(
        self, *, metrics_file: Path | None = None, ping_url: str | None = None, job: BackupJob | None = None
    ) -> RunReport:
        """Run every enabled schedule that is due (or whose last run was interrupted)."""
        job = job or BackupJob()
        pinger = None if ping_url is None else HealthcheckPinger(ping_url)
        self._check_job(job, pinger)
        now = self._clock()
        latest = self._catalog.latest_backup_runs()
        plan: list[tuple[ScheduleRecord, datetime | None]] = []
        for record in self._catalog.backup_schedules():
            if not record.enabled:
                continue
            d = record.definition
            slots_due = d.cron.due_runs(record.slots_from, now, d.catch_up)
            last = latest.get(record.name)
            if slots_due:
                plan.append((record, slots_due[0]))
            elif last is not None and last.outcome == "running" and self._interrupted(record.name, now):
                plan.append((record, last.slot))
        return self._run_plan(plan, latest, metrics_file, pinger, job, due=True)

    def run_named(
        self,
        name: str,
        *,
        metrics_file: Path | None = None,
        ping_url: str | None = None,
        job: BackupJob | None = None,
    ) -> RunReport:
        """Run schedule ``name`` now, due or not."""
        job = job or BackupJob()
        pinger = None if ping_url is None else HealthcheckPinger(ping_url)
        self._check_job(job, pinger)
        record = self._catalog.backup_schedule(name)
        latest = self._catalog.latest_backup_runs()
        return self._run_plan([(record, None)], latest, metrics_file, pinger, job)

    def _check_job(self, job: BackupJob, pinger: HealthcheckPinger | None) -> None:
        """Refuse (exit 8) a job whose snapshots the vault would not accept; monitoring hears of it."""
        try:
            job.acceptance.check_job(job.signer, self._clock())
        except ConfigurationError as exc:
            if pinger is not None:
                pinger.fail(f"refused: {exc}")  # a warning it may return is lost with the refusal
            raise

    def snapshots(self, name: str) -> list[snapshot.ObjectList]:
        """The snapshots on schedule ``name``'s target, oldest first (no key needed)."""
        target = self._open_target(self._catalog.backup_schedule(name).definition.target)
        try:
            owner = snapshot.read_marker(target)
            if owner is not None and owner != self._vault_id:
                raise IntegrityError(f"the backup target {target.url} belongs to vault {owner}")
            return [snapshot.read_object_list(target, sid) for sid in snapshot.snapshot_ids(target)]
        finally:
            target.close()

    def _interrupted(self, name: str, now: datetime) -> bool:
        lease = self._leases.current(name)
        return lease is None or not lease.is_live(now)

    def _run_plan(
        self,
        plan: list[tuple[ScheduleRecord, datetime | None]],
        latest: dict[str, BackupRun],
        metrics_file: Path | None,
        pinger: HealthcheckPinger | None,
        job: BackupJob,
        *,
        due: bool = False,
    ) -> RunReport:
        warnings: list[str] = []
        if plan:
            recovery_recipients(self._backend, self._catalog, self._vault_id)  # refuse early (exit 2)
        if plan and job.signer is None:
            warnings.append(
                "snapshots are not signed: this vault's access policy lists no backup service principal "
                "(see `mlvault principal add NAME FILE.pub --kind service`), so anyone holding the recovery "
                "public key and write access to the target could forge one"
            )
        if pinger is not None:
            warnings += [w for w in [pinger.start()] if w]
        runs = [self._run_one(record, slot, latest.get(record.name), job, due=due) for record, slot in plan]
        report = RunReport(tuple(runs), tuple(warnings))
        failed = [r for r in runs if r.outcome == "failed"]
        if pinger is not None:
            summary = (
                "; ".join(f"{r.schedule}: {r.outcome} {r.message}".strip() for r in runs) or "nothing due"
            )
            warning = pinger.fail(summary) if failed else pinger.success(summary)
            if warning:
                warnings.append(warning)
        if metrics_file is not None:
            try:
                write_metrics(metrics_file, self._metric_records())
            except (MlvaultError, OSError) as exc:
                warnings.append(f"could not write the metrics file {metrics_file}: {exc}")
        return RunReport(report.runs, tuple(warnings))

    def _metric_records(self) -> list[RunRecord]:
        records = []
        for schedule in self._catalog.backup_schedules():
            history = self._catalog.backup_run_history(schedule.name, 50)
            finished = [r for r in history if r.finished_at is not None]
            picks = finished[:1] + [r for r in finished if r.outcome == "success"][:1]
            for run in {r.id: r for r in picks}.values():
                assert run.finished_at is not None
                records.append(
                    RunRecord(
                        run.schedule,
                        run.started_at,
                        run.finished_at,
                        run.outcome == "success",
                        run.bytes_copied,
                    )
                )
        return records

    def _run_one(
        self,
        record: ScheduleRecord,
        slot: datetime | None,
        last: BackupRun | None,
        job: BackupJob,
        *,
        due: bool = False,
    ) -> ScheduleRun:
        name = record.name
        now = self._clock()
        if not self._leases.try_acquire(name, self._owner, now, self._ttl):
            lease = self._leases.current(name)
            holder = (
                "another process"
                if lease is None
                else f"{lease.owner} (live until {lease.expires_at:%H:%M:%S} UTC)"
            )
            return ScheduleRun(name, "skipped", f"already running in {holder}")
        try:
            # The plan was made before the lease: another process may have run this schedule and
            # released its lease since. Under the lease, the catalog's state is the one to trust.
            last = self._catalog.latest_backup_runs().get(name, last)
            if due:
                try:
                    record = self._catalog.backup_schedule(name)
                except NotFoundError:
                    return ScheduleRun(name, "skipped", "the schedule was removed meanwhile")
                d = record.definition
                slots_due = d.cron.due_runs(record.slots_from, now, d.catch_up) if record.enabled else []
                if slots_due:
                    slot = slots_due[0]
                elif last is not None and last.outcome == "running":
                    slot = last.slot  # interrupted: its lease was free, so its process is gone
                else:
                    return ScheduleRun(name, "skipped", "another process ran it meanwhile; nothing is due")
            if last is not None and last.outcome == "running":
                with contextlib.suppress(NotFoundError):  # it ended meanwhile
                    self._catalog.finish_backup_run(
                        last.id,
                        now,
                        success=False,
                        error="interrupted: its process stopped before the run ended",
                    )
            run_id = self._catalog.start_backup_run(name, slot, now)
            progress = _Progress()
            try:
                beat = self._keepalive(name, now, record)
                snapshot_id = self._backup(record.definition, progress, beat, job)
            except Exception as exc:  # noqa: BLE001 — every failure is recorded, then reported
                message = (
                    str(exc) if isinstance(exc, MlvaultError) else f"unexpected {type(exc).__name__}: {exc}"
                )
                message = record_run(job, name, None, progress.objects, progress.bytes, message) or message
                self._finish(run_id, False, progress, message)
                refused = isinstance(exc, ConfigurationError)
                return ScheduleRun(name, "failed", message, None, progress.objects, progress.bytes, refused)
            unrecorded = record_run(job, name, snapshot_id, progress.objects, progress.bytes, None)
            self._finish(run_id, unrecorded is None, progress, unrecorded)
            if unrecorded is not None:
                return ScheduleRun(name, "failed", unrecorded, snapshot_id, progress.objects, progress.bytes)
            return ScheduleRun(name, "success", "", snapshot_id, progress.objects, progress.bytes)
        finally:
            self._leases.release(name, self._owner)

    def _finish(self, run_id: int, success: bool, progress: _Progress, error: str | None) -> None:
        # NotFoundError: another run took the lease over and closed this row as interrupted.
        with contextlib.suppress(NotFoundError):
            self._catalog.finish_backup_run(
                run_id,
                self._clock(),
                success=success,
                objects_copied=progress.objects,
                bytes_copied=progress.bytes,
                error=error,
            )

    def _keepalive(self, name: str, started: datetime, record: ScheduleRecord) -> Callable[[], None]:
        last = [started]
        limit = record.definition.max_runtime

        def beat() -> None:
            now = self._clock()
            if limit is not None and now - started > limit:
                raise BackupFailedError("the run took longer than its --max-runtime and was stopped")
            if now - last[0] >= self._ttl / 3:
                if not self._leases.heartbeat(name, self._owner, now):
                    raise ConflictError(
                        f"the lease of backup schedule {name!r} was taken over; this run stopped"
                    )
                last[0] = now

        return beat

    def _backup(
        self,
        definition: ScheduleDefinition,
        progress: _Progress,
        beat: Callable[[], None],
        job: BackupJob,
    ) -> str:
        target = self._open_target(definition.target)
        try:
            snapshot.claim_target(target, self._vault_id)
            retention = run_retention(definition, target, self._clock())
            rows = export_rows(self._catalog)
            if definition.include:
                rows, included = select_included(rows, definition.include)
            else:
                included = None
            wanted = exported_checkpoints(rows, included)
            sizes, fresh = self._copy_missing(target, progress, beat, retention, wanted)
            created = self._clock()
            snapshot_id, listing, sealed = seal_run_snapshot(
                self._vault_id,
                definition.name,
                created,
                rows,
                sizes,
                (progress.objects, progress.bytes),
                recovery_recipients(self._backend, self._catalog, self._vault_id),
                job.signer,
            )
            put_object(target, layout.snapshot_objects_key(snapshot_id), listing, retention)
            put_object(target, layout.snapshot_key(snapshot_id), sealed, retention)
            progress.objects += 2
            progress.bytes += len(listing) + len(sealed)
            if retention is not None:
                fresh |= {layout.snapshot_key(snapshot_id), layout.snapshot_objects_key(snapshot_id)}
                kept = retained_keys(target, self._vault_id, definition.retention, created, job.acceptance)
                extend_locks(target, kept - fresh, retention, after_each=beat)
            return snapshot_id
        finally:
            target.close()

    def _copy_missing(
        self,
        target: Backend,
        progress: _Progress,
        beat: Callable[[], None],
        retention: Retention | None,
        wanted: Callable[[str], bool] | None = None,
    ) -> tuple[dict[str, int], set[str]]:
        present = {key for key in target.list() if not layout.is_backup_key(key)}
        known = self._known_sizes(target)
        sizes: dict[str, int] = {}
        missing: list[tuple[str, int]] = []
        keys = (k for k in self._backend.list() if not layout.is_backup_key(k))
        for key in sorted(k for k in keys if wanted is None or wanted(k)):
            if key in present:
                sizes[key] = known[key] if key in known else target.size(key)
            else:
                sizes[key] = self._backend.size(key)
                missing.append((key, sizes[key]))

        def after_each(written: int) -> None:
            if written >= 0:
                progress.objects += 1
                progress.bytes += written
            beat()

        copy_objects(self._backend, target, missing, after_each=after_each, retention=retention)
        return sizes, {key for key, _ in missing}

    def _known_sizes(self, target: Backend) -> dict[str, int]:
        for snapshot_id in reversed(snapshot.snapshot_ids(target)):
            try:
                listing = snapshot.read_object_list(target, snapshot_id)
            except (IntegrityError, NotFoundError):
                continue
            if listing.vault_id == self._vault_id:
                return listing.objects
        return {}
