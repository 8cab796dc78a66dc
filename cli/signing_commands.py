"""``mlvault key``, ``sign``, ``verify``, ``trust`` and ``signature``: signing from the command line.

Each command parses, makes one call into :mod:`vault.signing` or :mod:`vault.signatures`, and
renders; errors go through :func:`cli.main.handle_errors`, so every verification failure keeps
its own exit code (11 malformed, 12 invalid signature, 13 untrusted, 14 content mismatch).

Client-side state lives in the mlvault config directory (``$MLVAULT_CONFIG_DIR``, else the
platform's user config dir): signing keys in ``keys/NAME.key`` (Argon2id-encrypted, or PKCS#8
PEM with mode 0600 for unattended jobs) with ``keys/NAME.pub`` beside them, and the pinned
trust-policy admin keys in ``pins.json``.

``mlvault verify PATH --signature F --key K`` is the deploy-host check: it needs no vault, no
catalog and no credentials, and imports neither SQLAlchemy nor boto3 — which is why the
vault-side modules are imported inside the commands that use them.

The commands register themselves on :data:`cli.main.app`; ``cli.main`` imports this module at
its end, so importing either module first works.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli import output
from cli.main import JsonOpt, _open, app, handle_errors
from cli.output import emit_json
from cli.settings import Settings, config_dir
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DestinationExistsError,
    NotFoundError,
    StorageUnavailableError,
    UsageError,
)

if TYPE_CHECKING:
    from vault.service import Vault
    from vault.signatures import PolicyView, PullVerifier, SignatureService
    from vault.signing.signers import Signer

KEY_PASSPHRASE_ENV = "MLVAULT_KEY_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

key_app = typer.Typer(
    help="Signing keys (ECDSA P-256) in the mlvault config directory.", no_args_is_help=True
)
trust_app = typer.Typer(
    help="The vault's trust policy: which keys may sign which artifacts.", no_args_is_help=True
)
signature_app = typer.Typer(help="Signatures stored in the vault.", no_args_is_help=True)
app.add_typer(key_app, name="key")
app.add_typer(trust_app, name="trust")
app.add_typer(signature_app, name="signature")

KeyPassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-passphrase-file",
        help=f"Read the signing-key passphrase from this file ({KEY_PASSPHRASE_ENV}).",
    ),
]


# -- client-side configuration ------------------------------------------------------------------


def keys_dir(*, create: bool = False) -> Path:
    """Where named signing keys live."""
    path = config_dir() / "keys"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def check_key_name(name: str) -> str:
    """Return ``name`` if it can name a key file, else ``UsageError``."""
    if not _KEY_NAME_RE.match(name):
        raise UsageError(f"invalid key name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def key_file(name: str) -> Path:
    """The private key file for ``name``: a key made by ``mlvault key new``, or a path to a key file."""
    if _KEY_NAME_RE.match(name):
        named = keys_dir() / f"{name}.key"
        if named.is_file():
            return named
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise NotFoundError(f"no signing key {name!r} in {keys_dir()} (create one with `mlvault key new {name}`)")


def read_key_passphrase(passphrase_file: Path | None, what: str, *, confirm: bool = False) -> bytes:
    """The signing-key passphrase: from the file, ``MLVAULT_KEY_PASSPHRASE``, or a prompt."""
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text().rstrip("\r\n").encode()
        except OSError as exc:
            raise UsageError(f"cannot read key passphrase file {passphrase_file}: {exc.strerror}") from exc
    env = os.environ.get(KEY_PASSPHRASE_ENV)
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise AuthenticationError(
            f"{what} needs a passphrase: set {KEY_PASSPHRASE_ENV} or use --key-passphrase-file "
            "(no terminal to prompt on)"
        )
    first = getpass.getpass(f"Passphrase for {what}: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UsageError("the passphrases do not match")
    return first.encode()


def load_local_signer(name: str, passphrase_file: Path | None) -> Signer:
    """A ``LocalSigner`` for a named key or key file; asks for a passphrase only if it is encrypted."""
    from vault.signing import keys
    from vault.signing.signers import LocalSigner

    path = key_file(name)
    with open(path, "rb") as fh:
        encrypted = fh.read(len(keys.KEY_FILE_MAGIC)) == keys.KEY_FILE_MAGIC
    passphrase = read_key_passphrase(passphrase_file, f"key {name}") if encrypted else None
    return LocalSigner(keys.load_private_key(path, passphrase))


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore's own errors (no credentials, no region, unreachable endpoint) into mlvault errors."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "botocore" or hasattr(exc, "response"):
            raise
        name = type(exc).__name__
        if name in ("NoCredentialsError", "NoRegionError", "ProfileNotFound", "PartialCredentialsError"):
            raise ConfigurationError(f"cannot use AWS KMS: {exc}") from exc
        raise StorageUnavailableError(f"cannot reach AWS KMS: {exc}") from exc


def kms_signer(settings: Settings, key_id: str) -> Signer:
    """A ``KmsSigner`` on a boto3 KMS client (profile and region from the global options)."""
    import boto3

    from vault.signing.signers import KmsSigner

    # boto3 reads AWS_ENDPOINT_URL_KMS (and the rest of the standard AWS configuration) itself.
    session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
    return KmsSigner(session.client("kms"), key_id)


def signature_service(v: Vault) -> SignatureService:
    """The signing service for an open vault, with this client's pin file."""
    from vault.signatures import PinStore, SignatureService

    return SignatureService(v, PinStore(config_dir() / "pins.json"))


