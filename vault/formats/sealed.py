"""Sealed objects: pack trailers, manifests and keyring secrets share one envelope.

Layout (big-endian), 60-byte header then ciphertext::

    magic 4 B (names the kind) | version u8 = 1 | suite u8 = 1 | reserved u16 = 0
    | keyring id 16 B | epoch u32 | object id 16 B | nonce 12 B | ciphertext length u32
    | ciphertext (AES-256-GCM, tag last)

The header is the AAD. The key is HKDF-SHA256(ikm, salt=object id, info=the kind's label),
where ``ikm`` is the keyring's DEK for the epoch (trailer, manifest) or a key-encryption
key (keyring secret in a slot). Binding the object id through both salt and AAD means a
manifest copied over another version's name, or a trailer moved to another pack, fails
authentication.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vault.crypto import aead
from vault.errors import ConfigurationError, IntegrityError
from vault.formats import ALTERED

VERSION = 1
SUITE_AES256GCM_HKDF = 1
HEADER = struct.Struct(">4sBBH16sI16s12sI")
HEADER_SIZE = HEADER.size


@dataclass(frozen=True)
class Kind:
    """One sealed-object kind: its magic, HKDF label and plaintext cap."""

    magic: bytes
    info: bytes
    max_plaintext: int


TRAILER = Kind(b"MLVT", b"mlvault/pack-trailer/v1", 8 * 1024 * 1024)
MANIFEST = Kind(b"MLVM", b"mlvault/manifest/v1", 64 * 1024 * 1024)
SNAPSHOT = Kind(b"MLVN", b"mlvault/snapshot/v1", 1024 * 1024 * 1024)


@dataclass(frozen=True)
class SealedHeader:
    """The parsed header of a sealed object."""

    ring_id: bytes
    epoch: int
    object_id: bytes
    nonce: bytes
    ct_len: int


def seal(
    kind: Kind,
    ikm: bytes,
    ring_id: bytes,
    epoch: int,
    object_id: bytes,
    plaintext: bytes,
) -> bytes:
    """Encrypt ``plaintext`` as a sealed object of ``kind``."""
    return _seal_from_parts(kind, ikm, ring_id, epoch, object_id, plaintext, nonce=aead.new_nonce())


def _seal_from_parts(
    kind: Kind,
    ikm: bytes,
    ring_id: bytes,
    epoch: int,
    object_id: bytes,
    plaintext: bytes,
    *,
    nonce: bytes,
) -> bytes:
    """:func:`seal` with the nonce given: the seam for known-answer vectors, never for storage."""
    if len(plaintext) > kind.max_plaintext:
        raise ConfigurationError(f"{kind.magic.decode()} object too large ({len(plaintext)} bytes)")
    if len(nonce) != aead.NONCE_SIZE:
        raise ValueError("a sealed-object nonce is 12 bytes")
    header = HEADER.pack(
        kind.magic,
        VERSION,
        SUITE_AES256GCM_HKDF,
        0,
        ring_id,
        epoch,
        object_id,
        nonce,
        len(plaintext) + aead.TAG_SIZE,
    )
    key = aead.derive_key(ikm, object_id, kind.info)
    return header + aead.seal(key, nonce, plaintext, header)


def parse_unauthenticated_header(kind: Kind, data: bytes) -> SealedHeader:
    """Parse and bound-check the header of a sealed object of ``kind``.

    Nothing in it is authenticated yet: use its epoch to pick the key for
    :func:`open_object`, and trust nothing else in it before that succeeded.
    """
    if len(data) < HEADER_SIZE:
        raise IntegrityError(f"{kind.magic.decode()} object truncated")
    magic, version, suite, reserved, ring_id, epoch, object_id, nonce, ct_len = HEADER.unpack_from(data)
    if magic != kind.magic:
        raise IntegrityError(f"not a {kind.magic.decode()} object (bad magic)")
    if version != VERSION:
        raise IntegrityError(
            f"{kind.magic.decode()} format version {version} is not one this vault's format writes{ALTERED}"
        )
    if suite != SUITE_AES256GCM_HKDF or reserved != 0:
        raise IntegrityError(
            f"{kind.magic.decode()} cipher suite {suite} is not one this vault's format writes{ALTERED}"
        )
    if not aead.TAG_SIZE <= ct_len <= kind.max_plaintext + aead.TAG_SIZE:
        raise IntegrityError(f"{kind.magic.decode()} object length out of range")
    return SealedHeader(ring_id, epoch, object_id, nonce, ct_len)


def open_object(kind: Kind, data: bytes, ikm: bytes, ring_id: bytes, object_id: bytes) -> bytes:
    """Authenticate and decrypt a sealed object that must be (ring_id, object_id).

    ``ikm`` must be the key for the epoch in the header; callers that hold several
    epochs call :func:`parse_unauthenticated_header` first to pick it.
    """
    header = parse_unauthenticated_header(kind, data)
    if len(data) != HEADER_SIZE + header.ct_len:
        raise IntegrityError(f"{kind.magic.decode()} object truncated or extended")
    if header.ring_id != ring_id or header.object_id != object_id:
        raise IntegrityError(f"{kind.magic.decode()} object is not the one requested")
    key = aead.derive_key(ikm, object_id, kind.info)
    return aead.open_sealed(key, header.nonce, data[HEADER_SIZE:], data[:HEADER_SIZE])
