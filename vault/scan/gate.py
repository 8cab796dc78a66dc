"""The push-time gate: scan a source before any byte of it is stored, refuse dangerous content.

Scanning is a pre-pass over the source rather than a tap on push's chunk stream: the formats that
matter are structured (a zip's directory is at its end; safetensors and GGUF need only their
headers), so the pre-pass reads a PyTorch checkpoint's ``data.pkl`` and central directory, not its
tensors — about 0.09 s per GiB against ~4.6 s to push it (``benchmarks/bench_scan.py``). Only raw
pickles are read whole, up to the pickle budget.
"""

from __future__ import annotations

from pathlib import Path

from vault.errors import UnsafeContentError

from .model import ScanLimits, ScanReport
from .scanner import scan_path


def scan_before_push(
    path: Path, *, allow_unsafe: bool = False, strict: bool = True, limits: ScanLimits | None = None
) -> ScanReport:
    """Scan ``path``; raise :class:`UnsafeContentError` (exit 18) on a dangerous file unless allowed."""
    report = scan_path(path, limits, strict)
    if report.dangerous and not allow_unsafe:
        first = report.dangerous[0]
        imports = ", ".join(f"{f.module}.{f.name}" for f in first.findings if f.safety.value == "dangerous")
        more = f" and {len(report.dangerous) - 1} more file(s)" if len(report.dangerous) > 1 else ""
        raise UnsafeContentError(
            f"refusing to push: {first.path} ({first.format}) imports {imports}{more}; "
            "nothing was stored (--allow-unsafe pushes it anyway, recorded)"
        )
    return report


def unsafe_metadata(report: ScanReport) -> dict[str, str]:
    """What a push records when it stored dangerous content anyway (nothing for a clean push)."""
    if not report.dangerous:
        return {}
    files = ", ".join(f.path for f in report.dangerous)
    return {
        "mlvault.scan": f"dangerous, pushed with --allow-unsafe ({report.scanner} {report.scanner_version})",
        "mlvault.scan.dangerous": files[:1000],
    }
