"""What the signing commands and ``pull`` share: the signature service, named keys, and reports.

The vault-side modules are imported inside the functions that use them, so the offline
``mlvault verify PATH --signature F --key K`` — the deploy-host check, with no vault, no catalog
and no credentials — imports neither SQLAlchemy nor boto3.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vault.clientstate import ClientState

from . import output
from .secrets import read_secret

if TYPE_CHECKING:
    from vault.attestation import PullVerifier, SignatureService
    from vault.clientstate.signing_keys import SigningKeys
    from vault.service import Vault
    from vault.signing.signers import Signer

KEY_PASSPHRASE_ENV = "MLVAULT_KEY_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret

KeyPassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-passphrase-file",
        help=f"Read the signing-key passphrase from this file ({KEY_PASSPHRASE_ENV}).",
    ),
]


def key_passphrase(passphrase_file: Path | None, what: str, *, confirm: bool = False) -> bytes:
    """The signing-key passphrase: from the file, ``MLVAULT_KEY_PASSPHRASE``, or a prompt."""
    return read_secret(
        passphrase_file,
        label="key passphrase",
        env_var=KEY_PASSPHRASE_ENV,
        file_option="--key-passphrase-file",
        prompt=f"Passphrase for {what}: ",
        needed_for=f"{what} needs a passphrase",
        confirm=confirm,
    )


def signing_keys() -> SigningKeys:
    """The named signing keys of this client."""
    return ClientState.default().signing_keys()


def local_signer(name: str, passphrase_file: Path | None) -> Signer:
    """A signer for a named key or key file; asks for a passphrase only if it is encrypted."""
    return signing_keys().signer(name, lambda: key_passphrase(passphrase_file, f"key {name}"))


def signature_service(v: Vault) -> SignatureService:
    """The signing service for an open vault, with this client's trust pins."""
    from vault import attestation

    return attestation.for_vault(v, ClientState.default().trust_pins)


def note_pin(fingerprint: str | None) -> None:
    """Say on stderr that this command pinned a trust-policy admin key (trust on first use)."""
    if fingerprint:
        output.err.print(
            f"note: pinned trust-policy admin key {fingerprint} for this vault (first use); "
            "a policy signed by any other key will be refused",
            markup=False,
        )


def pull_verifier(v: Vault, *, verify: bool) -> PullVerifier | None:
    """The signature check ``mlvault pull`` hands to ``Vault.pull``, or a loud warning without one."""
    if not verify:
        output.err.print(
            "warning: signature verification disabled; the pulled files are NOT checked against the "
            "vault's trust policy (--no-verify)",
            markup=False,
        )
        return None
    return signature_service(v).pull_verifier()


def report_pull_verification(check: PullVerifier | None, *, quiet: bool = False) -> None:
    """Say on stderr which trusted keys vouched for the pulled version (or that none had to)."""
    if check is None or not check.ran:
        return
    if check.report is None:
        if quiet:
            return
        output.err.print(
            "signatures: not checked (no trust policy rule covers this artifact; see `mlvault trust`)",
            markup=False,
        )
        return
    report = check.report
    note_pin(report.admin_pinned_now)
    output.err.print(
        f"signatures: {len(report.trusted_signers)} trusted signature(s) "
        f"({', '.join(s[:16] for s in report.trusted_signers)}) under rule {report.rule!r}",
        markup=False,
    )
