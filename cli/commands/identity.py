"""``mlvault identity new``, ``identity ls`` and ``identity export``: identities in the config directory.

An identity is an X25519 key pair (opens key slots wrapped to it) and an ECDSA P-256 key pair
(signs); see :mod:`vault.clientstate.identities`. Signing-only keys stay with ``mlvault key``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import UsageError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors
from ..output import emit_json
from ..secrets import read_secret

if TYPE_CHECKING:
    from vault.clientstate.identities import Identities

IDENTITY_PASSPHRASE_ENV = "MLVAULT_IDENTITY_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret

IdentityPassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--identity-passphrase-file",
        help=f"Read the identity passphrase from this file ({IDENTITY_PASSPHRASE_ENV}).",
    ),
]

identity_app = typer.Typer(
    help="Identities (X25519 to open key slots + ECDSA P-256 to sign) in the mlvault config directory.",
    no_args_is_help=True,
)
app.add_typer(identity_app, name="identity")


def identity_passphrase(passphrase_file: Path | None, what: str, *, confirm: bool = False) -> bytes:
    """The identity passphrase: from the file, ``MLVAULT_IDENTITY_PASSPHRASE``, or a prompt."""
    return read_secret(
        passphrase_file,
        label="identity passphrase",
        env_var=IDENTITY_PASSPHRASE_ENV,
        file_option="--identity-passphrase-file",
        prompt=f"Passphrase for {what}: ",
        needed_for=f"{what} needs a passphrase",
        confirm=confirm,
    )


def identities() -> Identities:
    """The identities of this client."""
    return ClientState.default().identities()


@identity_app.command("new")
@handle_errors
@global_options
def identity_new(
    name: Annotated[str, typer.Argument(help="Identity name, e.g. alice or ci-backup.")],
    no_passphrase: Annotated[
        bool,
        typer.Option("--no-passphrase", help="Store the private keys unencrypted (mode 0600), for CI jobs."),
    ] = False,
    identity_passphrase_file: IdentityPassphraseFileOpt = None,
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Create an identity: an X25519 key pair and an ECDSA P-256 key pair."""
    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    ids = identities()
    ids.check_available(name)  # before asking for a passphrase twice
    secret = (
        None
        if no_passphrase
        else identity_passphrase(identity_passphrase_file, f"new identity {name}", confirm=True)
    )
    public = ids.create(name, secret, kdf)
    form = "unencrypted, mode 0600" if no_passphrase else "encrypted with Argon2id"
    output.out.print(f"created identity {public.name} ({form}) in {ids.directory}", markup=False)
    output.out.print(f"fingerprint {public.fingerprint}", markup=False)


@identity_app.command("ls")
@handle_errors
@global_options
def identity_ls(json_out: JsonOpt = False) -> None:
    """List the identities in the config directory."""
    ids = identities()
    rows = [
        {
            "name": p.name,
            "fingerprint": p.fingerprint,
            "signing_fingerprint": p.signing_fingerprint,
            "encrypted": ids.encrypted(p.name),
        }
        for p in ids.list()
    ]
    if json_out:
        emit_json(rows)
        return
    table = Table("name", "fingerprint", "encrypted", box=None)
    for row in rows:
        table.add_row(str(row["name"]), str(row["fingerprint"]), "yes" if row["encrypted"] else "no")
    output.out.print(table)


@identity_app.command("export")
@handle_errors
@global_options
def identity_export(
    name: Annotated[str, typer.Argument(help="Identity name.")],
    public: Annotated[
        bool, typer.Option("--public", help="Print the public identity (JSON) on stdout.")
    ] = False,
) -> None:
    """Print an identity's public half, for `keys add-recipient` on another machine."""
    if not public:
        raise UsageError(
            "only the public identity can be exported: add --public "
            "(exporting the private keys is not offered; they stay in their file)"
        )
    sys.stdout.write(identities().public(name).encode().decode("utf-8"))
