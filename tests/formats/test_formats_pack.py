"""Tamper tests for packs: header, footer, trailer entries, and whole packs read back.

Whole-pack tests go through :func:`vault.repository.packs.read_trailer` on the in-memory backend and then
decode every chunk record at the offset its trailer entry gives, which is what ``check
--read-data`` and a catalog rebuild do. The golden pack (496 bytes) is: header 0-23, chunk
record 24-191, zstd chunk record 192-319, sealed trailer 320-487, footer 488-495.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
import zstandard
from format_tampering import flip, put, put_u32, refused, single_bit_flips

from vault.crypto.keyring import Keyring
from vault.errors import DecryptionError, IntegrityError
from vault.formats import ALTERED, chunk, pack, sealed
from vault.layout import pack_key
from vault.repository.packs import read_trailer
from vault.storage.memory import MemoryBackend

SECOND, TRAILER_AT, FOOTER_AT, SIZE = 192, 320, 488, 496


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def golden_pack(vectors: dict[str, Any]) -> bytes:
    p = vectors["pack"]
    return (
        h(p["header"])
        + h(vectors["chunk"]["record"])
        + h(vectors["chunk_zstd"]["record"])
        + h(p["trailer"])
        + h(p["footer"])
    )


def read_pack(blob: bytes, pack_id: bytes, ring: Keyring) -> list[bytes]:
    """Store ``blob`` as pack ``pack_id`` and read every chunk through its trailer."""
    backend = MemoryBackend()
    backend.put(pack_key(pack_id.hex()), blob)
    entries = read_trailer(backend, pack_id.hex(), ring)
    return [
        chunk.decode(
            backend.get_range(pack_key(pack_id.hex()), e.offset, e.length),
            ring,
            e.chunk_id,
            zstandard.ZstdDecompressor(),
        )
        for e in entries
    ]


def build_pack(
    pack_id: bytes,
    records: list[tuple[bytes, bytes]],
    ring: Keyring,
    entries: list[pack.TrailerEntry] | None = None,
    *,
    gap: bytes = b"",
) -> bytes:
    """A pack of (chunk id, record) pairs; ``entries`` overrides the honest trailer (a key holder lying)."""
    body = pack.encode_header(pack_id)
    honest = []
    for chunk_id, record in records:
        honest.append(pack.TrailerEntry(chunk_id, len(body), len(record)))
        body += record
    body += gap
    trailer = sealed.seal(
        sealed.TRAILER,
        ring.dek(ring.epoch),
        ring.ring_id,
        ring.epoch,
        pack_id,
        pack.encode_entries(honest if entries is None else entries),
    )
    return body + trailer + pack.encode_footer(len(trailer))


@pytest.fixture
def pack_id(inputs: dict[str, Any]) -> bytes:
    return h(inputs["pack_id"])


@pytest.fixture
def golden(vectors: dict[str, Any]) -> bytes:
    return golden_pack(vectors)


@pytest.fixture
def records(vectors: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(h(vectors[s]["chunk_id"]), h(vectors[s]["record"])) for s in ("chunk", "chunk_zstd")]


def test_golden_pack_layout(golden: bytes, vectors: dict[str, Any], pack_id: bytes, ring: Keyring) -> None:
    assert len(golden) == vectors["pack"]["size"] == SIZE
    entries = pack.decode_entries(h(vectors["pack"]["trailer_plaintext"]))
    assert [(e.offset, e.length) for e in entries] == [(24, 168), (SECOND, 128)]
    assert pack.decode_footer(golden[-8:], len(golden)) == FOOTER_AT - TRAILER_AT
    assert len(read_pack(golden, pack_id, ring)) == 2


# -- header -------------------------------------------------------------------------------


def test_header_bit_flips_are_refused(golden: bytes, pack_id: bytes) -> None:
    header = golden[: pack.HEADER_SIZE]
    for _offset, _bit, tampered in single_bit_flips(header):
        refused(pack.decode_header, tampered, pack_id, expect=IntegrityError)


def test_header_truncation_and_wrong_name_are_refused(golden: bytes, pack_id: bytes) -> None:
    for length in range(pack.HEADER_SIZE):
        refused(pack.decode_header, golden[:length], pack_id, expect=IntegrityError)
    err = refused(pack.decode_header, golden, bytes(16), expect=IntegrityError)
    assert "name" in str(err)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_header_unknown_version_in_a_stored_pack_is_tampering(
    golden: bytes, pack_id: bytes, version: int
) -> None:
    err = refused(pack.decode_header, put(golden, 4, bytes([version])), pack_id, expect=IntegrityError)
    assert "version" in str(err) and str(err).endswith(ALTERED)


def test_header_bad_magic_is_an_integrity_error(golden: bytes, pack_id: bytes) -> None:
    err = refused(pack.decode_header, put(golden, 0, b"MLVC"), pack_id, expect=IntegrityError)
    assert "magic" in str(err)


# -- footer -------------------------------------------------------------------------------


def test_footer_magic_flips_and_bad_sizes_are_refused(golden: bytes) -> None:
    footer = golden[-8:]
    for offset in range(4, 8):
        for bit in range(8):
            refused(pack.decode_footer, flip(footer, offset, bit), len(golden), expect=IntegrityError)
    for length in range(8):
        refused(pack.decode_footer, footer[:length], len(golden), expect=IntegrityError)
    refused(pack.decode_footer, footer + b"\0", len(golden), expect=IntegrityError)


@pytest.mark.parametrize("trailer_len", [2**32 - 1, 2**31, SIZE - 31])
def test_footer_trailer_length_is_capped_by_the_pack_size(golden: bytes, trailer_len: int) -> None:
    footer = put_u32(golden[-8:], 0, trailer_len)
    err = refused(pack.decode_footer, footer, len(golden), expect=IntegrityError)
    assert "out of range" in str(err)
    assert pack.decode_footer(put_u32(golden[-8:], 0, SIZE - 32), len(golden)) == SIZE - 32


# -- trailer entries ----------------------------------------------------------------------


def test_entries_truncation_and_extension_are_refused(vectors: dict[str, Any]) -> None:
    plaintext = h(vectors["pack"]["trailer_plaintext"])
    for length in range(len(plaintext)):
        refused(pack.decode_entries, plaintext[:length], expect=IntegrityError)
    refused(pack.decode_entries, plaintext + b"\0", expect=IntegrityError)


@pytest.mark.parametrize("count", [0, 1, 3, pack.MAX_ENTRIES + 1, 2**32 - 1])
def test_entries_count_must_match_the_bytes(vectors: dict[str, Any], count: int) -> None:
    plaintext = put_u32(h(vectors["pack"]["trailer_plaintext"]), 0, count)
    start = time.perf_counter()
    refused(pack.decode_entries, plaintext, expect=IntegrityError)
    assert time.perf_counter() - start < 0.5


def test_entry_count_cap_holds_even_when_the_bytes_are_there() -> None:
    count = pack.MAX_ENTRIES + 1
    plaintext = struct.pack(">I", count) + bytes(count * pack.ENTRY.size)
    refused(pack.decode_entries, plaintext, expect=IntegrityError)
    at_cap = struct.pack(">I", count - 1) + bytes((count - 1) * pack.ENTRY.size)
    assert len(pack.decode_entries(at_cap)) == count - 1


# -- whole packs ----------------------------------------------------------------------------


def test_every_single_bit_flip_in_a_pack_is_refused(golden: bytes, pack_id: bytes, ring: Keyring) -> None:
    for _offset, _bit, tampered in single_bit_flips(golden):
        refused(read_pack, tampered, pack_id, ring, expect=IntegrityError)


def test_truncation_at_every_length_is_refused(golden: bytes, pack_id: bytes, ring: Keyring) -> None:
    for length in range(len(golden)):
        refused(read_pack, golden[:length], pack_id, ring, expect=IntegrityError)


@pytest.mark.parametrize("where", [0, 24, SECOND, TRAILER_AT, FOOTER_AT, SIZE])
def test_a_byte_inserted_anywhere_is_refused(
    golden: bytes, pack_id: bytes, ring: Keyring, where: int
) -> None:
    refused(read_pack, golden[:where] + b"\0" + golden[where:], pack_id, ring, expect=IntegrityError)


def test_swapped_records_are_refused(golden: bytes, pack_id: bytes, ring: Keyring) -> None:
    swapped = golden[:24] + golden[SECOND:TRAILER_AT] + golden[24:SECOND] + golden[TRAILER_AT:]
    refused(read_pack, swapped, pack_id, ring, expect=IntegrityError)


def test_swapped_records_of_equal_length_are_refused(pack_id: bytes, ring: Keyring) -> None:
    plains = [b"first chunk, 32 bytes of content", b"other chunk, 32 bytes of content"]
    recs = [(ring.chunk_id(p), chunk.encode(ring, ring.chunk_id(p), p, 0)) for p in plains]
    blob = build_pack(pack_id, recs, ring)
    assert read_pack(blob, pack_id, ring) == plains
    n = len(recs[0][1])
    swapped = blob[:24] + blob[24 + n : 24 + 2 * n] + blob[24 : 24 + n] + blob[24 + 2 * n :]
    err = refused(read_pack, swapped, pack_id, ring, expect=IntegrityError)
    assert "not the chunk the index points to" in str(err)


def test_swapped_trailer_entries_in_the_ciphertext_are_refused(
    golden: bytes, pack_id: bytes, ring: Keyring
) -> None:
    # Entries are 44 bytes at plaintext offsets 4 and 48; GCM keeps positions, so swap them in place.
    base = TRAILER_AT + sealed.HEADER_SIZE
    first, second = golden[base + 4 : base + 48], golden[base + 48 : base + 92]
    swapped = golden[: base + 4] + second + first + golden[base + 92 :]
    refused(read_pack, swapped, pack_id, ring, expect=DecryptionError)


def test_authentic_trailer_with_swapped_entries_is_refused(
    records: list[tuple[bytes, bytes]], pack_id: bytes, ring: Keyring
) -> None:
    honest = [pack.TrailerEntry(records[0][0], 24, 168), pack.TrailerEntry(records[1][0], SECOND, 128)]
    assert len(read_pack(build_pack(pack_id, records, ring, honest), pack_id, ring)) == 2
    err = refused(
        read_pack, build_pack(pack_id, records, ring, honest[::-1]), pack_id, ring, expect=IntegrityError
    )
    assert "does not describe its records" in str(err)
    # Positions kept, chunk ids exchanged: each record then answers for the wrong chunk.
    crossed = [pack.TrailerEntry(records[1][0], 24, 168), pack.TrailerEntry(records[0][0], SECOND, 128)]
    refused(read_pack, build_pack(pack_id, records, ring, crossed), pack_id, ring, expect=IntegrityError)


@pytest.mark.parametrize(
    "entries",
    [
        [(0, 24, 168), (1, 24 + 100, 128)],  # overlapping
        [(0, 24, 168), (1, SECOND, 129)],  # runs into the trailer
        [(0, 24, 168)],  # a record the trailer hides
        [(0, 24, 168), (1, SECOND, 128), (1, TRAILER_AT, 0)],  # an empty entry past the records
        [(0, 24, 168), (1, 2**64 - 1, 128)],  # offset at the u64 limit
    ],
    ids=["overlap", "overrun", "unaccounted", "empty", "huge-offset"],
)
def test_authentic_trailer_that_misdescribes_the_pack_is_refused(
    records: list[tuple[bytes, bytes]], pack_id: bytes, ring: Keyring, entries: list[tuple[int, int, int]]
) -> None:
    lying = [pack.TrailerEntry(records[i][0], offset, length) for i, offset, length in entries]
    refused(read_pack, build_pack(pack_id, records, ring, lying), pack_id, ring, expect=IntegrityError)


def test_bytes_between_records_and_trailer_are_refused(
    records: list[tuple[bytes, bytes]], pack_id: bytes, ring: Keyring
) -> None:
    padded = build_pack(pack_id, records, ring, gap=b"x")
    err = refused(read_pack, padded, pack_id, ring, expect=IntegrityError)
    assert "does not account for" in str(err)


def test_pack_under_another_name_is_refused(golden: bytes, pack_id: bytes, ring: Keyring) -> None:
    other_id = bytes(range(0x31, 0x41))
    refused(read_pack, golden, other_id, ring, expect=IntegrityError)  # header names the old pack
    relabelled = put(golden, 8, other_id)
    err = refused(read_pack, relabelled, other_id, ring, expect=IntegrityError)  # trailer is bound to the id
    assert "not the one requested" in str(err)


def test_spliced_packs_are_refused(
    records: list[tuple[bytes, bytes]], golden: bytes, pack_id: bytes, ring: Keyring
) -> None:
    other_id = bytes(range(0x31, 0x41))
    other = build_pack(other_id, records, ring)
    assert len(other) == len(golden)
    # Body of one pack with the trailer and footer of another, under either name.
    refused(read_pack, golden[:TRAILER_AT] + other[TRAILER_AT:], pack_id, ring, expect=IntegrityError)
    refused(read_pack, other[:TRAILER_AT] + golden[TRAILER_AT:], other_id, ring, expect=IntegrityError)


def test_pack_of_another_keyring_is_refused(golden: bytes, pack_id: bytes, stranger_ring: Keyring) -> None:
    refused(read_pack, golden, pack_id, stranger_ring, expect=IntegrityError)
