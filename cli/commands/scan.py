"""``mlvault scan PATH`` and ``mlvault inspect PATH``: model safety and contents of local files.

``scan`` prints each file's format (detected from content), verdict and the globals a pickle
would import, then exits 18 when any file is dangerous (after printing, so scripts get the list).
``inspect`` summarizes safetensors/GGUF headers, numpy arrays and pickle globals; a hostile header
is exit 2. Nothing is unpickled. The library is :mod:`vault.scan`, imported inside the commands.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vault.errors import NotFoundError, UnsafeContentError

from .. import output
from ..app import JsonOpt, app, handle_errors
from ..output import emit_json, human_size

if TYPE_CHECKING:
    from vault.scan import ScanReport

PathArg = Annotated[Path, typer.Argument(help="A file or a directory.", show_default=False)]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict/--lenient",
        help="Strict: any global outside the allow-list is dangerous. Lenient: unknown ones are suspicious.",
    ),
]


def _local(path: Path) -> Path:
    if not path.exists() and not path.is_symlink():
        raise NotFoundError(f"no such file or directory: {path} (scanning a vault reference is not built)")
    # picklescan logs what it cannot parse; the verdict already says so, in one line per file.
    logging.getLogger("picklescan").addHandler(logging.NullHandler())
    logging.getLogger("picklescan").propagate = False
    return path


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
def scan_command(path: PathArg, json_out: JsonOpt = False, strict: StrictOpt = True) -> None:
    """Scan files for pickles that would run code when loaded (exit 18 if any is dangerous)."""
    from vault.scan.scanner import scan_path

    report = scan_path(_local(path), strict=strict)
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
