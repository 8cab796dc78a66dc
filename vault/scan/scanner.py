"""Scan files and directories: detect each file's format from its content, never its name, and
give it a verdict.

Detection order: zip (PyTorch checkpoint, ``.npz``), ``.npy``, GGUF, safetensors (8-byte length then
``{``), pickle protocol 2–5 (``\\x80`` + protocol). Anything else is tried as a protocol 0/1 pickle;
what does not disassemble is text (UTF-8, ``not-applicable``), empty, or unknown binary
(``unscannable``). A pickle renamed ``.safetensors`` is therefore scanned as the pickle it is.
Files are streamed; every reader is capped by :class:`~vault.scan.model.ScanLimits`.
"""

from __future__ import annotations

import os
import struct
from importlib.metadata import version
from pathlib import Path
from typing import IO

from .headers import HeaderError, read_gguf_header, read_safetensors_header
from .model import FileScan, ScanLimits, ScanReport, Verdict
from .pickles import (
    NPY_MAGIC,
    PICKLE_PROTO_MAGIC,
    ZIP_MAGIC,
    pickle_format,
    scan_npy,
    scan_pickle_stream,
    scan_zip,
)

_TEXT_SAMPLE = 8192


def sniff(head: bytes) -> str:
    """The format the first bytes announce: zip, npy, gguf, safetensors, pickle, or ``unknown``."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] >= 2:
        return "safetensors"
    if head.startswith(PICKLE_PROTO_MAGIC):
        return "pickle"
    return "unknown"


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    for cut in range(4):  # the sample may end inside a multi-byte character
        try:
            sample[: len(sample) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def scan_stream(stream: IO[bytes], size: int, label: str, limits: ScanLimits, strict: bool) -> FileScan:
    """Scan one seekable stream holding ``size`` bytes from position 0."""
    head = stream.read(64)
    stream.seek(0)
    kind = sniff(head)
    if size == 0:
        return FileScan(label, "empty", Verdict.NOT_APPLICABLE, size=0)
    if kind == "zip":
        result = scan_zip(stream, label, limits, strict)
    elif kind == "npy":
        result = scan_npy(stream, size, label, limits, strict)
    elif kind in ("gguf", "safetensors"):
        try:
            if kind == "gguf":
                read_gguf_header(stream, limits)
            else:
                read_safetensors_header(stream, size, limits)
            result = FileScan(label, kind, Verdict.NOT_APPLICABLE)
        except HeaderError as exc:
            result = FileScan(label, kind, Verdict.UNSCANNABLE, note=str(exc))
    else:
        result = _scan_pickle_or_other(stream, size, label, limits, strict, head, kind == "pickle")
    return FileScan(result.path, result.format, result.verdict, result.findings, result.note, size)


def _scan_pickle_or_other(
    stream: IO[bytes], size: int, label: str, limits: ScanLimits, strict: bool, head: bytes, announced: bool
) -> FileScan:
    scan = scan_pickle_stream(stream, size, label, limits, strict)
    # Text can begin like a protocol 0 pickle ("c" reads two lines as a GLOBAL): a stream without
    # the PROTO opcode that breaks off counts as a pickle only when it names a deny-listed global.
    if announced or scan.complete or scan.verdict() is Verdict.DANGEROUS:
        return FileScan(label, pickle_format(scan), scan.verdict(), scan.findings, scan.error)
    stream.seek(0)
    if _looks_like_text(stream.read(_TEXT_SAMPLE)):
        return FileScan(label, "text", Verdict.NOT_APPLICABLE)
    return FileScan(label, "unknown", Verdict.UNSCANNABLE, note="format not recognised")


def scan_file(path: Path, label: str, limits: ScanLimits, strict: bool) -> FileScan:
    """Scan one regular file (symbolic links are not followed: reported unscannable)."""
    if path.is_symlink():
        return FileScan(label, "symlink", Verdict.UNSCANNABLE, note="symbolic link not followed")
    with path.open("rb") as f:
        return scan_stream(f, os.fstat(f.fileno()).st_size, label, limits, strict)


def files_under(root: Path) -> list[tuple[Path, str]]:
    """(path, label) of every file under ``root`` (or ``root`` itself), sorted, links not followed."""
    if not root.is_dir() or root.is_symlink():
        return [(root, root.name)]
    found = []
    for base, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            path = Path(base) / name
            found.append((path, path.relative_to(root).as_posix()))
    return sorted(found, key=lambda p: p[1])


def scanner_version() -> str:
    """The installed picklescan version (recorded with every report)."""
    return version("picklescan")


def scan_path(root: Path, limits: ScanLimits | None = None, strict: bool = True) -> ScanReport:
    """Scan a file or every file under a directory."""
    limits = limits or ScanLimits()
    files = tuple(scan_file(p, label, limits, strict) for p, label in files_under(root))
    return ScanReport(files, scanner_version(), strict)
