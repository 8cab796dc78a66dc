"""Encrypted chunk records, the unit stored inside packs.

Layout (big-endian), 75-byte header then ciphertext::

    magic "MLVC" | version u8 = 1 | suite u8 = 1 | flags u8 | keyring id 16 B | epoch u32
    | chunk id 32 B | nonce 12 B | ciphertext length u32 | ciphertext (AES-256-GCM, tag last)

suite 1 = AES-256-GCM, key = HKDF-SHA256(ikm=DEK[epoch], salt=chunk id, info="mlvault/chunk/v1").
The whole header is the AAD, so the flags, keyring, epoch and id are authenticated.
flags bit 0: the plaintext was zstd-compressed. After decrypting (and decompressing) the
reader recomputes the keyed BLAKE3 id and compares it in constant time with the id it
asked for; that makes decryption key-committing and catches a record moved or swapped
inside or between packs.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

import zstandard

from vault.crypto import aead
from vault.crypto.keyring import Keyring
from vault.errors import DecryptionError, IntegrityError
from vault.formats import ALTERED

MAGIC = b"MLVC"
VERSION = 1
SUITE_AES256GCM_HKDF = 1
FLAG_ZSTD = 0x01
INFO = b"mlvault/chunk/v1"
HEADER = struct.Struct(">4sBBB16sI32s12sI")
HEADER_SIZE = HEADER.size
MAX_PLAINTEXT = 16 * 1024 * 1024  # above any chunker max (pyfastcdc caps max_size at 16 MiB)
MAX_CIPHERTEXT = MAX_PLAINTEXT + aead.TAG_SIZE
MIN_SAVING = 0.10  # keep zstd output only when at least 10 % smaller
_SAMPLE = 64 * 1024


@dataclass(frozen=True)
class ChunkHeader:
    """The parsed header of a chunk record."""

    flags: int
    ring_id: bytes
    epoch: int
    chunk_id: bytes
    nonce: bytes
    ct_len: int

    @property
    def record_size(self) -> int:
        """Header plus ciphertext."""
        return HEADER_SIZE + self.ct_len


def compress(plaintext: bytes, compressor: zstandard.ZstdCompressor) -> tuple[bytes, int]:
    """Return (stored bytes, flags): zstd output if it saves ≥10 %, else the plaintext.

    A 64 KiB sample is tried first, so incompressible data (weights, encrypted or already
    compressed files) costs almost nothing.
    """
    if len(plaintext) > _SAMPLE:
        sample = plaintext[:_SAMPLE]
        if len(compressor.compress(sample)) > len(sample) * (1 - MIN_SAVING):
            return plaintext, 0
    packed = compressor.compress(plaintext)
    if len(packed) <= len(plaintext) * (1 - MIN_SAVING):
        return packed, FLAG_ZSTD
    return plaintext, 0


def encode(keyring: Keyring, chunk_id: bytes, stored: bytes, flags: int) -> bytes:
    """Encrypt ``stored`` (already compressed or not, per ``flags``) into a chunk record."""
    return _encode_from_parts(keyring, chunk_id, stored, flags, nonce=aead.new_nonce())


def _encode_from_parts(
    keyring: Keyring, chunk_id: bytes, stored: bytes, flags: int, *, nonce: bytes
) -> bytes:
    """:func:`encode` with the nonce given: the seam for known-answer vectors, never for storage."""
    if len(stored) > MAX_PLAINTEXT:
        raise ValueError("chunk too large")
    if len(nonce) != aead.NONCE_SIZE:
        raise ValueError("a chunk nonce is 12 bytes")
    epoch = keyring.epoch
    header = HEADER.pack(
        MAGIC,
        VERSION,
        SUITE_AES256GCM_HKDF,
        flags,
        keyring.ring_id,
        epoch,
        chunk_id,
        nonce,
        len(stored) + aead.TAG_SIZE,
    )
    key = aead.derive_key(keyring.dek(epoch), chunk_id, INFO)
    return header + aead.seal(key, nonce, stored, header)


def parse_unauthenticated_header(data: bytes) -> ChunkHeader:
    """Parse and bound-check a chunk header (the first HEADER_SIZE bytes of ``data``).

    Nothing in it is authenticated yet: use it to size and locate the record, and trust
    its fields only after :func:`decode` succeeded.
    """
    if len(data) < HEADER_SIZE:
        raise IntegrityError("chunk record truncated")
    magic, version, suite, flags, ring_id, epoch, chunk_id, nonce, ct_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not a chunk record (bad magic)")
    if version != VERSION:
        raise IntegrityError(f"chunk format version {version} is not one this vault's format writes{ALTERED}")
    if suite != SUITE_AES256GCM_HKDF:
        raise IntegrityError(f"chunk cipher suite {suite} is not one this vault's format writes{ALTERED}")
    if flags & ~FLAG_ZSTD:
        raise IntegrityError("chunk record has unknown flags")
    if not aead.TAG_SIZE <= ct_len <= MAX_CIPHERTEXT:
        raise IntegrityError("chunk record length out of range")
    return ChunkHeader(flags, ring_id, epoch, chunk_id, nonce, ct_len)


def decode(
    record: bytes, keyring: Keyring, expected_id: bytes, decompressor: zstandard.ZstdDecompressor
) -> bytes:
    """Decrypt and verify one chunk record; returns the chunk's plaintext.

    Raises IntegrityError (or its subclass DecryptionError) on any mismatch.
    """
    header = parse_unauthenticated_header(record)
    if len(record) != header.record_size:
        raise IntegrityError("chunk record truncated")
    if header.ring_id != keyring.ring_id or not hmac.compare_digest(header.chunk_id, expected_id):
        raise IntegrityError("chunk record is not the chunk the index points to")
    key = aead.derive_key(keyring.dek(header.epoch), header.chunk_id, INFO)
    stored = aead.open_sealed(key, header.nonce, record[HEADER_SIZE:], record[:HEADER_SIZE])
    if header.flags & FLAG_ZSTD:
        # python-zstandard ignores max_output_size when the frame declares its size, so the
        # declared size is checked first; a frame without one is decompressed with the cap.
        try:
            declared = zstandard.frame_content_size(stored)
            if declared > MAX_PLAINTEXT:
                raise DecryptionError()
            plaintext = decompressor.decompress(stored, max_output_size=MAX_PLAINTEXT)
        except zstandard.ZstdError as exc:
            raise DecryptionError() from exc
        if len(plaintext) > MAX_PLAINTEXT:
            raise DecryptionError()
    else:
        plaintext = stored
    if not hmac.compare_digest(keyring.chunk_id(plaintext), expected_id):
        raise DecryptionError()
    return plaintext
