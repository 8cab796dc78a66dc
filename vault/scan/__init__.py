"""Model scanning and inspection: which files would run code when loaded, and what a model holds.

``scan_path`` detects each file's format from its content and rates it (``vault.scan.model``);
pickle-bearing formats are disassembled by picklescan, never unpickled (``vault.scan.pickles``);
safetensors and GGUF headers are read with caps (``vault.scan.headers``); ``inspect_path``
summarizes tensors and globals. Nothing in this package imports the rest of mlvault except
``vault.errors``.
"""

from __future__ import annotations

from .model import FileScan, Finding, Safety, ScanLimits, ScanReport, Verdict

__all__ = ["FileScan", "Finding", "Safety", "ScanLimits", "ScanReport", "Verdict"]
