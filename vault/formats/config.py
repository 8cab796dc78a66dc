"""The plaintext ``config`` object at the root of every vault: identity and parameters, no secrets.

JSON: ``{"mlvault": 1, "vault_id": hex, "chunker": {"min": int, "avg": int, "max": int, "nc": int},
"pack_size": int, "compression": "zstd" | "none", "catalog": url | null}``. A writer to the
store can edit it, so every field is range-checked; changing the chunker only hurts dedup,
never confidentiality or integrity (chunk ids and AEAD do not depend on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vault.errors import ConfigurationError

FORMAT = 1
MAX_SIZE = 64 * 1024


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC parameters; fixed per vault so equal content always cuts the same way.

    pyfastcdc cuts after ``min_size`` and then aims at ``avg_size`` more, so the mean
    chunk is about min + avg: 256 KiB + 768 KiB ≈ 1 MiB, the design's target. Normalized
    chunking level 2 narrows the spread of sizes, which measurably reduces the bytes a
    small edit re-stores (docs/design.md has the figures).
    """

    min_size: int = 256 * 1024
    avg_size: int = 768 * 1024
    max_size: int = 4 * 1024 * 1024
    normalization: int = 2

    def check(self) -> ChunkerParams:
        """Validate against pyfastcdc's ranges and our chunk cap."""
        if not (
            64 <= self.min_size <= 1024 * 1024
            and 256 <= self.avg_size <= 4 * 1024 * 1024
            and 1024 <= self.max_size <= 16 * 1024 * 1024
            and self.min_size <= self.avg_size <= self.max_size
            and self.normalization in (0, 1, 2, 3)
        ):
            raise ConfigurationError(f"vault config has invalid chunker parameters {self}")
        return self


@dataclass(frozen=True)
class VaultConfig:
    """The decoded vault config."""

    vault_id: str
    chunker: ChunkerParams = ChunkerParams()
    pack_size: int = 16 * 1024 * 1024
    compression: str = "zstd"
    catalog: str | None = None


def encode(config: VaultConfig) -> bytes:
    """Canonical JSON of ``config``."""
    doc = {
        "mlvault": FORMAT,
        "vault_id": config.vault_id,
        "chunker": {
            "min": config.chunker.min_size,
            "avg": config.chunker.avg_size,
            "max": config.chunker.max_size,
            "nc": config.chunker.normalization,
        },
        "pack_size": config.pack_size,
        "compression": config.compression,
        "catalog": config.catalog,
    }
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def decode(data: bytes) -> VaultConfig:
    """Parse and validate a vault config."""
    if len(data) > MAX_SIZE:
        raise ConfigurationError("vault config is too large; this is not an mlvault vault")
    try:
        doc = json.loads(data)
        fmt = doc["mlvault"]
        if type(fmt) is not int or fmt != FORMAT:  # true == 1.0 == 1 in Python
            raise ConfigurationError(
                f"vault format {fmt!r} is not supported by this mlvault; upgrade mlvault"
            )
        vault_id = doc["vault_id"]
        raw_chunker = doc["chunker"]
        chunker = ChunkerParams(
            int(raw_chunker["min"]), int(raw_chunker["avg"]), int(raw_chunker["max"]), int(raw_chunker["nc"])
        )
        pack_size = int(doc["pack_size"])
        compression = doc["compression"]
        catalog = doc.get("catalog")
    # OverflowError: int(Infinity), which json accepts; RecursionError: hostile nesting depth.
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise ConfigurationError("vault config is malformed; this is not an mlvault vault") from exc
    if not (
        isinstance(vault_id, str) and len(vault_id) == 32 and all(c in "0123456789abcdef" for c in vault_id)
    ):
        raise ConfigurationError("vault config has an invalid vault id")
    if compression not in ("zstd", "none") or not 1 << 20 <= pack_size <= 1 << 30:
        raise ConfigurationError("vault config has invalid pack or compression settings")
    if catalog is not None and not isinstance(catalog, str):
        raise ConfigurationError("vault config has an invalid catalog URL")
    return VaultConfig(vault_id, chunker.check(), pack_size, compression, catalog)
