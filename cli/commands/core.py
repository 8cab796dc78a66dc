"""``mlvault init``, ``push``, ``pull``, ``ls``, ``log``, ``show``, ``tag`` and ``check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vault.crypto.kdf import KdfParams
from vault.errors import UsageError

from .. import output
from ..app import JsonOpt, QuietOpt, app, global_options, handle_errors, init_vault, open_vault
from ..output import emit_json, human_size, progress_bar
from ..verification import pull_verifier, report_pull_verification

SHOWN_ON_TERMINAL = 50  # files `show` lists on a terminal without --files (a pipe gets them all)


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
@global_options
def init(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Directory or s3://bucket/prefix for the new vault.")],
    kdf_time: Annotated[int, typer.Option(help="Argon2id iterations.")] = 3,
    kdf_memory_mib: Annotated[float, typer.Option(help="Argon2id memory in MiB.")] = 64,
    kdf_parallelism: Annotated[int, typer.Option(help="Argon2id lanes.")] = 4,
) -> None:
    """Create a new vault (local directory by default, SQLite catalog inside it)."""
    kdf = KdfParams(kdf_time, int(kdf_memory_mib * 1024), kdf_parallelism)
    with init_vault(ctx, path, kdf) as v:
        output.out.print(f"initialized vault {v.config.vault_id} at {path}", markup=False)
        output.out.print(f"catalog: {v.catalog.display_url}", markup=False)
        if kdf.is_weak:
            output.err.print(
                "warning: KDF parameters are weaker than RFC 9106's low-memory profile", markup=False
            )


@app.command()
@handle_errors
@global_options
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
    allow_unsafe: Annotated[
        bool, typer.Option("--allow-unsafe", help="Push even a pickle the scan rates dangerous (recorded).")
    ] = False,
) -> None:
    """Store a file or directory as the next version of an artifact (dangerous pickles: exit 18)."""
    metadata = _parse_meta(meta or [])
    with open_vault(ctx) as v:
        v.require("push", artifact, action="push")  # before any key is unlocked
        if tag:
            v.require("tag", artifact, action="tag")
        if parent:
            v.require("list", *parent, action="log")
        v.unlock()
        with progress_bar("push", not quiet) as progress:
            result = v.push(
                path,
                artifact,
                kind=kind,
                tags=tag or [],
                metadata=metadata,
                parents=parent or [],
                progress=progress,
                allow_unsafe=allow_unsafe,
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
@global_options
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
    with open_vault(ctx) as v:
        v.require("read", ref, action="pull")  # before any key is unlocked
        v.unlock()
        check = pull_verifier(v, verify=not no_verify)
        with progress_bar("pull", not quiet) as progress:
            result = v.pull(ref, dest, progress=progress, verifier=check)
    report_pull_verification(check, quiet=quiet or json_out)
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
@global_options
def list_artifacts(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only artifacts under this prefix, e.g. team/.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """List artifacts with their latest version, size and tags."""
    with open_vault(ctx) as v:
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
@global_options
def log(
    ctx: typer.Context,
    artifact: Annotated[str, typer.Argument(help="Artifact name.")],
    json_out: JsonOpt = False,
) -> None:
    """List an artifact's versions, newest first."""
    with open_vault(ctx) as v:
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
@global_options
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version reference.")],
    json_out: JsonOpt = False,
    all_files: Annotated[
        bool,
        typer.Option("--files", help=f"On a terminal too, list every file (not only {SHOWN_ON_TERMINAL})."),
    ] = False,
) -> None:
    """Show a version's files (size, mode, SHA-256), metadata and lineage."""
    with open_vault(ctx) as v:
        details = v.show(ref)
    version = details.version
    if json_out:
        emit_json(
            {
                "version": version,
                "files": [
                    {"path": f.path, "size": f.size, "mode": oct(f.mode), "sha256": f.sha256}
                    for f in details.files
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
    files = details.files
    if not all_files and len(files) > SHOWN_ON_TERMINAL and output.out.is_terminal:
        files = files[:SHOWN_ON_TERMINAL]
    rows = [(f.path, human_size(f.size), oct(f.mode), f.sha256) for f in files]
    output.print_table(("path", "size", "mode", "sha256"), rows)
    if len(files) < len(details.files):
        more, total = len(details.files) - len(files), len(details.files)
        output.out.print(
            f"… and {more:,} more files ({total:,} in all); --files lists them all", markup=False
        )


@app.command()
@handle_errors
@global_options
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version reference.")],
    name: Annotated[str, typer.Argument(help="Tag to create or move.")],
) -> None:
    """Create a tag, or move it to another version."""
    with open_vault(ctx) as v:
        version, previous = v.tag(ref, name)
    moved = " (moved)" if previous and previous != version.id else ""
    output.out.print(f"{version.artifact}@{name} → v{version.number}{moved}", markup=False)


@app.command()
@handle_errors
@global_options
def check(
    ctx: typer.Context,
    read_data: Annotated[bool, typer.Option("--read-data", help="Decrypt and verify every chunk.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the vault's structure; with --read-data, every byte of it."""
    with open_vault(ctx) as v:
        v.gate.require_admin("check")
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
        for note in report.notes:
            output.out.print(f"note: {note}", markup=False)
        verdict = "ok" if report.ok else "DAMAGED"
        output.out.print(
            f"{verdict}: {report.packs_checked} packs, {report.versions_checked} versions"
            + (f", {report.chunks_checked} chunks decrypted and verified" if read_data else ""),
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(5)
