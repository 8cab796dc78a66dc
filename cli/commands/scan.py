"""``mlvault scan PATH`` and ``mlvault inspect PATH``: model safety and contents of local files.

``scan`` prints each file's format (detected from content), verdict and the globals a pickle
would import, then exits 18 when any file is dangerous (after printing, so scripts get the list).
A TARGET that is not an existing local path is a vault reference: the version is pulled (``read``
checked first, every byte and the trust policy verified as by ``pull``) into a temporary directory,
scanned there, and the directory removed.
``inspect`` summarizes safetensors/GGUF headers, numpy arrays and pickle globals; a hostile header
is exit 2. Nothing is unpickled. The library is :mod:`vault.scan`, imported inside the commands.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vault.errors import NotFoundError, UnsafeContentError

from .. import output
from ..app import JsonOpt, app, global_options, handle_errors, open_vault
from ..output import emit_json, human_size

if TYPE_CHECKING:
    from vault.scan import ScanReport

PathArg = Annotated[Path, typer.Argument(help="A file or a directory.", show_default=False)]
TargetArg = Annotated[
    str, typer.Argument(help="A file, a directory, or a vault reference (team/m@v3).", show_default=False)
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict/--lenient",
        help="Strict: any global outside the allow-list is dangerous. Lenient: unknown ones are suspicious.",
    ),
]


def _quiet_scanner() -> None:
    # picklescan logs what it cannot parse; the verdict already says so, in one line per file.
    logging.getLogger("picklescan").addHandler(logging.NullHandler())
    logging.getLogger("picklescan").propagate = False


def _local(path: Path) -> Path:
    if not path.exists() and not path.is_symlink():
        raise NotFoundError(f"no such file or directory: {path}")
    _quiet_scanner()
    return path


def _is_local(target: str) -> bool:
    path = Path(target)
    return path.exists() or path.is_symlink() or "/" not in target or target.startswith((".", "/", "~"))


def _scan_ref(ctx: typer.Context, ref: str, strict: bool) -> ScanReport:
    """Pull ``ref`` into a temporary directory (verified as by ``pull``) and scan it there."""
    from vault.scan.scanner import scan_path

    from ..verification import pull_verifier, report_pull_verification

    _quiet_scanner()
    with tempfile.TemporaryDirectory(prefix="mlvault-scan-") as tmp, open_vault(ctx) as v:
        v.require("read", ref, action="pull")  # before any key is unlocked
        v.unlock()
        check = pull_verifier(v, verify=True)
        dest = Path(tmp) / ref.split("@", 1)[0].rsplit("/", 1)[-1]
        result = v.pull(ref, dest, verifier=check)
        report_pull_verification(check, quiet=True)
        names = [Path(p).name for p in result.sha256]
        if dest.is_file() and len(names) == 1 and names[0] not in ("", ".", ".."):
            dest = dest.rename(dest.with_name(names[0]))  # a one-file version: report its own name
        return scan_path(dest, strict=strict)


def _render_scan(report: ScanReport) -> None:
    table = Table("file", "format", "verdict", "imports", box=None, pad_edge=False)
    for f in report.files:
        shown = [f for f in f.findings if f.safety.value != "safe"] or list(f.findings)
        imports = ", ".join(f"{g.module}.{g.name}" for g in shown[:6]) + (" …" if len(shown) > 6 else "")
        verdict = f.verdict.value + (f" ({f.note})" if f.note else "")
        table.add_row(f.path, f.format, verdict, imports)
    output.out.print(table)
    output.out.print(
        f"{len(report.files)} file(s): {report.verdict.value} ({report.scanner} {report.scanner_version}, "
        f"{'strict' if report.strict else 'lenient'})",
        markup=False,
    )


@app.command("scan")
@handle_errors
@global_options
def scan_command(
    ctx: typer.Context, target: TargetArg, json_out: JsonOpt = False, strict: StrictOpt = True
) -> None:
    """Scan files or a vault version for pickles that would run code when loaded (exit 18 if dangerous)."""
    from vault.scan.scanner import scan_path

    if _is_local(target):
        report = scan_path(_local(Path(target)), strict=strict)
    else:
        report = _scan_ref(ctx, target, strict)
    if json_out:
        emit_json(report.to_json())
    else:
        _render_scan(report)
    if report.dangerous:
        names = ", ".join(f.path for f in report.dangerous[:3]) + (" …" if len(report.dangerous) > 3 else "")
        raise UnsafeContentError(f"{len(report.dangerous)} dangerous file(s): {names}")


def _render_inspect(info: dict[str, Any]) -> None:
    output.out.print(f"{info['path']}  {info['format']}  {human_size(info['size'])}", markup=False)
    for key in ("safetensors", "gguf"):
        if key in info:
            summary = {k: v for k, v in info[key].items() if k != "tensors"}
            for k, v in summary.items():
                output.out.print(f"  {k}: {v}", markup=False)
            for t in info[key].get("tensors", [])[:20]:
                output.out.print(f"  {t['name']}  {t['dtype']}  {t['shape']}", markup=False)
    if "numpy" in info:
        output.out.print(f"  numpy: {info['numpy']}", markup=False)
    if info.get("imports"):
        names = ", ".join(f"{g['module']}.{g['name']} ({g['safety']})" for g in info["imports"])
        output.out.print(f"  imports: {names}", markup=False)
    if "archive" in info:
        output.out.print(f"  entries: {info['archive']['entry_count']}", markup=False)
    if "verdict" in info:
        output.out.print(f"  verdict: {info['verdict']}", markup=False)


@app.command("inspect")
@handle_errors
def inspect_command(path: PathArg, json_out: JsonOpt = False) -> None:
    """Show what model files hold: tensors, dtypes, shapes, metadata, pickle globals (never unpickled)."""
    from vault.scan.inspect import inspect_path

    results = inspect_path(_local(path))
    if json_out:
        emit_json(results)
        return
    for info in results:
        _render_inspect(info)
