"""``mlvault backup forget``, ``backup verify`` and ``backup restore``: a schedule's target.

Registered on the ``backup`` group of :mod:`cli.commands.backup`. ``forget`` needs only the catalog
and the target (no key); ``verify`` needs a key only for ``--read-data`` (the vault's keys, opened
as ``pull`` opens them) and the recovery identity only to check snapshot authenticity. ``restore``
needs no catalog: only the target and the recovery identity.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vault.clientstate import ClientState
from vault.errors import UsageError
from vault.keycache import utc_now
from vault.storage import StorageOptions, open_backend

from .. import output
from ..app import (
    JsonOpt,
    global_options,
    handle_errors,
    identity_loader,
    open_vault,
    settings_of,
    storage_options,
)
from ..output import emit_json
from ..settings import passphrase_reader
from .backup import NameArg, accepted_signers, backup_app, target_url


@backup_app.command("forget")
@handle_errors
@global_options
def backup_forget(
    ctx: typer.Context,
    name: NameArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each snapshot and the rule that keeps it; delete nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Apply the schedule's retention to its target and delete what no kept snapshot needs."""
    from vault.backup.forget import forget_schedule
    from vault.backup.run import target_opener, this_process

    opener = target_opener(settings_of(ctx).allow_insecure_http)
    with open_vault(ctx) as v:
        v.gate.require_admin("backup forget")  # before the target is opened or anything deleted
        report = forget_schedule(
            v.catalog,
            v.backend,
            v.config.vault_id,
            name,
            open_target=opener,
            owner=this_process(),
            clock=utc_now,
            acceptance=accepted_signers(v),
            dry_run=dry_run,
        )
    if json_out:
        emit_json(
            {
                "dry_run": report.dry_run,
                "snapshots": [
                    {"id": d.snapshot.id, "time": d.snapshot.time.isoformat(), "keep": list(d.reasons)}
                    for d in report.decisions
                ],
                "snapshots_removed": report.snapshots_removed,
                "objects_deleted": report.objects_deleted,
                "bytes_deleted": report.bytes_deleted,
                "locked_kept": report.locked_kept,
            }
        )
        return
    table = Table("snapshot", "time", "decision", box=None)
    for d in report.decisions:
        decision = "keep: " + ", ".join(d.reasons) if d.keep else "remove"
        table.add_row(d.snapshot.id, f"{d.snapshot.time:%Y-%m-%d %H:%M} UTC", decision)
    output.out.print(table)
    verb = "would remove" if dry_run else "removed"
    locked = f"; {len(report.locked_kept)} unreferenced objects kept: locked" if report.locked_kept else ""
    output.out.print(
        f"{verb} {len(report.snapshots_removed)} snapshots and {report.objects_deleted} objects "
        f"({output.human_size(report.bytes_deleted)}){locked}",
        markup=False,
    )