def _note_pin(fingerprint: str | None) -> None:
    if fingerprint:
        output.err.print(
            f"note: pinned trust-policy admin key {fingerprint} for this vault (first use); "
            "a policy signed by any other key will be refused",
            markup=False,
        )


# -- pull integration (called from cli.main.pull) -----------------------------------------------


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
    _note_pin(report.admin_pinned_now)
    output.err.print(
        f"signatures: {len(report.trusted_signers)} trusted signature(s) "
        f"({', '.join(s[:16] for s in report.trusted_signers)}) under rule {report.rule!r}",
        markup=False,
    )


# -- mlvault key ... -------------------------------------------------------------------------------


@key_app.command("new")
@handle_errors
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
    from vault.signing import keys

    path = keys_dir(create=True) / f"{check_key_name(name)}.key"
    if path.exists():
        raise DestinationExistsError(f"key {name} already exists at {path}; choose another name")
    passphrase = (
        None if unencrypted else read_key_passphrase(key_passphrase_file, f"new key {name}", confirm=True)
    )
    if passphrase is not None and not passphrase:
        raise UsageError("the key passphrase must not be empty (use --unencrypted for an unattended key)")
    kdf = keys.KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    private = keys.generate_private_key()
    keys.save_private_key(private, path, passphrase=passphrase, kdf=kdf)
    public_path = path.with_suffix(".pub")
    public_path.write_bytes(keys.public_key_pem(private.public_key()))
    form = "unencrypted, mode 0600" if unencrypted else "encrypted with Argon2id"
    output.out.print(f"created signing key {name} ({form}) at {path}", markup=False)
    output.out.print(f"fingerprint {keys.fingerprint(private.public_key())}", markup=False)


def _public_pem(name: str, passphrase_file: Path | None) -> bytes:
    from vault.signing import keys

    path = key_file(name)
    public_path = path.with_suffix(".pub")
    if public_path.is_file():
        return keys.public_key_pem(keys.read_public_key_file(public_path))
    return load_local_signer(name, passphrase_file).public_key_pem()


@key_app.command("export")
@handle_errors
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
    sys.stdout.write(_public_pem(name, key_passphrase_file).decode("ascii"))


@key_app.command("list")
@handle_errors
def key_list(json_out: JsonOpt = False) -> None:
    """List the signing keys in the config directory."""
    from vault.signing import keys

    rows = []
    directory = keys_dir()
    for path in sorted(directory.glob("*.key")) if directory.is_dir() else []:
        with open(path, "rb") as fh:
            encrypted = fh.read(len(keys.KEY_FILE_MAGIC)) == keys.KEY_FILE_MAGIC
        public_path = path.with_suffix(".pub")
        fp = keys.fingerprint(keys.read_public_key_file(public_path)) if public_path.is_file() else None
        rows.append({"name": path.stem, "fingerprint": fp, "encrypted": encrypted, "path": str(path)})
    if json_out:
        emit_json(rows)
        return
    table = Table("name", "fingerprint", "protection", box=None)
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["fingerprint"] or "?"),
            "passphrase" if row["encrypted"] else "file mode 0600",
        )
    output.out.print(table)


