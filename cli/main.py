"""The ``mlvault`` Typer app: each command parses, makes one call into :mod:`vault`, renders.

Errors are turned into one line on stderr and an exit code in exactly one place,
:func:`handle_errors`; the codes belong to the exception classes in ``vault/errors.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

import vault
from cli import output
from cli.output import emit_json, human_size, progress_bar
from cli.settings import Settings, catalog_pins_file, passphrase_reader, require_vault, resolve
from vault.crypto.kdf import KdfParams
from vault.errors import MlvaultError, UsageError
from vault.storage import StorageOptions

app = typer.Typer(
    name="mlvault",
    help="An encrypted, deduplicating vault for ML models and datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _one_line(exc: object) -> str:
    # Driver messages (psycopg, botocore) can span lines; the contract is one line per error.
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def handle_errors(func: F) -> F:
    """Map every error to one stderr line and its exit code; never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlvaultError as exc:
            output.err.print(f"error: {_one_line(exc)}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.err.print("interrupted; nothing was committed", markup=False)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 — the last line of defence against a traceback
            if os.environ.get("MLVAULT_DEBUG"):
                traceback.print_exc()
            output.err.print(
                f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (set MLVAULT_DEBUG=1 for details)",
                markup=False,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
@handle_errors
def main_options(
    ctx: typer.Context,
    vault_url: Annotated[
        str | None,
        typer.Option("--vault", "-V", envvar="MLVAULT_VAULT", help="Vault path or s3://bucket/prefix."),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", envvar="MLVAULT_CATALOG", help="Catalog URL (overrides the vault's)."),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="Read the passphrase from this file.")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", envvar="MLVAULT_ENDPOINT_URL", help="S3-compatible endpoint."),
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile for S3 vaults.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region for S3 vaults.")] = None,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help="Allow a plain-http, non-loopback S3 endpoint.")
    ] = False,
) -> None:
    """Global options; every command also reads MLVAULT_VAULT and mlvault.toml."""
    ctx.obj = resolve(
        vault_url,
        catalog,
        passphrase_file,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        allow_insecure_http=allow_insecure_http,
    )


def _storage_options(settings: Settings) -> StorageOptions:
    if settings.allow_insecure_http:
        output.err.print("warning: --allow-insecure-http: S3 traffic is not protected by TLS", markup=False)
    return StorageOptions(
        settings.endpoint_url, settings.profile, settings.region, settings.allow_insecure_http
    )


def _open(ctx: typer.Context) -> vault.Vault:
    settings: Settings = ctx.obj
    return vault.open_vault(
        require_vault(settings),
        passphrase=passphrase_reader(settings),
        catalog_url=settings.catalog,
        storage_options=_storage_options(settings),
        catalog_pins=catalog_pins_file(),
    )


def _parse_meta(items: list[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --meta {item!r}: use key=value")
        meta[key] = value
    return meta


@app.command()
@handle_errors
def init(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Directory or s3://bucket/prefix for the new vault.")],
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Create a new vault (local directory by default, SQLite catalog inside it)."""
    settings: Settings = ctx.obj
    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    with vault.init_vault(
        path,
        passphrase=passphrase_reader(settings, confirm=True),
        kdf=kdf,
        catalog_url=settings.catalog,
        storage_options=_storage_options(settings),
        catalog_pins=catalog_pins_file(),
    ) as v:
        output.out.print(f"initialized vault {v.config.vault_id} at {path}", markup=False)
        output.out.print(
            f"catalog: {v.catalog.engine.url.render_as_string(hide_password=True)}", markup=False
        )
        if kdf.is_weak:
            output.err.print(
                "warning: KDF parameters are weaker than RFC 9106's low-memory profile", markup=False
            )


@app.command()
@handle_errors
def push(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File or directory to push.")],
    artifact: Annotated[str, typer.Argument(help="Artifact name, e.g. team/resnet.")],
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag the new version (repeatable).")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", "-m", help="key=value metadata (repeatable).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="model or dataset (default: the artifact's, or model).")
    ] = None,
    parent: Annotated[
        list[str] | None, typer.Option("--from", help="Lineage: a version this was made from (repeatable).")
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Store a file or directory as the next version of an artifact."""
    metadata = _parse_meta(meta or [])
    with _open(ctx) as v:
        v.unlock()
        with progress_bar("push", None, not quiet) as progress:
            result = v.push(
                path,
                artifact,
                kind=kind,
                tags=tag or [],
                metadata=metadata,
                parents=parent or [],
                progress=progress,
            )
    if json_out:
        emit_json(result)
        return
    tags = f" [{', '.join(result.tags)}]" if result.tags else ""
    output.out.print(
        f"{result.artifact}@v{result.number}{tags} sha256:{result.digest[:16]} {result.files} files, "
        f"{human_size(result.size)}; stored {human_size(result.stored_bytes)} new "
        f"({result.new_chunks} new chunks, {result.reused_chunks} reused)",
        markup=False,
    )


@app.command()
@handle_errors
def pull(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="team/name, team/name@v3, @tag or @sha256:<hex>.")],
    dest: Annotated[
        Path, typer.Argument(help="Destination (must not exist; a file version may go into a dir).")
    ],
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the signature check against the trust policy (warns).")
    ] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a version to DEST, verifying every byte (and its signatures, per the trust policy) first."""
    with _open(ctx) as v:
        v.unlock()
        check = signing_commands.pull_verifier(v, verify=not no_verify)
        with progress_bar("pull", None, not quiet) as progress:
            result = v.pull(ref, dest, progress=progress, verifier=check)
    signing_commands.report_pull_verification(check, quiet=quiet or json_out)
    if json_out:
        emit_json(result)
        return
    output.out.print(
        f"{result.artifact}@v{result.number} → {result.destination} ({result.files} files, "
        f"{human_size(result.size)}, verified)",
        markup=False,
    )


@app.command("ls")
@handle_errors
def list_artifacts(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only artifacts under this prefix, e.g. team/.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """List artifacts with their latest version, size and tags."""
    with _open(ctx) as v:
        rows = v.list_artifacts(prefix)
    if json_out:
        emit_json(rows)
        return
    table = Table("artifact", "kind", "latest", "size", "tags", box=None)
    for row in rows:
        tags = ", ".join(f"{t}→v{n}" for t, n in row.tags.items())
        table.add_row(row.name, row.kind, f"v{row.latest}" if row.latest else "-", human_size(row.size), tags)
    output.out.print(table)


@app.command()
@handle_errors
def log(
    ctx: typer.Context,
    artifact: Annotated[str, typer.Argument(help="Artifact name.")],
    json_out: JsonOpt = False,
) -> None:
    """List an artifact's versions, newest first."""
    with _open(ctx) as v:
        rows = v.log(artifact)
    if json_out:
        emit_json(rows)
        return
    table = Table("version", "digest", "size", "files", "creator", "created", "tags", box=None)
    for row in rows:
        table.add_row(
            f"v{row.number}",
            row.digest[:16],
            human_size(row.size),
            str(row.file_count),
            row.created_by,
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(row.tags),
        )
    output.out.print(table)


@app.command()
@handle_errors
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version reference.")],
    json_out: JsonOpt = False,
) -> None:
    """Show a version's files (size, mode, SHA-256), metadata and lineage."""
    with _open(ctx) as v:
        details = v.show(ref)
    version = details.version
    if json_out:
        emit_json(
            {
                "version": version,
                "files": [
                    {"path": p, "size": s, "mode": oct(m), "sha256": h} for p, s, m, h in details.files
                ],
                "metadata": details.metadata,
                "parents": details.parents,
            }
        )
        return
    output.out.print(f"{version.artifact}@v{version.number} ({version.kind})", markup=False)
    output.out.print(f"digest   sha256:{version.digest}", markup=False)
    output.out.print(f"created  {version.created_at:%Y-%m-%d %H:%M:%S} by {version.created_by}", markup=False)
    if version.tags:
        output.out.print(f"tags     {', '.join(version.tags)}", markup=False)
    for key, value in sorted(details.metadata.items()):
        output.out.print(f"meta     {key}={value}", markup=False)
    for parent_ref in details.parents:
        output.out.print(f"from     {parent_ref}", markup=False)
    table = Table("path", "size", "mode", "sha256", box=None)
    for path, size, mode, digest in details.files:
        table.add_row(path, human_size(size), oct(mode), digest)
    output.out.print(table)


@app.command()
@handle_errors
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version reference.")],
    name: Annotated[str, typer.Argument(help="Tag to create or move.")],
) -> None:
    """Create a tag, or move it to another version."""
    with _open(ctx) as v:
        version, previous = v.tag(ref, name)
    moved = " (moved)" if previous and previous != version.id else ""
    output.out.print(f"{version.artifact}@{name} → v{version.number}{moved}", markup=False)


@app.command()
@handle_errors
def check(
    ctx: typer.Context,
    read_data: Annotated[bool, typer.Option("--read-data", help="Decrypt and verify every chunk.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the vault's structure; with --read-data, every byte of it."""
    with _open(ctx) as v:
        if read_data:
            v.unlock()
        report = v.check(read_data=read_data)
    if json_out:
        emit_json(report)
    else:
        for problem in report.problems:
            output.out.print(f"problem: {problem}", markup=False)
        for damaged in report.damaged_files:
            output.out.print(f"damaged: {damaged}", markup=False)
        verdict = "ok" if report.ok else "DAMAGED"
        output.out.print(
            f"{verdict}: {report.packs_checked} packs, {report.versions_checked} versions"
            + (f", {report.chunks_checked} chunks decrypted and verified" if read_data else ""),
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(5)


# Registers key, sign, verify, trust and signature on ``app``; imported last because it imports this module.
from cli import signing_commands  # noqa: E402


def main() -> None:
    """Console-script entry point; click's own parse errors also become one ``error:`` line."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        output.err.print("error: aborted", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:  # pragma: no cover — interrupted outside a command
        sys.exit(130)
    except Exception as exc:
        # click's ClickException (typer vendors click, so matched by shape): format_message() + exit_code.
        exit_code = getattr(exc, "exit_code", None)
        if not hasattr(exc, "format_message") or not isinstance(exit_code, int):
            raise
        if type(exc).__name__ != "NoArgsIsHelpError":  # bare `mlvault`: the help is already printed
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            output.err.print(f"error: {_one_line(exc.format_message())}{hint}", markup=False)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)
