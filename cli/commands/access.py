"""``mlvault principal …``, ``grant``, ``deny``, ``revoke`` and ``access ls / explain``: the access policy.

Every change signs a new serial of the vault's access policy with ``--admin-key`` (a signing key, or
an identity whose signing key is the admin key); a read grant on ``NS/*`` also wraps keyring NS to
the principal's identity, and losing it removes that slot and rekeys NS (:mod:`vault.access.service`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vault.clientstate import ClientState
from vault.errors import NotFoundError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, identity_loader, open_vault
from ..output import emit_json
from ..verification import KeyPassphraseFileOpt, local_signer, note_pin

if TYPE_CHECKING:
    from vault.access.service import AccessControl, AccessState
    from vault.clientstate.identities import PublicIdentity
    from vault.service import Vault
    from vault.signing.signers import Signer

principal_app = typer.Typer(help="Principals: the people and services grants name.", no_args_is_help=True)
access_app = typer.Typer(help="The vault's access policy: list it, explain a decision.", no_args_is_help=True)
app.add_typer(principal_app, name="principal")
app.add_typer(access_app, name="access")

AdminKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        help="An admin key: a signing key or an identity (name or file); default: the --identity "
        "acting (a delegated admin), else the owner identity.",
    ),
]
PrincipalArg = Annotated[str, typer.Argument(help="Principal name (see `principal ls`).")]
PatternArg = Annotated[str, typer.Argument(help="Pattern: 'team/*', 'team/vision/+', 'team/vision/resnet'.")]
CapsArg = Annotated[str, typer.Argument(help="Capabilities: list,read,push,tag,sign,delete,admin.")]


def admin_signer(name: str | None, passphrase_file: Path | None, v: Vault) -> Signer:
    """The admin key ``name``: a signing key, else an identity's signing key; without one, the
    ``--identity`` the command acts as (once a policy exists), else the owner."""
    from vault.access.service import access_pins
    from vault.keys.owner_identity import policy_signer
    from vault.signing.signers import LocalSigner

    explicit: Signer | None = None
    if name is not None:
        try:
            explicit = local_signer(name, passphrase_file)
        except NotFoundError:
            explicit = LocalSigner(identity_loader(name)().ecdsa_private)
    state, exists = ClientState.default(), v.catalog.latest_access_policy() is not None
    if explicit is None and exists and v.keys.sources.identity is not None:
        acting = v.keys.identity()  # --identity of a principal: a delegated admin signs as itself
        explicit = None if acting is None else LocalSigner(acting.ecdsa_private)
    signer, pinned = policy_signer(
        v.keys, v.backend, access_pins(state), explicit, policy_exists=exists, fallback=state.trust_pins
    )
    note_pin(pinned)
    return signer


def read_public(path: Path) -> PublicIdentity:
    """A public identity file (``identity export NAME --public``)."""
    from vault.clientstate.identities import MAX_PUBLIC_BYTES, PublicIdentity
    from vault.errors import UsageError

    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PUBLIC_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read public identity {path}: {exc.strerror}") from exc
    return PublicIdentity.parse(data, f"public identity {path}")


def control(v: Vault) -> AccessControl:
    """The access policy of an open vault, with this client's pins."""
    return v.access(ClientState.default())


def report(state: AccessState, what: str) -> None:
    """Say what changed: the new serial, the key slots added or removed, what stays readable."""
    note_pin(state.pinned_now)
    serial = state.policy.serial if state.policy else 0
    output.out.print(f"{what} (access policy serial {serial}, signed by {state.signer})", markup=False)
    for change in state.key_changes:
        if change.added_slot:
            output.out.print(
                f"added x25519 slot {change.added_slot}: {change.principal} can now decrypt namespace "
                f"{change.namespace}",
                markup=False,
            )
            continue
        output.out.print(
            f"removed {change.principal}'s key slot(s) on namespace {change.namespace} and rekeyed it "
            f"(epoch {change.epoch}); {len(change.readable_before)} version(s) were readable to "
            f"{change.principal} before and stay so with keys they kept (`mlvault rekey {change.namespace} "
            "--reencrypt` re-encrypts them)",
            markup=False,
        )
        for ref in change.readable_before:
            output.out.print(f"  {ref}", markup=False)


# No @global_options here: after the subcommand, --identity names the new principal's public
# identity, not the identity that opens the vault (give global options before the subcommand).
@principal_app.command("add")
@handle_errors
def principal_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Principal name, unique among live principals.")],
    identity: Annotated[
        Path,
        typer.Option("--identity", help="The principal's public identity file (identity export --public)."),
    ],
    admin_key: AdminKeyOpt = None,
    kind: Annotated[str, typer.Option("--kind", help="user or service.")] = "user",
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry date, e.g. 2027-06-30.")] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Add a principal with a fresh id (it holds no grants yet)."""
    from vault.access.principals import parse_expiry

    public = read_public(identity)
    until = parse_expiry(expires) if expires else None
    with open_vault(ctx) as v:
        v.gate.require_admin("add principals")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        state = control(v).add_principal(name, public, admin, kind=kind, expires=until)
    report(state, f"added principal {name} ({kind}, identity {public.fingerprint[:16]})")


