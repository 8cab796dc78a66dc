"""``mlvault keys ls / add-passphrase / add-kms / add-recipient / add-recovery / export-recovery / rm``.

Not to be confused with ``mlvault key …`` (:mod:`cli.commands.keys`), which manages signing keys in
the client's config directory. Each command opens the vault with the usual sources (identity, KMS,
passphrase), calls one :class:`vault.Vault` method and prints the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vault.clientstate.identities import MAX_PUBLIC_BYTES, PublicIdentity
from vault.crypto.kdf import KdfParams
from vault.errors import DestinationExistsError, UsageError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json
from ..secrets import read_secret
from .identity import IdentityPassphraseFileOpt, identity_passphrase

NEW_PASSPHRASE_ENV = "MLVAULT_NEW_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret

keys_app = typer.Typer(
    help="The vault's key slots: passphrases, AWS KMS, recipients (identities) and the recovery recipient.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

LabelOpt = Annotated[str | None, typer.Option("--label", help="A name for the slot (kept in the catalog).")]


def _read_public(path: Path) -> PublicIdentity:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PUBLIC_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read public identity {path}: {exc.strerror}") from exc
    return PublicIdentity.parse(data, f"public identity {path}")


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


@keys_app.command("ls")
@handle_errors
@global_options
def keys_ls(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List every key slot: what it opens, its kind, label, creation and last use."""
    with open_vault(ctx) as v:
        slots = v.key_slots()
    if json_out:
        emit_json(slots)
        return
    table = Table("slot", "kind", "opens", "recipient / KMS key", "label", "created", "last used", box=None)
    for s in slots:
        opens = "owner key" if s.opens == "owner" else f"namespace {s.namespace or s.ring}"
        who = s.recipient[:16] if s.recipient else (s.kms_key_id or "")
        kind = s.kind if s.kind != "damaged" else f"damaged ({s.damage})"
        table.add_row(s.slot_id, kind, opens, who, s.label or "", _when(s.created_at), _when(s.last_used_at))
    output.out.print(table)


@keys_app.command("add-passphrase")
@handle_errors
@global_options
def keys_add_passphrase(
    ctx: typer.Context,
    label: LabelOpt = None,
    new_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--new-passphrase-file", help=f"Read the new passphrase from this file ({NEW_PASSPHRASE_ENV})."
        ),
    ] = None,
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Add another passphrase that opens the owner key (the vault is opened first)."""
    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    with open_vault(ctx) as v:
        v.gate.require_admin("add key slots")  # before the owner key is unlocked
        v.unlock(owner=True)
        secret = read_secret(
            new_passphrase_file,
            label="new passphrase",
            env_var=NEW_PASSPHRASE_ENV,
            file_option="--new-passphrase-file",
            prompt="New passphrase: ",
            needed_for="the new passphrase is needed",
            confirm=True,
        )
        slot_id = v.add_passphrase_slot(secret, kdf, label=label, allow_slow_kdf=ctx.obj.allow_slow_kdf)
    output.out.print(f"added passphrase slot {slot_id}", markup=False)


@keys_app.command("add-kms")
@handle_errors
@global_options
def keys_add_kms(
    ctx: typer.Context,
    kms_key_id: Annotated[str, typer.Argument(help="KMS key id, ARN or alias (symmetric ENCRYPT_DECRYPT).")],
    label: LabelOpt = None,
) -> None:
    """Wrap the owner key with AWS KMS (GenerateDataKey; EncryptionContext vault, keyring, slot)."""
    with open_vault(ctx) as v:
        slot_id = v.add_kms_slot(kms_key_id, label=label)
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
    output.out.print(f"added aws-kms slot {slot_id} (key {info.kms_key_id})", markup=False)


@keys_app.command("add-recipient")
@handle_errors
@global_options
def keys_add_recipient(
    ctx: typer.Context,
    public_file: Annotated[
        Path, typer.Argument(help="Public identity file (identity export NAME --public).")
    ],
    namespace: Annotated[str, typer.Option("--namespace", help="Top-level namespace to grant, e.g. team.")],
    label: LabelOpt = None,
) -> None:
    """Wrap a namespace's keyring to an identity: it can then READ AND PUSH there.

    Write implies read: pushing needs the namespace's id key (for dedup) and current data key,
    and either lets the holder decrypt, so a recipient slot grants both.
    """
    public = _read_public(public_file)
    with open_vault(ctx) as v:
        slot_id = v.add_recipient(public, namespace, label=label)
    output.out.print(
        f"added x25519 slot {slot_id}: identity {public.name} ({public.fingerprint[:16]}) can read and push "
        f"namespace {namespace}",
        markup=False,
    )


@keys_app.command("add-recovery")
@handle_errors
@global_options
def keys_add_recovery(
    ctx: typer.Context,
    public_file: Annotated[
        Path | None, typer.Argument(help="Public identity file of the recovery recipient.")
    ] = None,
    generate: Annotated[
        bool,
        typer.Option(
            "--generate", help="Generate the recovery identity and keep it sealed under the owner key."
        ),
    ] = False,
    label: LabelOpt = None,
) -> None:
    """Wrap the owner key to a recovery identity: its private key opens (and restores) everything."""
    if generate == (public_file is not None):
        raise UsageError("give either a public identity file or --generate (not both)")
    public = _read_public(public_file) if public_file is not None else None
    with open_vault(ctx) as v:
        slot_id = v.add_recovery(public, label=label)
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
    kept = " (kept sealed under the owner key; `keys export-recovery` writes it out)" if generate else ""
    output.out.print(
        f"added recovery slot {slot_id}: identity {info.recipient and info.recipient[:16]} "
        f"opens the owner key{kept}",
        markup=False,
    )


@keys_app.command("export-recovery")
@handle_errors
@global_options
def keys_export_recovery(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Identity file to create (never overwritten).")],
    slot_id: Annotated[
        str | None, typer.Argument(help="Recovery slot id (see keys ls); needed only if there are several.")
    ] = None,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Write the private keys unencrypted (mode 0600).")
    ] = False,
    identity_passphrase_file: IdentityPassphraseFileOpt = None,
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Write the recovery identity the vault keeps to an identity file (`backup restore --recovery-key`)."""
    from vault.clientstate.identities import identity_file_bytes
    from vault.keys.recovery import write_new_file

    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    if out.exists() or out.is_symlink():
        raise DestinationExistsError(f"{out} already exists; refusing to overwrite it")
    with open_vault(ctx) as v:
        chosen, identity = v.kept_recovery(slot_id)
    secret = (
        None
        if no_passphrase
        else identity_passphrase(
            identity_passphrase_file, f"the exported recovery identity {out}", confirm=True
        )
    )
    write_new_file(out, identity_file_bytes(identity, secret, kdf))
    form = "unencrypted, mode 0600" if no_passphrase else "encrypted with Argon2id, mode 0600"
    output.out.print(
        f"wrote the recovery identity of slot {chosen} ({identity.public.fingerprint[:16]}) "
        f"to {out} ({form})",
        markup=False,
    )


@keys_app.command("rm")
@handle_errors
@global_options
def keys_rm(
    ctx: typer.Context, slot_id: Annotated[str, typer.Argument(help="Slot id (see keys ls).")]
) -> None:
    """Remove a key slot; the last slot that opens the owner key is never removed."""
    with open_vault(ctx) as v:
        removed = v.remove_slot(slot_id)
    output.out.print(f"removed {removed.kind} slot {slot_id}", markup=False)
