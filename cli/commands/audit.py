"""``mlvault audit ls``, ``audit verify`` and ``audit anomalies``: read and check the audit log.

The log lives in the catalog (:mod:`vault.audit.service`); none of these commands opens a key.
``verify`` exits 5 naming the first bad row, and otherwise writes a checkpoint of the head to
storage; ``anomalies`` prints its findings, then exits 16 when there are any (for cron alerting).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vault.audit.chain import utc_text
from vault.backup.definition import parse_duration
from vault.errors import AnomaliesFoundError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json

audit_app = typer.Typer(
    help="The tamper-evident audit log: list, verify, look for anomalies.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")


@audit_app.command("ls")
@handle_errors
@global_options
def audit_ls(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", help="Only rows this recent, e.g. 7d, 12h.")] = None,
    principal: Annotated[str | None, typer.Option("--principal", help="Only rows by this principal.")] = None,
    artifact: Annotated[str | None, typer.Option("--artifact", help="Only rows about this artifact.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (push, pull, tag, ...).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List audit rows, oldest first."""
    window = None if since is None else parse_duration(since, "--since")
    with open_vault(ctx) as v:
        v.gate.require_admin("read the audit log")
        rows = v.audit.rows(since=window, principal=principal, artifact=artifact, action=action)
    if json_out:
        emit_json([{**vars(r), "at": utc_text(r.at)} for r in rows])
        return
    table = Table("seq", "at (UTC)", "principal", "action", "target", "outcome", "details", box=None)
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in sorted(r.details.items()))
        table.add_row(str(r.seq), utc_text(r.at)[:19], r.principal, r.action, r.target, r.outcome, details)
    output.out.print(table)


@audit_app.command("verify")
@handle_errors
@global_options
def audit_verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Check the hash chain against the checkpoints in storage (exit 5 naming the first bad row)."""
    with open_vault(ctx) as v:
        v.gate.require_admin("verify the audit log")
        result = v.audit.verify()
    if json_out:
        emit_json(result)
        return
    output.out.print(f"ok: {result.report.reason}", markup=False)
    if result.signers:
        output.out.print(f"checkpoint signers: {', '.join(s[:16] for s in result.signers)}", markup=False)
    if result.written:
        output.out.print(f"wrote checkpoint at row {result.written[-1]}", markup=False)


@audit_app.command("anomalies")
@handle_errors
@global_options
def audit_anomalies(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="The window: baseline plus the last day.")] = "30d",
    json_out: JsonOpt = False,
) -> None:
    """Compare each principal with its own baseline; exit 16 when anything is found."""
    window = parse_duration(since, "--since")
    with open_vault(ctx) as v:
        v.gate.require_admin("read the audit log")
        found, _ = v.audit.anomalies(window)
    if json_out:
        emit_json(
            [{"principal": a.principal, "kind": a.kind.value, "explanation": a.explanation} for a in found]
        )
    else:
        for a in found:
            output.out.print(f"{a.kind.value}: {a.explanation}", markup=False)
        if not found:
            output.out.print("no anomalies", markup=False)
    if found:
        raise AnomaliesFoundError(f"{len(found)} anomal{'y' if len(found) == 1 else 'ies'} found")
