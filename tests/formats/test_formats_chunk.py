"""Tamper tests for chunk records: every byte is authenticated, every length is capped.

Layout (offsets): magic 0-3, version 4, suite 5, flags 6, ring id 7-22, epoch 23-26,
chunk id 27-58, nonce 59-70, ciphertext length 71-74, ciphertext 75-, tag the last 16.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import zstandard
from format_tampering import flip, put, put_u32, refused, single_bit_flips

from vault.crypto.keyring import Keyring
from vault.errors import DecryptionError, IntegrityError
from vault.formats import ALTERED, chunk

FIELDS = {
    "magic": (0, 4),
    "version": (4, 1),
    "suite": (5, 1),
    "flags": (6, 1),
    "ring id": (7, 16),
    "epoch": (23, 4),
    "chunk id": (27, 32),
    "nonce": (59, 12),
    "ct length": (71, 4),
}


@pytest.fixture
def golden(vectors: dict[str, Any]) -> tuple[bytes, bytes]:
    """(record, chunk id) of the uncompressed known-answer chunk."""
    return bytes.fromhex(vectors["chunk"]["record"]), bytes.fromhex(vectors["chunk"]["chunk_id"])


def decode(record: bytes, ring: Keyring, chunk_id: bytes) -> bytes:
    return chunk.decode(record, ring, chunk_id, zstandard.ZstdDecompressor())


def test_header_layout_matches_the_docstring() -> None:
    assert chunk.HEADER_SIZE == 75
    assert sum(n for _, n in FIELDS.values()) == chunk.HEADER_SIZE


@pytest.mark.parametrize("section", ["chunk", "chunk_zstd"])
def test_every_single_bit_flip_is_refused(vectors: dict[str, Any], ring: Keyring, section: str) -> None:
    record = bytes.fromhex(vectors[section]["record"])
    chunk_id = bytes.fromhex(vectors[section]["chunk_id"])
    for _offset, _bit, tampered in single_bit_flips(record):
        refused(decode, tampered, ring, chunk_id, expect=IntegrityError)


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        ("magic", IntegrityError),
        ("version", IntegrityError),
        ("suite", IntegrityError),
        ("ring id", IntegrityError),
        ("chunk id", IntegrityError),
        ("nonce", DecryptionError),
        ("ct length", IntegrityError),
        ("ciphertext", DecryptionError),
        ("tag", DecryptionError),
    ],
)
def test_flip_in_each_field_gives_its_error(
    golden: tuple[bytes, bytes], ring: Keyring, where: str, expect: type[Exception]
) -> None:
    record, chunk_id = golden
    if where == "ciphertext":
        offsets = [chunk.HEADER_SIZE, chunk.HEADER_SIZE + 20, len(record) - 17]
    elif where == "tag":
        offsets = [len(record) - 16, len(record) - 1]
    else:
        start, size = FIELDS[where]
        offsets = sorted({start, start + size // 2, start + size - 1})
    for offset in offsets:
        for bit in (0, 7):
            err = refused(decode, flip(record, offset, bit), ring, chunk_id, expect=expect)
            if expect is DecryptionError:
                assert str(err) == str(DecryptionError())  # opaque: no hint at what was wrong


def test_flag_flip_is_caught_by_the_aad(golden: tuple[bytes, bytes], ring: Keyring) -> None:
    record, chunk_id = golden
    refused(decode, flip(record, 6, 0), ring, chunk_id, expect=DecryptionError)  # zstd bit: authenticated
    refused(decode, flip(record, 6, 1), ring, chunk_id, expect=IntegrityError)  # unknown bit: refused


def test_truncation_at_every_length_is_refused(golden: tuple[bytes, bytes], ring: Keyring) -> None:
    record, chunk_id = golden
    for length in range(len(record)):
        refused(decode, record[:length], ring, chunk_id, expect=IntegrityError)


def test_extension_is_refused(golden: tuple[bytes, bytes], ring: Keyring) -> None:
    record, chunk_id = golden
    for extra in (b"\0", record[-1:], record):
        refused(decode, record + extra, ring, chunk_id, expect=IntegrityError)


def test_length_field_made_consistent_with_a_truncation_is_still_refused(
    golden: tuple[bytes, bytes], ring: Keyring
) -> None:
    record, chunk_id = golden
    shorter = put_u32(record, 71, len(record) - chunk.HEADER_SIZE - 1)[:-1]
    refused(decode, shorter, ring, chunk_id, expect=DecryptionError)
    longer = put_u32(record, 71, len(record) - chunk.HEADER_SIZE + 1) + b"\0"
    refused(decode, longer, ring, chunk_id, expect=DecryptionError)


def test_splice_header_of_one_record_with_body_of_another(ring: Keyring) -> None:
    one, two = b"first chunk, 32 bytes of content", b"other chunk, 32 bytes of content"
    id_one, id_two = ring.chunk_id(one), ring.chunk_id(two)
    rec_one = chunk._encode_from_parts(ring, id_one, one, 0, nonce=b"\1" * 12)
    rec_two = chunk._encode_from_parts(ring, id_two, two, 0, nonce=b"\2" * 12)
    assert len(rec_one) == len(rec_two)
    h = chunk.HEADER_SIZE
    refused(decode, rec_one[:h] + rec_two[h:], ring, id_one, expect=DecryptionError)
    refused(decode, rec_two[:h] + rec_one[h:], ring, id_two, expect=DecryptionError)
    # Also with the nonce carried over from the body's own record.
    refused(decode, put(rec_one[:h], 59, rec_two[59:71]) + rec_two[h:], ring, id_one, expect=DecryptionError)
    assert decode(rec_one, ring, id_one) == one


def test_record_swapped_for_another_chunk_is_refused(golden: tuple[bytes, bytes], ring: Keyring) -> None:
    record, _ = golden
    other_id = ring.chunk_id(b"something else")
    refused(decode, record, ring, other_id, expect=IntegrityError)
    # Rewriting the header's chunk id to the one asked for breaks the key (HKDF salt) and the AAD.
    refused(decode, put(record, 27, other_id), ring, other_id, expect=DecryptionError)


def test_wrong_keyring_is_refused(golden: tuple[bytes, bytes], ring: Keyring, stranger_ring: Keyring) -> None:
    record, chunk_id = golden
    refused(decode, record, stranger_ring, chunk_id, expect=IntegrityError)
    # Relabelled to the stranger's ring: it has other keys, so AEAD fails.
    refused(decode, put(record, 7, stranger_ring.ring_id), stranger_ring, chunk_id, expect=DecryptionError)
    # Same ring id, different secrets (an attacker-made keyring of the same name).
    impostor = Keyring(ring.ring_id, stranger_ring.id_key, stranger_ring.deks)
    refused(decode, record, impostor, chunk_id, expect=DecryptionError)


def test_wrong_epoch_is_refused(golden: tuple[bytes, bytes], ring: Keyring) -> None:
    record, chunk_id = golden
    assert chunk.parse_unauthenticated_header(record).epoch == 1
    refused(decode, put_u32(record, 23, 0), ring, chunk_id, expect=DecryptionError)
    for epoch in (2, 1024, 2**32 - 1):
        err = refused(decode, put_u32(record, 23, epoch), ring, chunk_id, expect=IntegrityError)
        assert "epoch" in str(err)
    # A revoked reader keeps only epoch 0: a chunk written under epoch 1 is closed to them.
    revoked = Keyring(ring.ring_id, ring.id_key, ring.deks[:1])
    refused(decode, record, revoked, chunk_id, expect=IntegrityError)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_in_a_stored_record_is_tampering(
    golden: tuple[bytes, bytes], ring: Keyring, version: int
) -> None:
    record, chunk_id = golden
    err = refused(decode, put(record, 4, bytes([version])), ring, chunk_id, expect=IntegrityError)
    assert "version" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize("suite", [0, 2, 255])
def test_unknown_suite_in_a_stored_record_is_tampering(
    golden: tuple[bytes, bytes], ring: Keyring, suite: int
) -> None:
    record, chunk_id = golden
    err = refused(decode, put(record, 5, bytes([suite])), ring, chunk_id, expect=IntegrityError)
    assert "suite" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize("magic", [b"MLVP", b"mlvc", b"\0\0\0\0", b"MLVM"])
def test_bad_magic_is_an_integrity_error(golden: tuple[bytes, bytes], ring: Keyring, magic: bytes) -> None:
    record, chunk_id = golden
    err = refused(decode, put(record, 0, magic), ring, chunk_id, expect=IntegrityError)
    assert "magic" in str(err)


@pytest.mark.parametrize("flags", [0x02, 0x80, 0xFF])
def test_unknown_flags_are_refused(golden: tuple[bytes, bytes], ring: Keyring, flags: int) -> None:
    record, chunk_id = golden
    refused(decode, put(record, 6, bytes([flags])), ring, chunk_id, expect=IntegrityError)


@pytest.mark.parametrize("ct_len", [0, 15, chunk.MAX_CIPHERTEXT + 1, 2**31, 2**32 - 1])
def test_length_field_out_of_range_is_refused_from_the_header_alone(
    golden: tuple[bytes, bytes], ct_len: int
) -> None:
    header = put_u32(golden[0][: chunk.HEADER_SIZE], 71, ct_len)
    start = time.perf_counter()
    err = refused(chunk.parse_unauthenticated_header, header, expect=IntegrityError)
    assert time.perf_counter() - start < 0.5
    assert "length" in str(err)


def test_largest_allowed_length_parses(golden: tuple[bytes, bytes]) -> None:
    header = put_u32(golden[0][: chunk.HEADER_SIZE], 71, chunk.MAX_CIPHERTEXT)
    assert chunk.parse_unauthenticated_header(header).record_size == chunk.HEADER_SIZE + chunk.MAX_CIPHERTEXT


def test_authentic_record_whose_plaintext_is_not_its_id_is_refused(ring: Keyring) -> None:
    # A key holder (or a bug) sealing content under the wrong id: AEAD passes, the id check does not.
    claimed = ring.chunk_id(b"what the index expects")
    record = chunk._encode_from_parts(ring, claimed, b"what was actually stored", 0, nonce=b"\3" * 12)
    refused(decode, record, ring, claimed, expect=DecryptionError)


def test_authentic_record_with_broken_zstd_is_refused(ring: Keyring) -> None:
    plain = b"z" * 1000
    cid = ring.chunk_id(plain)
    refused(
        decode,
        chunk.encode(ring, cid, b"not a zstd frame", chunk.FLAG_ZSTD),
        ring,
        cid,
        expect=DecryptionError,
    )


def test_zstd_bomb_is_bounded(ring: Keyring) -> None:
    # A frame that expands past the chunk cap stops at the cap instead of filling memory.
    for write_content_size in (True, False):
        bomb = zstandard.ZstdCompressor(write_content_size=write_content_size).compress(
            bytes(chunk.MAX_PLAINTEXT + 1)
        )
        assert len(bomb) < 4096
        cid = ring.chunk_id(b"anything")
        refused(decode, chunk.encode(ring, cid, bomb, chunk.FLAG_ZSTD), ring, cid, expect=DecryptionError)
