"""``mlvault backup``: schedule add/ls/show/rm/enable/disable, status, cron-line, run, ls, restore.

Schedules live in the catalog (:mod:`vault.backup.schedules`); these commands open the vault for its
catalog only and never unlock a key. ``status`` prints every schedule, then exits 17
(:class:`vault.errors.BackupFailedError`) when an enabled one is overdue or its last run failed.
"""

from __future__ import annotations

import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vault.backup.definition import Target, parse_definition, parse_duration
from vault.backup.retention import format_duration
from vault.backup.trigger import trigger_units
from vault.errors import UsageError

if TYPE_CHECKING:
    import vault
    from vault.backup.schedules import ScheduleDetails, ScheduleStatus
    from vault.backup.signature import Acceptance
    from vault.catalog.backups import ScheduleRecord

from .. import output
from ..app import (
    JsonOpt,
    app,
    global_options,
    handle_errors,
    open_vault,
    settings_of,
)
from ..output import emit_json
from ..settings import require_vault

backup_app = typer.Typer(help="Scheduled backups of the vault to another location.", no_args_is_help=True)
schedule_app = typer.Typer(help="Backup schedules, kept in the catalog.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")
backup_app.add_typer(schedule_app, name="schedule")

NameArg = Annotated[str, typer.Argument(help="Schedule name.")]


def _count(flag: str, what: str) -> object:
    return typer.Option(flag, min=0, help=f"Keep the newest snapshot of each of the last N {what}.")


def _when(value: datetime | None, never: str = "never") -> str:
    return never if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def target_url(to: str) -> str:
    """``to`` as a URL cron can use: relative paths made absolute."""
    # A relative path would name another directory when cron runs the backup.
    return to if "://" in to else str(Path(to).expanduser().absolute())


def _program() -> str:
    # The mlvault installed beside the Python running now, else the one on PATH: cron's PATH is short.
    beside = Path(sys.executable).parent / "mlvault"
    if beside.is_file():
        return str(beside)
    found = shutil.which("mlvault")
    if found is None:
        raise UsageError("cannot find the mlvault executable; install it or add it to PATH first")
    return str(Path(found).absolute())


def _next_run(record: ScheduleRecord) -> str:
    if not record.enabled:
        return "disabled"
    cron = record.definition.cron
    slot = cron.next_after(record.slots_from)
    if cron.timezone == "UTC":
        return _when(slot)
    return f"{_when(slot)} ({slot.astimezone(record.definition.retention.tz):%H:%M} {cron.timezone})"


