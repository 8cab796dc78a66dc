"""Content-defined chunking survives a shifted, partly rewritten copy of a large file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from corehelpers import sha256_file, write_random

import vault

MIB = 1 << 20


def _shifted_copy(original: Path, copy: Path, seed: int) -> None:
    """``copy`` = 100 new bytes, then ``original`` with 1 MiB in its middle overwritten (streamed)."""
    rng = random.Random(seed)
    size = original.stat().st_size
    middle = size // 2
    with original.open("rb") as src, copy.open("wb") as out:
        out.write(rng.randbytes(100))
        out.write(src.read(middle))
        out.write(rng.randbytes(MIB))
        src.seek(middle + MIB)
        while block := src.read(8 * MIB):
            out.write(block)
    assert copy.stat().st_size == size + 100


@pytest.mark.slow
def test_shifted_and_edited_copy_stores_little(local_vault: vault.Vault, tmp_path: Path) -> None:
    original = write_random(tmp_path / "big.bin", 64 * MIB, seed=64)
    edited = tmp_path / "big-edited.bin"
    _shifted_copy(original, edited, seed=65)

    first = local_vault.push(original, "datasets/big")
    assert first.stored_bytes >= 64 * MIB  # incompressible: everything is new the first time
    second = local_vault.push(edited, "datasets/big")

    assert second.stored_bytes < 8 * MIB, f"second version stored {second.stored_bytes / MIB:.1f} MiB"
    assert second.reused_chunks > second.new_chunks
    assert second.reused_chunks >= 0.8 * (second.new_chunks + second.reused_chunks)

    pulled = local_vault.pull("datasets/big@v2", tmp_path / "back.bin")
    assert pulled.sha256["big-edited.bin"] == sha256_file(edited) == sha256_file(tmp_path / "back.bin")
