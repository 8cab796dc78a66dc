"""``mlvault rekey NS [--reencrypt]``: a new data-key epoch for a namespace, optionally re-encrypting it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vault.keys.rekey import RekeyResult, SlotRewrite

from .. import output
from ..app import JsonOpt, QuietOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json, human_size, progress_bar

DropOpt = Annotated[
    bool,
    typer.Option(
        "--drop-unrewrappable",
        help="Remove slots the new keys cannot be wrapped to: recipients with no recorded public key, "
        "and (when the owner key is rotated) passphrases other than the one given.",
    ),
]
ReencryptOpt = Annotated[
    bool,
    typer.Option(
        "--reencrypt",
        help="Also rewrite every chunk and manifest under the newest epoch (resumable), then retire "
        "the older epochs.",
    ),
]


def _owner_rotation(result: RekeyResult) -> None:
    rotation = result.owner_rotation
    if rotation is None:
        return
    output.out.print(
        f"owner key rotated (a slot that could open it was removed): {len(rotation.written)} owner key "
        f"slots and {rotation.keyrings} keyring owner slots rewritten",
        markup=False,
    )
    for slot_id in rotation.dropped:
        output.out.print(f"dropped owner key slot {slot_id} (could not be rewrapped)", markup=False)
    for slot_id in rotation.damaged:
        output.err.print(f"warning: damaged key slot {slot_id} left in place", markup=False)
    if result.needs_rekey:
        output.err.print(
            f"note: namespace(s) {', '.join(result.needs_rekey)} still use key epochs the old owner key "
            "could open; rekey them too",
            markup=False,
        )


def _slots(rewrite: SlotRewrite) -> None:
    for slot_id in rewrite.dropped:
        output.out.print(f"dropped recipient slot {slot_id} (no recorded public key)", markup=False)
    for slot_id in rewrite.damaged:
        output.err.print(f"warning: damaged key slot {slot_id} left in place", markup=False)


@app.command()
@handle_errors
@global_options
def rekey(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="Top-level namespace, e.g. team.")],
    reencrypt: ReencryptOpt = False,
    drop_unrewrappable: DropOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Start a new data-key epoch for NAMESPACE: new writes use it, old data stays readable.

    Every key slot of the namespace's keyring is written again (new slot ids) and the old ones are
    deleted; a recipient removed before the rekey cannot open anything written after it, and after
    --reencrypt cannot open anything at all. When a slot that opens the owner key (passphrase, KMS,
    recovery) was removed since the owner key was last rotated, the owner key is rotated first.
    """
    with open_vault(ctx) as v:
        v.gate.require_admin("rekey")
        if reencrypt:
            with progress_bar("re-encrypting", not (quiet or json_out)) as advance:
                report = v.rekey(
                    namespace, reencrypt=True, drop_unrewrappable=drop_unrewrappable, progress=advance
                )
        else:
            report = v.rekey(namespace, drop_unrewrappable=drop_unrewrappable)
    if json_out:
        emit_json(report)
        return
    result = report.rekey
    _owner_rotation(result)
    rewritten = f"; {len(result.slots.written)} key slots rewritten" if result.slots else ""
    output.out.print(f"namespace {namespace}: key epoch {result.epoch}{rewritten}", markup=False)
    if result.slots:
        _slots(result.slots)
    stats = report.reencrypted
    if stats is not None:
        output.out.print(
            f"re-encrypted {stats.chunks} chunks ({human_size(stats.bytes_read)} read, "
            f"{human_size(stats.bytes_written)} written in {stats.packs_written} packs) and "
            f"{stats.manifests} manifests in {stats.seconds:.2f} s; epochs before {stats.epoch} retired; "
            f"{stats.packs_vacated} old packs left for garbage collection",
            markup=False,
        )
    if report.retired is not None:
        _slots(report.retired)
