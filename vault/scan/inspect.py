"""``inspect``: what a file holds, read from headers and disassembly only (nothing is unpickled).

safetensors and GGUF give their header summaries (``vault.scan.headers``); ``.npy`` its dtype and
shape; pickles, PyTorch and ``.npz`` archives the globals they import (from the scan) and, for
archives, their entries. A header that breaks a rule or a cap is the user's bad input: a one-line
:class:`~vault.errors.UsageError` (exit 2) naming the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

from vault.errors import UsageError

from .headers import HeaderError, read_gguf_header, read_safetensors_header
from .model import ScanLimits
from .pickles import read_npy_header
from .scanner import files_under, scan_stream, sniff

_MAX_LISTED_ENTRIES = 1000


def _zip_entries(stream: IO[bytes]) -> dict[str, Any]:
    with zipfile.ZipFile(stream) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    listed = [{"name": i.filename, "size": i.file_size} for i in infos[:_MAX_LISTED_ENTRIES]]
    return {"entry_count": len(infos), "entries": listed, "total_size": sum(i.file_size for i in infos)}


def inspect_stream(stream: IO[bytes], size: int, label: str, limits: ScanLimits) -> dict[str, Any]:
    """One file's summary; raises :class:`HeaderError` or ``ValueError`` on a hostile header."""
    head = stream.read(64)
    stream.seek(0)
    kind = sniff(head)
    info: dict[str, Any] = {"path": label, "size": size}
    if kind == "safetensors":
        return info | {"format": kind, "safetensors": read_safetensors_header(stream, size, limits)}
    if kind == "gguf":
        return info | {"format": kind, "gguf": read_gguf_header(stream, limits)}
    if kind == "npy":
        header = read_npy_header(stream, limits)
        info["numpy"] = {
            "dtype": header.descr if isinstance(header.descr, str) else repr(header.descr),
            "shape": list(header.shape),
            "fortran_order": header.fortran_order,
            "objects": header.has_objects,
        }
        stream.seek(0)
    scan = scan_stream(stream, size, label, limits, strict=True)
    info |= {"format": scan.format, "verdict": scan.verdict.value}
    info["imports"] = [f.to_json() for f in scan.findings]
    if scan.note:
        info["note"] = scan.note
    if kind == "zip" and scan.verdict.value != "unscannable":
        stream.seek(0)
        info["archive"] = _zip_entries(stream)
    return info


def inspect_path(root: Path, limits: ScanLimits | None = None) -> list[dict[str, Any]]:
    """Summaries of a file or of every file under a directory."""
    limits = limits or ScanLimits()
    results = []
    for path, label in files_under(root):
        if path.is_symlink():
            results.append({"path": label, "format": "symlink", "size": 0})
            continue
        try:
            with path.open("rb") as f:
                results.append(inspect_stream(f, os.fstat(f.fileno()).st_size, label, limits))
        except (HeaderError, ValueError) as exc:
            raise UsageError(f"{label}: {exc}") from exc
    return results
