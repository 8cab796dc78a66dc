"""Pickle-bearing content: raw pickles (protocols 0–5, legacy PyTorch, joblib), numpy ``.npy`` with
object arrays, and zip archives (PyTorch checkpoints, ``.npz``), scanned without unpickling.

The globals a pickle would import come from picklescan (pickletools disassembly; its deny-list and,
in strict mode, its allow-list). picklescan treats a stream it cannot disassemble as "no globals",
so before asking it this module disassembles the first pickle itself: a stream that does not reach
STOP is ``unscannable`` unless picklescan already found a dangerous global in the part it read
(``pickle.load`` runs opcodes as it reads them, so a broken tail does not make a payload harmless).
Bytes after the first complete pickle may be anything (joblib writes raw array buffers there);
picklescan still reports the globals of every further pickle it can read.

Every stream is wrapped in a :class:`~vault.scan.bounded.BoundedReader`, so a hostile length in an
opcode argument, a zip entry or a numpy header never makes the scan allocate more than its limits.
"""

from __future__ import annotations

import ast
import logging
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from typing import IO, Any, cast

from .bounded import BoundedReader
from .model import FileScan, Finding, Safety, ScanLimits, Verdict, worst

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
PICKLE_PROTO_MAGIC = tuple(bytes([0x80, p]) for p in range(6))
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_NAMES = (".pkl", ".pickle")
_SAFETY = {"innocuous": Safety.SAFE, "suspicious": Safety.SUSPICIOUS, "dangerous": Safety.DANGEROUS}

# picklescan logs every stream it cannot parse at WARNING; with no handler configured, Python's
# last-resort handler would print those lines (with tracebacks) during a push. The verdict says it.
logging.getLogger("picklescan").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class PickleScan:
    """What one pickle stream imports, and whether its first pickle disassembled to STOP."""

    findings: tuple[Finding, ...]
    complete: bool
    legacy_torch: bool = False
    error: str | None = None

    def verdict(self) -> Verdict:
        """dangerous > unscannable (first pickle broken) > suspicious > clean.

        A broken stream is dangerous only for a named deny-listed global (it was scanned leniently):
        random bytes disassemble into made-up globals and "unknown" ones (STACK_GLOBAL after
        non-strings), and flagging those would refuse ordinary binary files.
        """
        if not self.complete:
            named = any(
                f.safety is Safety.DANGEROUS and "unknown" not in (f.module, f.name) for f in self.findings
            )
            return Verdict.DANGEROUS if named else Verdict.UNSCANNABLE
        safeties = {f.safety for f in self.findings}
        if Safety.DANGEROUS in safeties:
            return Verdict.DANGEROUS
        return Verdict.SUSPICIOUS if Safety.SUSPICIOUS in safeties else Verdict.CLEAN


@dataclass(frozen=True)
class _FirstPickle:
    complete: bool  # reached STOP
    legacy: bool  # the legacy PyTorch magic number
    error: str | None = None
    over_cap: bool = False  # too many opcodes to hand to picklescan


def _first_pickle(stream: IO[bytes], size: int, limits: ScanLimits) -> _FirstPickle:
    """Disassemble the first pickle (counting opcodes against the cap)."""
    reader = cast(IO[bytes], BoundedReader(stream, size, limits.max_pickle_bytes))
    ops = 0
    legacy = False
    try:
        for opcode, arg, _pos in pickletools.genops(reader):
            ops += 1
            if ops > limits.max_pickle_ops:
                return _FirstPickle(False, False, f"more than {limits.max_pickle_ops:,} pickle opcodes", True)
            legacy = legacy or (ops <= 3 and arg == TORCH_LEGACY_MAGIC)
            if opcode.name == "STOP":
                return _FirstPickle(True, legacy)
    except Exception as exc:  # noqa: BLE001 — any disassembly failure means "not a complete pickle"
        return _FirstPickle(False, False, f"not a complete pickle: {exc}")
    return _FirstPickle(False, False, "not a complete pickle: no STOP opcode")


def scan_pickle_stream(
    stream: IO[bytes], size: int, label: str, limits: ScanLimits, strict: bool
) -> PickleScan:
    """Scan the pickle(s) from the stream's position up to ``size`` (absolute end)."""
    from picklescan.scanner import scan_pickle_bytes

    start = stream.tell()
    first = _first_pickle(stream, size, limits)
    if first.over_cap:
        return PickleScan((), False, first.legacy, first.error)  # picklescan would hold every opcode
    stream.seek(start)
    reader = BoundedReader(stream, size, limits.max_pickle_bytes)
    try:
        if first.legacy:
            # A legacy checkpoint is five pickles then raw storages, and torch.load unpickles only the
            # five: storage bytes read as a pickle could disassemble into made-up globals.
            found = [scan_pickle_bytes(reader, label, False, strict) for _ in range(5)]
            globals_ = [g for r in found for g in r.globals]
        else:
            # The allow-list (strict) applies to a pickle that parses; a broken one only meets the deny-list.
            globals_ = scan_pickle_bytes(reader, label, True, strict and first.complete).globals
    except Exception as exc:  # noqa: BLE001 — the scanner's own failure: unscannable, never clean
        return PickleScan((), False, first.legacy, f"scanner failed: {exc}")
    findings = sorted({Finding(str(g.module), str(g.name), _SAFETY[g.safety.value]) for g in globals_})
    return PickleScan(tuple(findings), first.complete, first.legacy, first.error)


