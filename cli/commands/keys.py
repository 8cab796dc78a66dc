"""``mlvault key new``, ``key export`` and ``key list``: signing keys in the config directory."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from vault.crypto.kdf import KdfParams
from vault.errors import UsageError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors
from ..output import emit_json
from ..verification import KeyPassphraseFileOpt, key_passphrase, signing_keys

key_app = typer.Typer(
    help="Signing keys (ECDSA P-256) in the mlvault config directory.", no_args_is_help=True
)
app.add_typer(key_app, name="key")


@key_app.command("new")
@handle_errors
@global_options
def key_new(
    name: Annotated[str, typer.Argument(help="Key name, e.g. release-signer.")],
    unencrypted: Annotated[
        bool, typer.Option("--unencrypted", help="Store as plain PKCS#8 PEM (mode 0600), for CI jobs.")
    ] = False,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Create an ECDSA P-256 signing key in the config directory."""
    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    passphrase = (
        None
        if unencrypted
        else (lambda: key_passphrase(key_passphrase_file, f"new key {name}", confirm=True))
    )
    path, fingerprint = signing_keys().create(name, None if unencrypted else passphrase, kdf)
    form = "unencrypted, mode 0600" if unencrypted else "encrypted with Argon2id"
    output.out.print(f"created signing key {name} ({form}) at {path}", markup=False)
    output.out.print(f"fingerprint {fingerprint}", markup=False)


@key_app.command("export")
@handle_errors
@global_options
def key_export(
    name: Annotated[str, typer.Argument(help="Key name.")],
    public: Annotated[bool, typer.Option("--public", help="Export the public key (PEM) on stdout.")] = False,
    key_passphrase_file: KeyPassphraseFileOpt = None,
) -> None:
    """Print a key's public half (PEM), for `trust add` and deploy hosts."""
    if not public:
        raise UsageError(
            "only the public key can be exported: add --public (the private key stays in its file)"
        )
    pem = signing_keys().public_pem(name, lambda: key_passphrase(key_passphrase_file, f"key {name}"))
    sys.stdout.write(pem.decode("ascii"))


@key_app.command("list")
@handle_errors
@global_options
def key_list(json_out: JsonOpt = False) -> None:
    """List the signing keys in the config directory."""
    rows = signing_keys().list()
    if json_out:
        emit_json(rows)
        return
    table = Table("name", "fingerprint", "protection", box=None)
    for row in rows:
        table.add_row(row.name, row.fingerprint or "?", "passphrase" if row.encrypted else "file mode 0600")
    output.out.print(table)
