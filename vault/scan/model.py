"""What a scan reports: verdicts, findings, per-file results, and the limits that bound the work.

A verdict orders by how much it should worry a user: ``dangerous`` (a global on the deny-list, or —
in strict mode, the default — any global outside the allow-list), ``unscannable`` (the file could
not be parsed: never taken for clean), ``suspicious`` (a global on neither list, lenient mode only),
``clean`` (a pickle whose globals are all allow-listed) and ``not-applicable`` (a format that
cannot carry code: safetensors, GGUF, numpy without objects, JSON, text). The last two count as
clean.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

SCANNER = "picklescan"


class Verdict(enum.StrEnum):
    """One file's verdict; :attr:`rank` orders them, worst highest."""

    NOT_APPLICABLE = "not-applicable"
    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    UNSCANNABLE = "unscannable"
    DANGEROUS = "dangerous"

    @property
    def rank(self) -> int:
        """Position in the order above (0 = not applicable)."""
        return list(Verdict).index(self)

    @property
    def is_clean(self) -> bool:
        """True for ``clean`` and ``not-applicable``."""
        return self in (Verdict.CLEAN, Verdict.NOT_APPLICABLE)


def worst(verdicts: list[Verdict], default: Verdict = Verdict.NOT_APPLICABLE) -> Verdict:
    """The worst of ``verdicts`` (``default`` when there are none)."""
    return max(verdicts, key=lambda v: v.rank, default=default)


class Safety(enum.StrEnum):
    """How the scanner rates one imported global."""

    SAFE = "safe"
    SUSPICIOUS = "suspicious"
    DANGEROUS = "dangerous"


@dataclass(frozen=True, order=True)
class Finding:
    """One global a pickle imports when loaded (``module.name``), with its rating."""

    module: str
    name: str
    safety: Safety

    def to_json(self) -> dict[str, str]:
        """Plain JSON value."""
        return {"module": self.module, "name": self.name, "safety": self.safety.value}


@dataclass(frozen=True)
class ScanLimits:
    """Caps that keep a scan's memory and time bounded whatever a file claims."""

    max_pickle_bytes: int = 512 << 20  # bytes of one pickle stream disassembled (memory ≤ this)
    max_pickle_ops: int = 4_000_000  # opcodes of the first pickle; picklescan keeps ~130 bytes each
    max_zip_entries: int = 100_000
    max_npy_header: int = 1 << 16
    max_safetensors_header: int = 100 << 20  # the safetensors library's own cap
    max_gguf_header: int = 256 << 20  # bytes of GGUF key/values and tensor infos read
    max_gguf_tensors: int = 1 << 20
    max_gguf_kvs: int = 1 << 16
    max_gguf_string: int = 1 << 20
    max_gguf_array: int = 1 << 24


@dataclass(frozen=True)
class FileScan:
    """The scan of one file: the format detected from its content, the verdict, the globals found."""

    path: str
    format: str
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    note: str | None = None
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON value."""
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict.value,
            "imports": [f.to_json() for f in self.findings],
            "note": self.note,
            "size": self.size,
        }


@dataclass(frozen=True)
class ScanReport:
    """Every file's scan, and which scanner (name, version, mode) made them."""

    files: tuple[FileScan, ...]
    scanner_version: str
    strict: bool = True
    scanner: str = field(default=SCANNER)

    @property
    def verdict(self) -> Verdict:
        """The worst file verdict."""
        return worst([f.verdict for f in self.files])

    @property
    def dangerous(self) -> tuple[FileScan, ...]:
        """The files judged dangerous."""
        return tuple(f for f in self.files if f.verdict is Verdict.DANGEROUS)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON value."""
        return {
            "scanner": self.scanner,
            "scanner_version": self.scanner_version,
            "strict": self.strict,
            "verdict": self.verdict.value,
            "files": [f.to_json() for f in self.files],
        }
