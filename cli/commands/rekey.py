"""``mlvault rekey NS [--reencrypt]``: a new data-key epoch for a namespace, optionally re-encrypting it."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json

DropOpt = Annotated[
    bool,
    typer.Option(
        "--drop-unrewrappable",
        help="Remove recipient slots the new keyring cannot be wrapped to (no recorded public key).",
    ),
]


@app.command()
@handle_errors
@global_options
def rekey(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="Top-level namespace, e.g. team.")],
    drop_unrewrappable: DropOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Start a new data-key epoch for NAMESPACE: new writes use it, old data stays readable.

    Every key slot of the namespace's keyring is written again (new slot ids) and the old ones are
    deleted; a recipient removed before the rekey cannot open anything written after it.
    """
    with open_vault(ctx) as v:
        result = v.rekey(namespace, drop_unrewrappable=drop_unrewrappable)
    if json_out:
        emit_json(result)
        return
    assert result.slots is not None
    output.out.print(
        f"namespace {namespace}: key epoch {result.epoch}; {len(result.slots.written)} key slots rewritten",
        markup=False,
    )
    for slot_id in result.slots.dropped:
        output.out.print(f"dropped recipient slot {slot_id} (no recorded public key)", markup=False)
    for slot_id in result.slots.damaged:
        output.err.print(f"warning: damaged key slot {slot_id} left in place", markup=False)
