"""Key slots: one key-encryption key wrapping a secret, stored at ``keys/<ring>/<slot>``.

Layout (big-endian)::

    magic "MLVS" | version u8 = 2 | kind u8 | vault id 16 B | ring id 16 B | slot id 16 B
    | params length u16 | params | nonce 12 B | ciphertext length u32 | ciphertext
    | checksum 16 B                                                   (version 2 only)

Version 2 appends a checksum, the first 16 bytes of SHA-256 over every preceding byte. It is
not a MAC and keeps no secret: it tells accidental damage (a flipped bit, a torn write) apart
from a wrong passphrase, which the AEAD alone cannot. Whoever rewrites a slot on purpose can
recompute it, and then meets the AEAD. New slots are written as version 2; version 1 slots
(no checksum) stay readable.

kind 1 ``passphrase``: params = salt 16 B | time cost u32 | memory KiB u32 | parallelism u8;
    KEK = Argon2id(passphrase, salt, params). Parameters outside the caps in
    :mod:`vault.crypto.kdf` are refused before any memory is allocated.
kind 2 ``owner``: params empty; KEK = HKDF(vault owner key, salt=slot id, "mlvault/slot/owner/v1").

The wrapped secret is sealed with AES-256-GCM under HKDF(KEK, salt=slot id,
"mlvault/keyslot/v1"); the whole header is the AAD, so the vault, ring, slot and KDF
parameters cannot be swapped without detection. Adding or removing a slot rewrites only
that slot, never data.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from vault.crypto import aead
from vault.crypto.kdf import SALT_SIZE, KdfParams
from vault.errors import IntegrityError
from vault.formats import ALTERED

MAGIC = b"MLVS"
VERSION = 2  # what encode() writes
VERSIONS = (1, 2)  # what decode() reads
CHECKSUM_SIZE = 16
KIND_PASSPHRASE = 1
KIND_OWNER = 2
INFO = b"mlvault/keyslot/v1"
OWNER_INFO = b"mlvault/slot/owner/v1"
PREFIX = struct.Struct(">4sBB16s16s16sH")
PASSPHRASE_PARAMS = struct.Struct(">16sIIB")
TAIL = struct.Struct(">12sI")
MAX_PARAMS = 256
MAX_SECRET = 64 * 1024


@dataclass(frozen=True)
class KeySlot:
    """A parsed key slot; ``kdf`` and ``salt`` are set for passphrase slots."""

    kind: int
    vault_id: bytes
    ring_id: bytes
    slot_id: bytes
    kdf: KdfParams | None
    salt: bytes | None
    aad: bytes
    nonce: bytes
    ciphertext: bytes
    version: int = VERSION


def encode(
    kind: int,
    vault_id: bytes,
    ring_id: bytes,
    slot_id: bytes,
    kek: bytes,
    secret: bytes,
    *,
    kdf: KdfParams | None = None,
    salt: bytes | None = None,
) -> bytes:
    """Wrap ``secret`` under ``kek`` as a key slot."""
    return _encode_from_parts(
        kind, vault_id, ring_id, slot_id, kek, secret, kdf=kdf, salt=salt, nonce=aead.new_nonce()
    )


def _encode_from_parts(
    kind: int,
    vault_id: bytes,
    ring_id: bytes,
    slot_id: bytes,
    kek: bytes,
    secret: bytes,
    *,
    kdf: KdfParams | None = None,
    salt: bytes | None = None,
    nonce: bytes,
    version: int = VERSION,
) -> bytes:
    """:func:`encode` with the nonce (and format version) given: the seam for known-answer vectors."""
    if len(nonce) != aead.NONCE_SIZE:
        raise ValueError("a key slot nonce is 12 bytes")
    if version not in VERSIONS:
        raise ValueError(f"unknown key slot format version {version}")
    if kind == KIND_PASSPHRASE:
        if kdf is None or salt is None or len(salt) != SALT_SIZE:
            raise ValueError("passphrase slots need KDF parameters and a 16-byte salt")
        params = PASSPHRASE_PARAMS.pack(salt, kdf.time_cost, kdf.memory_kib, kdf.parallelism)
    elif kind == KIND_OWNER:
        params = b""
    else:
        raise ValueError(f"unknown slot kind {kind}")
    aad = PREFIX.pack(MAGIC, version, kind, vault_id, ring_id, slot_id, len(params)) + params
    aad += TAIL.pack(nonce, len(secret) + aead.TAG_SIZE)
    key = aead.derive_key(kek, slot_id, INFO)
    body = aad + aead.seal(key, nonce, secret, aad)
    return body + checksum(body) if version >= 2 else body


def checksum(body: bytes) -> bytes:
    """The version 2 checksum of ``body`` (everything before it): truncated SHA-256, not a MAC."""
    return hashlib.sha256(body).digest()[:CHECKSUM_SIZE]


def decode(data: bytes) -> KeySlot:
    """Parse a key slot without opening it; IntegrityError if it is malformed or damaged."""
    if len(data) < PREFIX.size:
        raise IntegrityError("key slot truncated")
    magic, version, kind, vault_id, ring_id, slot_id, params_len = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not a key slot (bad magic)")
    if version not in VERSIONS:
        raise IntegrityError(
            f"key slot format version {version} is not one this vault's format writes{ALTERED}"
        )
    if version >= 2:
        # Checked before any field is believed: a damaged slot is reported as damaged.
        if len(data) < PREFIX.size + CHECKSUM_SIZE:
            raise IntegrityError("key slot truncated")
        data, stored = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
        if not hmac.compare_digest(stored, checksum(data)):
            raise IntegrityError("key slot damaged: its checksum does not match")
    if params_len > MAX_PARAMS:
        raise IntegrityError("key slot parameters too long")
    pos = PREFIX.size
    params = data[pos : pos + params_len]
    if len(params) != params_len:
        raise IntegrityError("key slot truncated")
    kdf = salt = None
    if kind == KIND_PASSPHRASE:
        if params_len != PASSPHRASE_PARAMS.size:
            raise IntegrityError("passphrase key slot parameters malformed")
        salt, time_cost, memory_kib, parallelism = PASSPHRASE_PARAMS.unpack(params)
        kdf = KdfParams(time_cost, memory_kib, parallelism).check()
    elif kind == KIND_OWNER:
        if params_len != 0:
            raise IntegrityError("owner key slot parameters malformed")
    else:
        raise IntegrityError(f"key slot kind {kind} is not one this vault's format writes{ALTERED}")
    pos += params_len
    if len(data) < pos + TAIL.size:
        raise IntegrityError("key slot truncated")
    nonce, ct_len = TAIL.unpack_from(data, pos)
    pos += TAIL.size
    if not aead.TAG_SIZE <= ct_len <= MAX_SECRET + aead.TAG_SIZE or len(data) != pos + ct_len:
        raise IntegrityError("key slot length out of range")
    return KeySlot(kind, vault_id, ring_id, slot_id, kdf, salt, data[:pos], nonce, data[pos:], version)


def unwrap(slot: KeySlot, kek: bytes) -> bytes:
    """Open ``slot`` with ``kek``; DecryptionError if the KEK is wrong or the slot was altered."""
    key = aead.derive_key(kek, slot.slot_id, INFO)
    return aead.open_sealed(key, slot.nonce, slot.ciphertext, slot.aad)