# -- mlvault sign / verify ---------------------------------------------------------------------------


@app.command()
@handle_errors
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
    with _open(ctx) as v, aws_errors():
        signer = load_local_signer(key, key_passphrase_file) if key else kms_signer(ctx.obj, str(kms_key_id))
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
    with _open(ctx) as v:
        report = signature_service(v).verify(target)
    if json_out:
        emit_json(report)
        return
    _note_pin(report.admin_pinned_now)
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


# -- mlvault trust ... -------------------------------------------------------------------------------


AdminKeyOpt = Annotated[
    str, typer.Option("--admin-key", help="The vault's trust-policy admin key (name or file).")
]


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
        {"namespace": r.namespace, "threshold": r.threshold, "keys": [k.fingerprint for k in r.keys]}
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
    _note_pin(view.admin_pinned_now)
    output.out.print(
        f"trust policy serial {view.serial}, signed by admin key {view.admin_fingerprint}", markup=False
    )
    table = Table("namespace", "threshold", "trusted keys", box=None)
    for r in view.rules:
        table.add_row(r.namespace, str(r.threshold), "\n".join(k.fingerprint for k in r.keys))
    output.out.print(table)


@trust_app.command("add")
@handle_errors
def trust_add(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="Artifact-name glob, e.g. 'team/*'.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Public key PEM to trust.")],
    admin_key: AdminKeyOpt,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Distinct trusted signatures required (default 1).")
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Trust a public key to sign artifacts matching a glob (signs a new policy with the admin key)."""
    from vault.signing import keys

    pem = keys.public_key_pem(keys.read_public_key_file(key))
    admin = load_local_signer(admin_key, key_passphrase_file)
    with _open(ctx) as v:
        view = signature_service(v).trust_add(namespace, pem, admin, threshold)
    _render_policy(view, json_out)


@trust_app.command("remove")
@handle_errors
def trust_remove(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The rule's glob, exactly as listed by `trust show`.")],
    admin_key: AdminKeyOpt,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="Remove only this key from the rule.")
    ] = None,
    key_passphrase_file: KeyPassphraseFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a rule (or one key of it) from the trust policy."""
    admin = load_local_signer(admin_key, key_passphrase_file)
    with _open(ctx) as v:
        view = signature_service(v).trust_remove(namespace, admin, fingerprint)
    _render_policy(view, json_out)


@trust_app.command("show")
@handle_errors
def trust_show(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the vault's trust policy, verified under the pinned admin key."""
    with _open(ctx) as v:
        view = signature_service(v).trust_show()
    _render_policy(view, json_out)


@trust_app.command("pin")
@handle_errors
def trust_pin(
    ctx: typer.Context,
    fingerprint: Annotated[str, typer.Argument(help="The admin key's fingerprint (64 hex digits).")],
    replace: Annotated[bool, typer.Option("--replace", help="Drop the admin keys pinned before.")] = False,
) -> None:
    """Pin the trust-policy admin key for this vault explicitly instead of trusting it on first use."""
    with _open(ctx) as v:
        signature_service(v).pin_admin(fingerprint, replace=replace)
    output.out.print(f"pinned admin key {fingerprint} for this vault", markup=False)


# -- mlvault signature ... ---------------------------------------------------------------------------


@signature_app.command("export")
@handle_errors
def signature_export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Signed version, e.g. team/resnet@v3.")],
    out: Annotated[str, typer.Option("--output", "-o", help="Bundle file to write ('-' for stdout).")],
    signer: Annotated[
        str | None, typer.Option("--signer", help="Fingerprint (or its first 8+ digits) of the signing key.")
    ] = None,
) -> None:
    """Write one stored signature bundle to a file, for `mlvault verify PATH --signature`."""
    with _open(ctx) as v:
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