@principal_app.command("ls")
@handle_errors
@global_options
def principal_ls(
    ctx: typer.Context,
    removed: Annotated[bool, typer.Option("--all", help="Include removed principals.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List principals: name, kind, id, identity, expiry."""
    with open_vault(ctx) as v:
        v.gate.require_admin("list principals")
        principals = control(v).principals(include_removed=removed)
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "kind": p.kind,
            "fingerprint": p.fingerprint,
            "signing_fingerprint": p.signing_fingerprint,
            "expires": p.expires.isoformat() if p.expires else None,
            "added_at": p.added_at.isoformat(),
            "removed_at": p.removed_at.isoformat() if p.removed_at else None,
        }
        for p in principals
    ]
    if json_out:
        emit_json(rows)
        return
    table = Table("name", "kind", "id", "identity", "expires", "removed", box=None)
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            r["id"],
            str(r["fingerprint"])[:16],
            r["expires"] or "-",
            r["removed_at"] or "",
        )
    output.out.print(table)


@principal_app.command("rm")
@handle_errors
@global_options
def principal_rm(
    ctx: typer.Context,
    name: PrincipalArg,
    admin_key: AdminKeyOpt = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Remove a principal: its grants go with it; a principal re-added under the name starts with none."""
    with open_vault(ctx) as v:
        v.gate.require_admin("remove principals")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        state = control(v).remove_principal(name, admin)
    report(state, f"removed principal {name}")


@principal_app.command("rename")
@handle_errors
@global_options
def principal_rename(
    ctx: typer.Context,
    name: PrincipalArg,
    new_name: Annotated[str, typer.Argument(help="The new name.")],
    admin_key: AdminKeyOpt = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Rename a principal; it keeps its id and grants."""
    with open_vault(ctx) as v:
        v.gate.require_admin("rename principals")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        state = control(v).rename_principal(name, new_name, admin)
    report(state, f"renamed principal {name} to {new_name}")


@app.command("grant")
@handle_errors
@global_options
def grant(
    ctx: typer.Context,
    principal: PrincipalArg,
    pattern: PatternArg,
    capabilities: CapsArg,
    admin_key: AdminKeyOpt = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Grant capabilities on a pattern (read on NS/* also wraps keyring NS to the principal)."""
    from vault.access.patterns import check_pattern, parse_capabilities

    check_pattern(pattern)
    caps = parse_capabilities(capabilities)
    with open_vault(ctx) as v:
        v.gate.require_admin("grant")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        access = control(v)
        state = access.grant(principal, pattern, caps, admin)
        views = [g for g in access.grants(principal) if g.pattern == pattern and not g.deny]
    report(state, f"granted {','.join(sorted(caps))} on {pattern} to {principal}")
    for view in views:
        if view.enforced_by == "policy":
            output.err.print(f"note: {view.note}", markup=False)


@app.command("deny")
@handle_errors
@global_options
def deny(
    ctx: typer.Context,
    principal: PrincipalArg,
    pattern: PatternArg,
    admin_key: AdminKeyOpt = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Deny everything on a pattern; a deny wins over every grant, admin included."""
    from vault.access.patterns import check_pattern

    check_pattern(pattern)
    with open_vault(ctx) as v:
        v.gate.require_admin("deny")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        state = control(v).deny(principal, pattern, admin)
    report(state, f"denied {pattern} to {principal}")


@app.command("revoke")
@handle_errors
@global_options
def revoke(
    ctx: typer.Context,
    principal: PrincipalArg,
    pattern: PatternArg,
    admin_key: AdminKeyOpt = None,
    capabilities: Annotated[str | None, typer.Argument(help="Capabilities to remove.")] = None,
    remove_deny: Annotated[
        bool, typer.Option("--deny", help="Remove the deny on the pattern instead.")
    ] = False,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Remove capabilities from the grant on exactly PATTERN (losing read on NS/* rekeys NS)."""
    from vault.access.patterns import check_pattern, parse_capabilities
    from vault.errors import UsageError

    check_pattern(pattern)
    if remove_deny == (capabilities is not None):
        raise UsageError("give the capabilities to revoke, or --deny to remove a deny (not both)")
    caps = parse_capabilities(capabilities) if capabilities is not None else frozenset()
    with open_vault(ctx) as v:
        v.gate.require_admin("revoke")  # before the admin key is loaded
        admin = admin_signer(admin_key, key_passphrase_file, v)
        state = control(v).revoke(principal, pattern, caps, admin, deny=remove_deny)
    what = "the deny" if remove_deny else ",".join(sorted(caps))
    report(state, f"revoked {what} on {pattern} from {principal}")


@access_app.command("ls")
@handle_errors
@global_options
def access_ls(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option("--principal", help="Only this principal's rules.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every grant and deny, and whether keys or only policy enforce it."""
    with open_vault(ctx) as v:
        v.gate.require_admin("list grants")
        views = control(v).grants(principal)
    if json_out:
        emit_json(views)
        return
    table = Table("principal", "pattern", "capabilities", "enforced by", "note", box=None)
    for g in views:
        table.add_row(
            g.principal, g.pattern, "DENY" if g.deny else ",".join(g.capabilities), g.enforced_by, g.note
        )
    output.out.print(table)


@access_app.command("explain")
@handle_errors
@global_options
def access_explain(
    ctx: typer.Context,
    principal: PrincipalArg,
    action: Annotated[str, typer.Argument(help="pull, push, tag, sign, ls, log, rm, … or a capability.")],
    path: Annotated[str, typer.Argument(help="An artifact or namespace path, e.g. team/vision/resnet.")],
    json_out: JsonOpt = False,
) -> None:
    """Would PRINCIPAL be allowed ACTION on PATH, and which rule decides (or default deny)."""
    with open_vault(ctx) as v:
        v.gate.require_explain(principal)
        answer = control(v).explain(principal, action, path)
    if json_out:
        emit_json(answer)
        return
    verdict = "allowed" if answer.allowed else "denied"
    output.out.print(
        f"{verdict}: {principal} {action} {answer.path} (needs {answer.capability})", markup=False
    )
    output.out.print(answer.reason, markup=False)