@schedule_app.command("add")
@handle_errors
@global_options
def schedule_add(
    ctx: typer.Context,
    name: NameArg,
    cron: Annotated[str, typer.Option("--cron", help="Cron expression, e.g. '30 2 * * *'.")],
    to: Annotated[
        str, typer.Option("--to", help="Target: an absolute path, file:///path or s3://bucket/prefix.")
    ],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the cron expression.")] = "UTC",
    target_endpoint_url: Annotated[
        str | None, typer.Option("--target-endpoint-url", help="S3-compatible endpoint of the target.")
    ] = None,
    target_profile: Annotated[str | None, typer.Option("--target-profile", help="AWS profile.")] = None,
    target_region: Annotated[str | None, typer.Option("--target-region", help="AWS region.")] = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Back up only what this pattern matches (repeatable)."),
    ] = None,
    keep_last: Annotated[int, typer.Option("--keep-last", min=0, help="Keep the N newest snapshots.")] = 0,
    keep_hourly: Annotated[int, _count("--keep-hourly", "hours")] = 0,
    keep_daily: Annotated[int, _count("--keep-daily", "days")] = 0,
    keep_weekly: Annotated[int, _count("--keep-weekly", "ISO weeks")] = 0,
    keep_monthly: Annotated[int, _count("--keep-monthly", "months")] = 0,
    keep_yearly: Annotated[int, _count("--keep-yearly", "years")] = 0,
    keep_within: Annotated[
        str | None,
        typer.Option("--keep-within", help="Keep every snapshot this close to the newest, e.g. 30d."),
    ] = None,
    object_lock: Annotated[
        str | None, typer.Option("--object-lock", help="S3 Object Lock mode: governance or compliance.")
    ] = None,
    retain_days: Annotated[
        int | None, typer.Option("--retain-days", help="Days each object stays locked (with --object-lock).")
    ] = None,
    catch_up: Annotated[
        str, typer.Option("--catch-up", help="Missed runs: 'once' runs one for all of them, 'skip' none.")
    ] = "once",
    max_runtime: Annotated[
        str | None, typer.Option("--max-runtime", help="Stop a run that takes longer, e.g. 6h.")
    ] = None,
) -> None:
    """Save a backup schedule (it runs when `backup run --due` finds it due)."""
    definition = parse_definition(
        name=name,
        cron=cron,
        tz=tz,
        target=Target(target_url(to), target_endpoint_url, target_profile, target_region),
        include=include or (),
        keep={
            "last": keep_last,
            "hourly": keep_hourly,
            "daily": keep_daily,
            "weekly": keep_weekly,
            "monthly": keep_monthly,
            "yearly": keep_yearly,
        },
        keep_within=keep_within,
        object_lock=object_lock,
        retain_days=retain_days,
        catch_up=catch_up,
        max_runtime=max_runtime,
    )
    with open_vault(ctx) as v:
        record = v.backup_schedules().add(definition)
    output.out.print(
        f"added backup schedule {record.name}: {definition.cron.expression!r} in {definition.cron.timezone} "
        f"to {definition.target.url}; next run {_next_run(record)}",
        markup=False,
    )


