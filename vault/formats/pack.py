"""Packs: many encrypted chunk records in one immutable object, with an encrypted index.

Layout::

    header  "MLVP" | version u8 = 1 | reserved 3 B | pack id 16 B          (24 bytes)
    records chunk records (see vault.formats.chunk), back to back
    trailer sealed object (kind TRAILER, object id = pack id) whose plaintext is
            count u32 | count × (chunk id 32 B | offset u64 | length u32)
    footer  trailer length u32 | "MLVE"                                     (8 bytes)

The catalog is the chunk index; trailers make it rebuildable from storage alone and let
``check --read-data`` walk a pack without trusting the catalog. The pack id is inside the
trailer's AAD, so a pack copied under another name is detected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vault.errors import IntegrityError
from vault.formats import ALTERED

MAGIC = b"MLVP"
FOOTER_MAGIC = b"MLVE"
VERSION = 1
HEADER = struct.Struct(">4sB3s16s")
HEADER_SIZE = HEADER.size
FOOTER = struct.Struct(">I4s")
FOOTER_SIZE = FOOTER.size
ENTRY = struct.Struct(">32sQI")
MAX_ENTRIES = 1 << 16
MAX_PACK_SIZE = 1 << 32


@dataclass(frozen=True)
class TrailerEntry:
    """Where one chunk record sits inside its pack."""

    chunk_id: bytes
    offset: int
    length: int


def encode_header(pack_id: bytes) -> bytes:
    """The 24-byte pack header."""
    return HEADER.pack(MAGIC, VERSION, b"\0\0\0", pack_id)


def decode_header(data: bytes, pack_id: bytes) -> None:
    """Check a pack header belongs to ``pack_id``."""
    if len(data) < HEADER_SIZE:
        raise IntegrityError("pack truncated")
    magic, version, reserved, stored_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not a pack (bad magic)")
    if version != VERSION:
        raise IntegrityError(f"pack format version {version} is not one this vault's format writes{ALTERED}")
    if reserved != b"\0\0\0" or stored_id != pack_id:
        raise IntegrityError("pack header does not match its name")


def encode_footer(trailer_len: int) -> bytes:
    """The 8-byte footer that locates the trailer."""
    return FOOTER.pack(trailer_len, FOOTER_MAGIC)


def decode_footer(data: bytes, pack_size: int) -> int:
    """Return the trailer length from the last 8 bytes of a pack of ``pack_size`` bytes."""
    if len(data) != FOOTER_SIZE:
        raise IntegrityError("pack truncated")
    trailer_len, magic = FOOTER.unpack(data)
    if magic != FOOTER_MAGIC:
        raise IntegrityError("pack footer damaged or pack truncated")
    if trailer_len > pack_size - HEADER_SIZE - FOOTER_SIZE:
        raise IntegrityError("pack trailer length out of range")
    return int(trailer_len)


def encode_entries(entries: list[TrailerEntry]) -> bytes:
    """Trailer plaintext for ``entries``."""
    if len(entries) > MAX_ENTRIES:
        raise ValueError("too many chunks in one pack")
    return struct.pack(">I", len(entries)) + b"".join(
        ENTRY.pack(e.chunk_id, e.offset, e.length) for e in entries
    )


def decode_entries(plaintext: bytes) -> list[TrailerEntry]:
    """Parse trailer plaintext, refusing counts that do not match the bytes present."""
    if len(plaintext) < 4:
        raise IntegrityError("pack trailer truncated")
    (count,) = struct.unpack_from(">I", plaintext)
    if count > MAX_ENTRIES or len(plaintext) != 4 + count * ENTRY.size:
        raise IntegrityError("pack trailer entry count does not match its length")
    return [TrailerEntry(*ENTRY.unpack_from(plaintext, 4 + i * ENTRY.size)) for i in range(count)]
