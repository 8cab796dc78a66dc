"""Every value read from the catalog is checked here before anyone uses it.

Whoever can write the catalog database (a shared PostgreSQL, a SQLite file in a vault
directory) can put anything in a row. Storage keys are built from ids, byte ranges are
read at offsets, buffers are sized by lengths: an id ``../config``, an offset of 2^63 or
a length of -5 must stop here, as an :class:`IntegrityError` naming the row, not surface
later as "invalid storage key", "Invalid argument" or a bare ``ValueError``.

The bounds are those of the formats: ids are 128-bit lower-case hex
(:func:`vault.layout.is_id`), a chunk record is at most a chunk header plus the largest
ciphertext, a pack at most :data:`vault.formats.pack.MAX_PACK_SIZE` bytes with at most
:data:`vault.formats.pack.MAX_ENTRIES` entries, a version at most
:data:`vault.formats.manifest.MAX_ENTRIES` files.
"""

from __future__ import annotations

import re

from vault import layout
from vault.errors import IntegrityError
from vault.formats import chunk as chunk_format
from vault.formats import manifest as manifest_format
from vault.formats import pack as pack_format

MAX_RECORD = chunk_format.HEADER_SIZE + chunk_format.MAX_CIPHERTEXT
MAX_PACK_SIZE = pack_format.MAX_PACK_SIZE
MAX_PACK_ENTRIES = pack_format.MAX_ENTRIES
MAX_FILES = manifest_format.MAX_ENTRIES
MAX_BYTES = (1 << 63) - 1  # a version or file size: what a signed 64-bit column holds
MAX_NUMBER = (1 << 31) - 1
CHUNK_ID_SIZE = 32
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def bad(row: str, what: str) -> IntegrityError:
    """The error for a catalog row holding a value it cannot hold."""
    return IntegrityError(f"the catalog is damaged or was tampered with: {row} has {what}")


def an_id(value: object, row: str, what: str) -> str:
    """``value`` if it is a 32-digit lower-case hex id."""
    if not layout.is_id(value):
        raise bad(row, f"{what} {value!r}, not 32 lower-case hex digits")
    assert isinstance(value, str)
    return value


def a_count(value: object, row: str, what: str, cap: int, *, least: int = 0) -> int:
    """``value`` if it is an int in ``[least, cap]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= cap:
        raise bad(row, f"{what} {value!r}, outside {least}..{cap}")
    return value


def a_sha256(value: object, row: str, what: str) -> str:
    """``value`` if it is a SHA-256 in lower-case hex."""
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        raise bad(row, f"{what} {value!r}, not a SHA-256 in lower-case hex")
    return value


def a_chunk_id(value: object, row: str) -> bytes:
    """``value`` as bytes if it is a 32-byte chunk id."""
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != CHUNK_ID_SIZE:
        raise bad(row, "a chunk id that is not 32 bytes")
    return bytes(value)


def a_location(
    pack_id: object, offset: object, length: object, row: str, pack_size: int | None = None
) -> tuple[str, int, int]:
    """(pack id, offset, length) of a chunk record, each in range; within the pack if its size is known."""
    pack = an_id(pack_id, row, "pack id")
    start = a_count(offset, row, "offset", MAX_PACK_SIZE)
    size = a_count(length, row, "length", MAX_RECORD, least=1)
    if pack_size is not None and start + size > pack_size:
        raise bad(row, f"the range {start}+{size}, past the end of pack {pack} ({pack_size} bytes)")
    return pack, start, size