@backup_app.command("verify")
@handle_errors
@global_options
def backup_verify(
    ctx: typer.Context,
    name: NameArg,
    snapshot_id: Annotated[
        str | None, typer.Option("--snapshot", help="Check this snapshot only (default: all).")
    ] = None,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Decrypt every chunk of every referenced pack (needs a key).")
    ] = False,
    read_data_subset: Annotated[
        str | None, typer.Option("--read-data-subset", help="Decrypt a deterministic sample, e.g. 5%.")
    ] = None,
    recovery_key: Annotated[
        str | None,
        typer.Option("--recovery-key", help="Recovery identity: also check snapshot authenticity."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a schedule's target end to end without restoring; exit 5 on damage, naming the objects."""
    if read_data and read_data_subset is not None:
        raise UsageError("give --read-data or --read-data-subset, not both")
    from vault.backup.run import target_opener
    from vault.backup.verify import parse_fraction, verify_schedule

    fraction = 1.0 if read_data else None if read_data_subset is None else parse_fraction(read_data_subset)
    settings = settings_of(ctx)
    key = recovery_key or settings.identity
    with open_vault(ctx) as v:
        v.gate.require_admin("backup verify")  # before an identity's passphrase is asked for
        identity = identity_loader(key)() if key else None
        report = verify_schedule(
            v.catalog,
            v.config.vault_id,
            name,
            open_target=target_opener(settings.allow_insecure_http),
            snapshot_id=snapshot_id,
            identity=identity,
            keys=None if fraction is None else v.keys,
            read_fraction=fraction,
            acceptance=accepted_signers(v),
        )
    if json_out:
        emit_json({**vars(report), "ok": report.ok})
    else:
        read = (
            f"; {report.manifests_read} manifests and {report.packs_read} of {report.packs_total} packs "
            f"({report.chunks_checked} chunks) decrypted"
            if fraction is not None
            else ""
        )
        signers = ", ".join(sorted(set(report.signed_by.values()))) or "-"
        output.out.print(
            f"checked {len(report.snapshots)} snapshots (signed by: {signers}), {report.objects_checked} "
            f"objects ({output.human_size(report.bytes_listed)}){read}",
            markup=False,
        )
        for item in report.not_checked:
            output.out.print(f"not checked: {item}", markup=False)
    report.raise_for_damage()


@backup_app.command("restore")
@handle_errors
@global_options
def backup_restore(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Option("--from", help="The backup target (its S3 options: the global ones).")
    ],
    to: Annotated[str, typer.Option("--to", help="Where the new vault goes: an empty path or s3:// URL.")],
    snapshot_id: Annotated[
        str | None, typer.Option("--snapshot", help="Snapshot id (default: newest).")
    ] = None,
    target_catalog: Annotated[
        str | None, typer.Option("--target-catalog", help="Catalog URL of the new vault (default: its own).")
    ] = None,
    recovery_key: Annotated[
        str | None,
        typer.Option(
            "--recovery-key",
            help="The recovery identity (name or file); without it, the one the vault kept, opened with "
            "the owner's passphrase (--passphrase-file, MLVAULT_PASSPHRASE or a prompt).",
        ),
    ] = None,
    target_endpoint_url: Annotated[
        str | None, typer.Option("--target-endpoint-url", help="S3 endpoint of --to.")
    ] = None,
    target_profile: Annotated[
        str | None, typer.Option("--target-profile", help="AWS profile of --to.")
    ] = None,
    target_region: Annotated[str | None, typer.Option("--target-region", help="AWS region of --to.")] = None,
    admin_key_fingerprint: Annotated[
        list[str] | None,
        typer.Option(
            "--admin-key-fingerprint",
            help="The vault's admin key (SHA-256 fingerprint): the snapshot's policies must be signed by it "
            "(default: the admin key this client pinned for the vault).",
        ),
    ] = None,
) -> None:
    """Rebuild a working vault from a backup; needs no catalog, only the target and the recovery key
    (or, when the vault kept its recovery identity, the owner's passphrase)."""
    settings = settings_of(ctx)
    key = recovery_key or settings.identity
    options = storage_options(settings)
    to_options = StorageOptions(
        target_endpoint_url, target_profile, target_region, settings.allow_insecure_http
    )
    backend = open_backend(target_url(source), options)
    try:
        from vault.backup.restore import kept_recovery_identity, restore_vault

        state = ClientState.default()
        report = restore_vault(
            backend,
            identity_loader(key)()
            if key is not None
            else kept_recovery_identity(backend, passphrase_reader(settings), state=state),
            to_url=target_url(to),
            to_options=to_options,
            snapshot_id=snapshot_id,
            target_catalog=target_catalog,
            admin_fingerprints=tuple(admin_key_fingerprint or ()),
            state=state,
        )
    finally:
        backend.close()
    output.out.print(f"{report.describe()} ({output.human_size(report.bytes_copied)})", markup=False)
