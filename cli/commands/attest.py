"""``mlvault attest REF``: an admin signs a provenance record for a version readers now refuse.

Under an access policy every version needs a valid provenance record (:mod:`vault.access.records`);
a version pushed outside mlvault, one whose record was lost, or one whose pusher was never allowed
is refused with exit 13 until an admin looks at it and re-attests it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vault.errors import NotFoundError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, identity_loader, open_vault
from ..output import emit_json
from ..verification import KeyPassphraseFileOpt, local_signer

if TYPE_CHECKING:
    from vault.signing.signers import Signer


def _signer(name: str | None, passphrase_file: Path | None) -> Signer | None:
    if name is None:
        return None
    from vault.signing.signers import LocalSigner

    try:
        return local_signer(name, passphrase_file)
    except NotFoundError:
        return LocalSigner(identity_loader(name)().ecdsa_private)


@app.command("attest")
@handle_errors
@global_options
def attest(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to vouch for: team/name@v3, @tag, @sha256:<hex>.")],
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            help="Admin key to sign with (signing key or identity); default: --identity, else the owner.",
        ),
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-attest a version: sign a provenance record for it as an admin (needs admin on it)."""
    with open_vault(ctx) as v:
        v.require("admin", ref, action="attest")  # before a key file's passphrase is asked for
        version, digest = v.attest(ref, _signer(admin_key, key_passphrase_file))
    if json_out:
        emit_json({"artifact": version.artifact, "number": version.number, "record": digest})
        return
    output.out.print(
        f"{version.artifact}@v{version.number} attested (provenance record {digest[:16]})", markup=False
    )