@schedule_app.command("ls")
@handle_errors
@global_options
def schedule_ls(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the backup schedules."""
    with open_vault(ctx) as v:
        records = v.backup_schedules().list()
    if json_out:
        from vault.backup.schedules import schedule_json

        emit_json([schedule_json(r) for r in records])
        return
    table = Table("name", "cron", "zone", "target", "retention", "last success", "next run", box=None)
    for r in records:
        d = r.definition
        table.add_row(
            r.name,
            d.cron.expression,
            d.cron.timezone,
            d.target.url,
            d.retention.describe().removeprefix("keep "),
            _when(r.last_success),
            _next_run(r),
        )
    output.out.print(table)


def _show_lines(details: ScheduleDetails) -> list[str]:
    r, d = details.record, details.record.definition
    lock = d.object_lock
    lease = details.lease
    return [
        f"schedule     {r.name} ({'enabled' if r.enabled else 'disabled'})",
        f"cron         {d.cron.expression} in {d.cron.timezone}; catch-up {d.catch_up}",
        f"target       {d.target.url}"
        + "".join(
            f"; {k} {val}"
            for k, val in (
                ("endpoint", d.target.endpoint_url),
                ("profile", d.target.profile),
                ("region", d.target.region),
            )
            if val
        ),
        f"include      {', '.join(d.include) if d.include else 'everything'}",
        f"retention    {d.retention.describe()}",
        f"object lock  {'none' if lock is None else f'{lock.mode}, {lock.retain_days} days'}",
        f"max runtime  {'none' if d.max_runtime is None else format_duration(d.max_runtime)}",
        f"created      {_when(r.created_at)} by {r.created_by}",
        f"last success {_when(r.last_success)}",
        f"last error   {r.last_error or '-'}",
        f"next run     {_next_run(r)}",
        f"lease        {'-' if lease is None else f'{lease.owner}, heartbeat {_when(lease.heartbeat_at)}'}",
        f"status       {_state(details.status)}",
    ]


@schedule_app.command("show")
@handle_errors
@global_options
def schedule_show(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Show a schedule, its state and its newest runs."""
    with open_vault(ctx) as v:
        details = v.backup_schedules().show(name)
    if json_out:
        from vault.backup.schedules import schedule_json

        emit_json({**schedule_json(details.record), "status": details.status.to_json(), "runs": details.runs})
        return
    output.out.print("\n".join(_show_lines(details)), markup=False)
    if details.runs:
        table = Table("run", "slot", "started", "finished", "outcome", "objects", "bytes", "error", box=None)
        for run in details.runs:
            table.add_row(
                str(run.id),
                _when(run.slot, "by hand"),
                _when(run.started_at),
                _when(run.finished_at, "-"),
                run.outcome,
                str(run.objects_copied),
                output.human_size(run.bytes_copied),
                run.error or "",
            )
        output.out.print(table)


@schedule_app.command("rm")
@handle_errors
@global_options
def schedule_rm(ctx: typer.Context, name: NameArg) -> None:
    """Delete a schedule and its run history. Its backups are NOT deleted."""
    with open_vault(ctx) as v:
        record = v.backup_schedules().remove(name)
    output.out.print(
        f"removed backup schedule {record.name} and its run history; its backups at "
        f"{record.definition.target.url} were not deleted",
        markup=False,
    )


@schedule_app.command("enable")
@handle_errors
@global_options
def schedule_enable(ctx: typer.Context, name: NameArg) -> None:
    """Enable a schedule; it does not catch up on the time it was disabled."""
    with open_vault(ctx) as v:
        record = v.backup_schedules().enable(name)
    output.out.print(f"enabled backup schedule {record.name}; next run {_next_run(record)}", markup=False)


@schedule_app.command("disable")
@handle_errors
@global_options
def schedule_disable(ctx: typer.Context, name: NameArg) -> None:
    """Disable a schedule: `backup run --due` skips it and `backup status` does not count it."""
    with open_vault(ctx) as v:
        record = v.backup_schedules().disable(name)
    output.out.print(f"disabled backup schedule {record.name}", markup=False)


def _state(status: ScheduleStatus) -> str:
    if not status.enabled:
        return "disabled"
    parts = []
    if status.running:
        parts.append("running")
    if status.overdue:
        parts.append(f"OVERDUE since {_when(status.overdue_slot)}")
    if status.failed:
        parts.append("INTERRUPTED" if status.interrupted else "FAILED")
    return ", ".join(parts) or "ok"


@backup_app.command("status")
@handle_errors
@global_options
def backup_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Per schedule: last success, last run, next run, overdue? Exit 17 when any is overdue or failed."""
    with open_vault(ctx) as v:
        report = v.backup_schedules().status()
    if json_out:
        emit_json(report.to_json())
    else:
        table = Table("schedule", "state", "last success", "last run", "next run", box=None)
        for s in report.schedules:
            run = s.last_run
            last = (
                "never"
                if run is None
                else f"{_when(run.started_at)} {'interrupted' if s.interrupted else run.outcome}"
            )
            table.add_row(s.name, _state(s), _when(s.last_success), last, _when(s.next_due, "-"))
        output.out.print(table)
    report.raise_for_problems()


def _job_identity(name: str) -> str:
    # cron cannot type a passphrase, and its working directory and config dir may differ: the file.
    from vault.clientstate import ClientState

    identities = ClientState.default().identities()
    if identities.encrypted(name):
        raise UsageError(
            f"identity {name} is passphrase-encrypted and cron cannot type a passphrase: give the backup "
            "job an unencrypted identity (`mlvault identity new NAME --no-passphrase`, file mode 0600)"
        )
    return str(identities.find(name).expanduser().absolute())


@backup_app.command("cron-line")
@handle_errors
@global_options
def backup_cron_line(
    ctx: typer.Context,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", help="Pass --metrics-file to `backup run --due`.")
    ] = None,
) -> None:
    """Print the crontab line, and a systemd service + timer, that run `backup run --due` (as the
    backup job's --identity, named by its file)."""
    settings = settings_of(ctx)
    vault_url = require_vault(settings)
    command = [_program(), "--vault", target_url(vault_url)]
    if settings.catalog:
        from vault.bootstrap import shareable_catalog_url

        command += ["--catalog", shareable_catalog_url(settings.catalog)]
    for flag, value in (
        ("--endpoint-url", settings.endpoint_url),
        ("--profile", settings.profile),
        ("--region", settings.region),
    ):
        if value:
            command += [flag, value]
    if settings.allow_insecure_http:
        command.append("--allow-insecure-http")
    if settings.identity:
        command += ["--identity", _job_identity(settings.identity)]
    command += ["backup", "run", "--due"]
    if metrics_file is not None:
        command += ["--metrics-file", str(metrics_file.expanduser().absolute())]
    output.out.print(trigger_units(command).render(), markup=False, end="")


def accepted_signers(v: vault.Vault) -> Acceptance:
    """Who may sign this vault's snapshots: its verified access policy's service principals, the admin."""
    from vault.backup.anchor import vault_acceptance
    from vault.clientstate import ClientState

    state = ClientState.default()
    return vault_acceptance(state, v.config.vault_id, v.access(state).current().policy)


@backup_app.command("run")
@handle_errors
@global_options
def backup_run(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Run this schedule now (else give --due).")] = None,
    due: Annotated[bool, typer.Option("--due", help="Run every enabled schedule that is due.")] = False,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", help="Write Prometheus textfile metrics here.")
    ] = None,
    ping_url: Annotated[
        str | None, typer.Option("--ping-url", help="Healthchecks-style URL: /start, success, /fail.")
    ] = None,
    lease_ttl: Annotated[
        str, typer.Option("--lease-ttl", help="A run whose heartbeat is older than this is taken over.")
    ] = "10m",
) -> None:
    """Back up now as the job's identity (--identity; never prompts, needs no key that decrypts); exit 17
    when any run failed, 8 when the identity may not sign this vault's snapshots."""
    if (name is None) == (not due):
        raise UsageError("give a schedule NAME or --due, not both")
    ttl = parse_duration(lease_ttl, "--lease-ttl")
    from vault.backup.job import BackupJob
    from vault.signing.signers import LocalSigner

    with open_vault(ctx) as v:
        identity = v.keys.identity()
        signer = None if identity is None else LocalSigner(identity.ecdsa_private)
        job = BackupJob(signer, accepted_signers(v), v.audit)
        runner = v.backup_runner(lease_ttl=ttl, allow_insecure_http=settings_of(ctx).allow_insecure_http)
        if name is None:
            report = runner.run_due(metrics_file=metrics_file, ping_url=ping_url, job=job)
        else:
            report = runner.run_named(name, metrics_file=metrics_file, ping_url=ping_url, job=job)
    for warning in report.warnings:
        output.err.print(f"warning: {warning}", markup=False)
    if not report.runs:
        output.out.print("no backup schedule is due", markup=False)
    for r in report.runs:
        snap = f", snapshot {r.snapshot_id}" if r.snapshot_id else ""
        copied = (
            ""
            if r.outcome == "skipped"
            else f"; {r.objects_copied} objects ({output.human_size(r.bytes_copied)}) copied"
        )
        output.out.print(
            f"{r.schedule}: {r.outcome}{snap}{copied}" + (f": {r.message}" if r.message else ""), markup=False
        )
    report.raise_for_failures()


@backup_app.command("ls")
@handle_errors
@global_options
def backup_ls(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """The snapshots on a schedule's target: id, time, versions, objects, bytes added."""
    with open_vault(ctx) as v:
        snapshots = v.backup_runner().snapshots(name)
    rows = [s.summary() for s in snapshots]
    if json_out:
        emit_json(rows)
        return
    table = Table("snapshot", "time", "versions", "objects", "size", "added", box=None)
    for s, row in zip(snapshots, rows, strict=True):
        sizes = (output.human_size(row["bytes"]), output.human_size(row["bytes_added"]))
        table.add_row(row["id"], _when(s.created_at), str(row["versions"]), str(row["objects"]), *sizes)
    output.out.print(table)
