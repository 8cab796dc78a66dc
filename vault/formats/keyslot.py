"""Key slots: one key-encryption key wrapping a secret, stored at ``keys/<ring>/<slot>``.

Layout (big-endian)::

    magic "MLVS" | version u8 = 1 | kind u8 | vault id 16 B | ring id 16 B | slot id 16 B
    | params length u16 | params | nonce 12 B | ciphertext length u32 | ciphertext

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

import struct
from dataclasses import dataclass

from vault.crypto import aead
from vault.crypto.kdf import SALT_SIZE, KdfParams
from vault.errors import IntegrityError
from vault.formats import ALTERED

MAGIC = b"MLVS"
VERSION = 1
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
) -> bytes:
    """:func:`encode` with the nonce given: the seam for known-answer vectors, never for storage."""
    if len(nonce) != aead.NONCE_SIZE:
        raise ValueError("a key slot nonce is 12 bytes")
    if kind == KIND_PASSPHRASE:
        if kdf is None or salt is None or len(salt) != SALT_SIZE:
            raise ValueError("passphrase slots need KDF parameters and a 16-byte salt")
        params = PASSPHRASE_PARAMS.pack(salt, kdf.time_cost, kdf.memory_kib, kdf.parallelism)
    elif kind == KIND_OWNER:
        params = b""
    else:
        raise ValueError(f"unknown slot kind {kind}")
    aad = PREFIX.pack(MAGIC, VERSION, kind, vault_id, ring_id, slot_id, len(params)) + params
    aad += TAIL.pack(nonce, len(secret) + aead.TAG_SIZE)
    key = aead.derive_key(kek, slot_id, INFO)
    return aad + aead.seal(key, nonce, secret, aad)


def decode(data: bytes) -> KeySlot:
    """Parse a key slot without opening it."""
    if len(data) < PREFIX.size:
        raise IntegrityError("key slot truncated")
    magic, version, kind, vault_id, ring_id, slot_id, params_len = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not a key slot (bad magic)")
    if version != VERSION:
        raise IntegrityError(
            f"key slot format version {version} is not one this vault's format writes{ALTERED}"
        )
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
    return KeySlot(kind, vault_id, ring_id, slot_id, kdf, salt, data[:pos], nonce, data[pos:])


def unwrap(slot: KeySlot, kek: bytes) -> bytes:
    """Open ``slot`` with ``kek``; DecryptionError if the KEK is wrong or the slot was altered."""
    key = aead.derive_key(kek, slot.slot_id, INFO)
    return aead.open_sealed(key, slot.nonce, slot.ciphertext, slot.aad)
