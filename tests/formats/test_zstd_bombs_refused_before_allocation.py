"""A zstd frame that declares more than a chunk may hold is refused before anything is allocated.

python-zstandard allocates the size a frame *declares* and ignores ``max_output_size`` when a
size is declared, so :func:`vault.formats.chunk.decode` reads the declared size first. These
tests fail if that check goes: an allocation probe sees the decompressor being called, and a
child process under an address-space limit meets a MemoryError instead of the refusal.
A frame with no declared size is bounded by ``max_output_size`` (see test_formats_chunk).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

import pytest
import zstandard
from format_tampering import refused

from vault.crypto.keyring import Keyring
from vault.errors import DecryptionError
from vault.formats import chunk

ZSTD_MAGIC = struct.pack("<I", 0xFD2FB528)
# Frame header descriptor: 8-byte content size field, single segment, no checksum, no dictionary.
FHD_SINGLE_SEGMENT_8_BYTE_SIZE = bytes([0b1110_0000])
# A block header of the reserved block type 3: no decoder can expand what follows.
RESERVED_BLOCK = bytes([0b0000_0111, 0, 0])
ONE_TIB = 1 << 40


def frame_declaring(size: int) -> bytes:
    """A zstd frame header declaring ``size`` bytes, followed by a body that cannot decompress."""
    return ZSTD_MAGIC + FHD_SINGLE_SEGMENT_8_BYTE_SIZE + struct.pack("<Q", size) + RESERVED_BLOCK


class AllocationProbe:
    """A real decompressor (wrapped, not subclassed: it is a C type) that counts the calls
    that would allocate an output buffer."""

    def __init__(self) -> None:
        self._real = zstandard.ZstdDecompressor()
        self.calls = 0

    def decompress(self, data: bytes, max_output_size: int = 0) -> bytes:
        self.calls += 1
        return self._real.decompress(data, max_output_size=max_output_size)

    def as_decompressor(self) -> zstandard.ZstdDecompressor:
        return cast(zstandard.ZstdDecompressor, self)


def test_the_crafted_frame_declares_what_it_says() -> None:
    assert zstandard.frame_content_size(frame_declaring(ONE_TIB)) == ONE_TIB
    assert zstandard.frame_content_size(frame_declaring(7)) == 7


@pytest.mark.parametrize(
    "stored",
    [
        frame_declaring(ONE_TIB),
        frame_declaring(chunk.MAX_PLAINTEXT + 1),
        zstandard.ZstdCompressor().compress(bytes(64 << 20)),  # a real bomb: 64 MiB in ~2 KB
    ],
    ids=["declares 1 TiB", "declares the cap + 1", "real 64 MiB bomb"],
)
def test_a_frame_declaring_more_than_the_cap_never_reaches_the_decompressor(
    ring: Keyring, stored: bytes
) -> None:
    assert zstandard.frame_content_size(stored) > chunk.MAX_PLAINTEXT
    chunk_id = ring.chunk_id(b"anything")
    record = chunk.encode(ring, chunk_id, stored, chunk.FLAG_ZSTD)
    probe = AllocationProbe()
    refused(chunk.decode, record, ring, chunk_id, probe.as_decompressor(), expect=DecryptionError)
    assert probe.calls == 0, "the decompressor was asked to allocate the declared size"


def test_a_frame_within_the_cap_is_still_decompressed(ring: Keyring) -> None:
    plain = b"weights " * 4096
    stored = zstandard.ZstdCompressor().compress(plain)
    chunk_id = ring.chunk_id(plain)
    probe = AllocationProbe()
    record = chunk.encode(ring, chunk_id, stored, chunk.FLAG_ZSTD)
    assert chunk.decode(record, ring, chunk_id, probe.as_decompressor()) == plain
    assert probe.calls == 1


CHILD = textwrap.dedent(
    """
    import resource, struct, sys
    import zstandard
    from vault.crypto.keyring import Keyring
    from vault.formats import chunk

    ring = Keyring(bytes(16), bytes(range(32)), (bytes(32),))
    chunk_id = ring.chunk_id(b"anything")
    record = chunk.encode(ring, chunk_id, bytes.fromhex(sys.argv[1]), chunk.FLAG_ZSTD)
    decompressor = zstandard.ZstdDecompressor()
    with open("/proc/self/status") as status:
        vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (vm_kib << 10) + (256 << 20)  # what is mapped now, plus 256 MiB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        chunk.decode(record, ring, chunk_id, decompressor)
    except BaseException as exc:
        print(type(exc).__name__)
    else:
        print("accepted")
    """
)


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs Linux /proc for the address-space cap"
)
def test_a_frame_declaring_a_terabyte_is_refused_under_a_tight_memory_limit() -> None:
    # Without the declared-size check the real decompressor asks for 1 TiB and gets MemoryError.
    result = subprocess.run(
        [sys.executable, "-c", CHILD, frame_declaring(ONE_TIB).hex()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DecryptionError", result.stdout + result.stderr