def pickle_format(scan: PickleScan) -> str:
    """``pytorch-legacy``, ``joblib`` or ``pickle``, from what the stream holds."""
    if scan.legacy_torch:
        return "pytorch-legacy"
    if any(f.module.startswith("joblib.") for f in scan.findings):
        return "joblib"
    return "pickle"


# -- numpy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpyHeader:
    """A parsed ``.npy`` header; the array data starts where the stream is left."""

    descr: Any
    shape: tuple[int, ...]
    fortran_order: bool

    @property
    def has_objects(self) -> bool:
        """Conservatively: any ``O`` type code anywhere in the descriptor means pickled objects follow."""
        if isinstance(self.descr, str):
            return self.descr.lstrip("<>|=").startswith("O")
        return "O" in repr(self.descr)


def read_npy_header(stream: IO[bytes], limits: ScanLimits) -> NpyHeader:
    """Parse magic, version, length-prefixed header dict (a Python literal; ``literal_eval`` only)."""
    head = stream.read(8)
    if len(head) < 8 or not head.startswith(NPY_MAGIC):
        raise ValueError("not a numpy .npy file")
    major = head[6]
    if major == 1:
        (length,) = struct.unpack("<H", stream.read(2))
    elif major in (2, 3):
        (length,) = struct.unpack("<I", stream.read(4))
    else:
        raise ValueError(f"unsupported .npy version {major}")
    if length > limits.max_npy_header:
        raise ValueError(f".npy header of {length} bytes exceeds the cap of {limits.max_npy_header}")
    raw = stream.read(length)
    if len(raw) != length:
        raise ValueError(".npy header is truncated")
    try:
        value = ast.literal_eval(raw.decode("latin-1" if major < 3 else "utf-8"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(".npy header is not a Python literal") from exc
    if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
        raise ValueError(".npy header lacks descr/fortran_order/shape")
    shape = value["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(".npy shape is not a tuple of non-negative integers")
    return NpyHeader(value["descr"], shape, bool(value["fortran_order"]))


def scan_npy(stream: IO[bytes], size: int, label: str, limits: ScanLimits, strict: bool) -> FileScan:
    """An object array is a pickle after the header; any other array is plain data."""
    try:
        header = read_npy_header(stream, limits)
    except (ValueError, struct.error) as exc:
        return FileScan(label, "numpy", Verdict.UNSCANNABLE, note=str(exc))
    if not header.has_objects:
        return FileScan(label, "numpy", Verdict.NOT_APPLICABLE)
    scan = scan_pickle_stream(stream, size, label, limits, strict)
    return FileScan(label, "numpy-object", scan.verdict(), scan.findings, scan.error)


# -- zip archives -----------------------------------------------------------------------------


def _scan_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: ScanLimits, strict: bool
) -> FileScan | None:
    with zf.open(info) as entry:
        head = entry.read(8)
        entry.seek(0)
        if head.startswith(NPY_MAGIC):
            return scan_npy(entry, info.file_size, label, limits, strict)
        named = info.filename.lower().endswith(_PICKLE_NAMES)
        if not named and not head.startswith(PICKLE_PROTO_MAGIC):
            return None
        scan = scan_pickle_stream(entry, info.file_size, label, limits, strict)
    if not named and not scan.complete and scan.verdict() is not Verdict.DANGEROUS:
        return None  # raw tensor bytes that happen to begin like a pickle: torch never unpickles them
    return FileScan(label, pickle_format(scan), scan.verdict(), scan.findings, scan.error)


def scan_zip(stream: IO[bytes], label: str, limits: ScanLimits, strict: bool) -> FileScan:
    """Every pickle-named or pickle-looking entry and every ``.npy`` entry; the worst verdict wins."""
    logging.getLogger(__name__).debug("scanning zip %s", label)
    try:
        with zipfile.ZipFile(stream) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > limits.max_zip_entries:
                note = f"more than {limits.max_zip_entries} entries"
                return FileScan(label, "zip", Verdict.UNSCANNABLE, note=note)
            scans = [s for i in infos if (s := _scan_entry(zf, i, f"{label}:{i.filename}", limits, strict))]
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, ValueError) as exc:
        return FileScan(label, "zip", Verdict.UNSCANNABLE, note=f"unreadable zip archive: {exc}")
    names = [i.filename for i in infos]
    if any(n.endswith("data.pkl") for n in names):
        fmt = "pytorch-zip"
    elif names and all(n.endswith(".npy") for n in names):
        fmt = "npz"
    else:
        fmt = "zip"
    findings = tuple(sorted({f for s in scans for f in s.findings}))
    notes = [f"{s.path}: {s.note}" for s in scans if s.note]
    verdict = worst([s.verdict for s in scans], Verdict.NOT_APPLICABLE)
    return FileScan(label, fmt, verdict, findings, "; ".join(notes) or None)
