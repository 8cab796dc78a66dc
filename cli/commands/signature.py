"""``mlvault signature export``: a stored signature bundle, for offline ``mlvault verify``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vault.errors import DestinationExistsError, UsageError

from .. import output
from ..app import app, global_options, handle_errors, open_vault
from ..verification import signature_service

signature_app = typer.Typer(help="Signatures stored in the vault.", no_args_is_help=True)
app.add_typer(signature_app, name="signature")


@signature_app.command("export")
@handle_errors
@global_options
def signature_export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Signed version, e.g. team/resnet@v3.")],
    out: Annotated[str, typer.Option("--output", "-o", help="Bundle file to write ('-' for stdout).")],
    signer: Annotated[
        str | None, typer.Option("--signer", help="Fingerprint (or its first 8+ digits) of the signing key.")
    ] = None,
) -> None:
    """Write one stored signature bundle to a file, for `mlvault verify PATH --signature`."""
    with open_vault(ctx) as v:
        v.require("read", ref, action="verify")
        bundle = signature_service(v).export_signature(ref, signer)
    if out == "-":
        sys.stdout.buffer.write(bundle)
        sys.stdout.flush()
        return
    try:
        with open(out, "xb") as fh:
            fh.write(bundle)
    except FileExistsError as exc:
        raise DestinationExistsError(f"{out} already exists; choose another file or remove it") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from exc
    output.err.print(f"wrote the signature of {ref} to {out}", markup=False)
