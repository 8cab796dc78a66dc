"""``mlvault sign`` and ``mlvault verify``: sign a version, check one in the vault or files on disk.

Every verification failure keeps its own exit code (11 malformed, 12 invalid signature,
13 untrusted, 14 content mismatch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vault.errors import UsageError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault, settings_of
from ..output import emit_json
from ..verification import KeyPassphraseFileOpt, local_signer, note_pin, signature_service


@app.command()
@handle_errors
@global_options
def sign(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version to sign, e.g. team/resnet@v3.")],
    key: Annotated[str | None, typer.Option("--key", "-k", help="Signing key name (or key file).")] = None,
    kms_key_id: Annotated[
        str | None, typer.Option("--kms-key-id", help="AWS KMS key (ECC_NIST_P256, SIGN_VERIFY) id or alias.")
    ] = None,
    signer_name: Annotated[
        str | None, typer.Option("--signer-name", help="Name recorded in the signature (default user@host).")
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign a version (OpenSSF Model Signing v1.0 bundle) and store the signature in the vault."""
    if (key is None) == (kms_key_id is None):
        raise UsageError("give exactly one of --key NAME or --kms-key-id ID")
    with open_vault(ctx) as v:
        v.require("sign", ref, action="sign")  # before any key passphrase is asked for
        if key:
            signer = local_signer(key, key_passphrase_file)
        else:
            from vault.signing.kms import open_kms_signer

            settings = settings_of(ctx)
            signer = open_kms_signer(str(kms_key_id), profile=settings.profile, region=settings.region)
        result = signature_service(v).sign(ref, signer, signer_name)
    if json_out:
        emit_json(result)
        return
    output.out.print(
        f"signed {result.artifact}@v{result.number} ({result.files} files) with key "
        f"{result.signer_fingerprint[:16]} as {result.signer_name} (signature #{result.signature_id})",
        markup=False,
    )


@app.command()
@handle_errors
@global_options
def verify(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="A vault reference, or with --signature a directory or file.")
    ],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", "-s", help="Offline: the signature bundle to check TARGET against."),
    ] = None,
    key: Annotated[
        list[Path] | None, typer.Option("--key", "-k", help="Offline: a trusted public key PEM (repeatable).")
    ] = None,
    allow_extra_files: Annotated[
        bool, typer.Option("--allow-extra-files", help="Offline: accept files the signature does not cover.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify signatures: a vault version against the trust policy, or files on disk offline."""
    if signature is not None:
        _verify_offline(Path(target), signature, key or [], allow_extra_files, json_out)
        return
    if key or allow_extra_files:
        raise UsageError("--key and --allow-extra-files are for offline checks: add --signature FILE")
    with open_vault(ctx) as v:
        v.require("read", target, action="verify")
        report = signature_service(v).verify(target)
    if json_out:
        emit_json(report)
        return
    note_pin(report.admin_pinned_now)
    for note in report.ignored:
        output.err.print(f"ignored: {note}", markup=False)
    output.out.print(
        f"verified {report.artifact}@v{report.number}: {len(report.trusted_signers)} trusted signature(s) "
        f"({', '.join(s[:16] for s in report.trusted_signers)}), rule {report.rule!r} "
        f"threshold {report.threshold}",
        markup=False,
    )


def _verify_offline(
    path: Path, signature: Path, public_keys: list[Path], allow_extra: bool, json_out: bool
) -> None:
    from vault.signing.verify import verify_directory

    if not public_keys:
        raise UsageError("--signature needs at least one --key PUBLIC_KEY.pem to verify with")
    statement = verify_directory(path, signature, public_keys, allow_extra)
    claims = dict(statement.extra)
    if json_out:
        emit_json(
            {
                "path": str(path),
                "signer_fingerprint": statement.signer_fingerprint,
                "files": len(statement.files),
                "model_name": statement.model_name,
                "claims": claims,
            }
        )
        return
    signed_as = ""
    if "artifact" in claims:
        signed_as = f"; signed as {claims['artifact']}@v{claims.get('version')} by {claims.get('signer')}"
    output.out.print(
        f"verified {path}: {len(statement.files)} file(s) match the signature by key "
        f"{statement.signer_fingerprint[:16]}{signed_as}",
        markup=False,
    )
