"""``mlvault trust add``, ``remove``, ``show`` and ``pin``: the vault's trust policy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json
from ..verification import KeyPassphraseFileOpt, local_signer, note_pin, signature_service

if TYPE_CHECKING:
    from vault.attestation import PolicyView
    from vault.service import Vault
    from vault.signing.signers import Signer

trust_app = typer.Typer(
    help="The vault's trust policy: which keys may sign which artifacts.", no_args_is_help=True
)
app.add_typer(trust_app, name="trust")


AdminKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-key", help="The trust-policy admin key (name or file); default: the vault's owner identity."
    ),
]


def _admin(v: Vault, name: str | None, passphrase_file: Path | None) -> Signer:
    """The key ``name`` (see vault.keys.owner_identity.policy_signer), else the owner identity."""
    from vault.clientstate import ClientState
    from vault.keys.owner_identity import policy_signer

    explicit = local_signer(name, passphrase_file) if name is not None else None
    exists = v.signature_store.latest_policy_row() is not None
    signer, pinned = policy_signer(
        v.keys, v.backend, ClientState.default().trust_pins, explicit, policy_exists=exists
    )
    note_pin(pinned)
    return signer


def _render_policy(view: PolicyView | None, json_out: bool) -> None:
    if view is None:
        if json_out:
            emit_json(None)
        else:
            output.out.print(
                "no trust policy: pulls are not signature-checked (add one with `mlvault trust add`)",
                markup=False,
            )
        return
    rules = [
        {
            "namespace": r.namespace,
            "threshold": r.threshold,
            "keys": [k.fingerprint for k in r.keys],
            "old_syntax": r.namespace in view.legacy,
        }
        for r in view.rules
    ]
    if json_out:
        emit_json(
            {
                "vault_id": view.vault_id,
                "serial": view.serial,
                "admin_fingerprint": view.admin_fingerprint,
                "rules": rules,
            }
        )
        return
    note_pin(view.admin_pinned_now)
    output.out.print(
        f"trust policy serial {view.serial}, signed by admin key {view.admin_fingerprint}", markup=False
    )
    table = Table("namespace", "threshold", "trusted keys", box=None)
    for r in view.rules:
        table.add_row(r.namespace, str(r.threshold), "\n".join(k.fingerprint for k in r.keys))
    output.out.print(table)
    for glob in view.legacy:
        output.err.print(
            f"warning: rule {glob!r} uses the old glob syntax and refuses what it covers (exit 8): replace "
            "it with a pattern ('+' one segment, '*' only at the end) via `trust remove` and `trust add`",
            markup=False,
        )


@trust_app.command("add")
@handle_errors
@global_options
def trust_add(
    ctx: typer.Context,
    namespace: Annotated[
        str, typer.Argument(help="Artifact-name pattern, e.g. 'team/*' or 'team/+/resnet' (as grants).")
    ],
    key: Annotated[Path, typer.Option("--key", "-k", help="Public key PEM to trust.")],
    admin_key: AdminKeyOpt = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Distinct trusted signatures required (default 1).")
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Trust a public key to sign artifacts matching a glob (signs a new policy with the admin key)."""
    from vault.signing.keys import read_public_key_pem

    pem = read_public_key_pem(key)
    with open_vault(ctx) as v:
        v.gate.require_admin("change the trust policy")  # before the admin key is loaded
        admin = _admin(v, admin_key, key_passphrase_file)
        view = signature_service(v).trust_add(namespace, pem, admin, threshold)
    _render_policy(view, json_out)


@trust_app.command("remove")
@handle_errors
@global_options
def trust_remove(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The rule's glob, exactly as listed by `trust show`.")],
    admin_key: AdminKeyOpt = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="Remove only this key from the rule.")
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a rule (or one key of it) from the trust policy."""
    with open_vault(ctx) as v:
        v.gate.require_admin("change the trust policy")  # before the admin key is loaded
        admin = _admin(v, admin_key, key_passphrase_file)
        view = signature_service(v).trust_remove(namespace, admin, fingerprint)
    _render_policy(view, json_out)


@trust_app.command("show")
@handle_errors
@global_options
def trust_show(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the vault's trust policy, verified under the pinned admin key."""
    with open_vault(ctx) as v:
        v.gate.require_member()
        view = signature_service(v).trust_show()
    _render_policy(view, json_out)


@trust_app.command("pin")
@handle_errors
@global_options
def trust_pin(
    ctx: typer.Context,
    fingerprint: Annotated[str, typer.Argument(help="The admin key's fingerprint (64 hex digits).")],
    replace: Annotated[bool, typer.Option("--replace", help="Drop the admin keys pinned before.")] = False,
) -> None:
    """Pin the trust-policy admin key for this vault explicitly instead of trusting it on first use."""
    with open_vault(ctx) as v:
        v.gate.require_admin("pin the trust-policy admin key")
        signature_service(v).pin_admin(fingerprint, replace=replace)
    output.out.print(f"pinned admin key {fingerprint} for this vault", markup=False)
