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
kind 3 ``x25519`` (version 2 only): params = ephemeral public key 32 B | recipient fingerprint
    32 B; KEK = the age-style recipient KEK of :mod:`vault.crypto.recipient`.
kind 4 ``aws-kms`` (version 2 only): params = key id length u16 | key id | blob length u16 |
    KMS-encrypted data key; KEK = that data key, decrypted by KMS under the EncryptionContext
    {vault, keyring, slot}. Both layouts are in :mod:`vault.formats.keyslot_kinds`.

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

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.crypto import aead, recipient
from vault.crypto.kdf import SALT_SIZE, KdfParams
from vault.errors import DecryptionError, IntegrityError
from vault.formats import ALTERED
from vault.formats.keyslot_kinds import (
    MAX_KMS_PARAMS,
    RECIPIENT_PARAMS_SIZE,
    KmsParams,
    RecipientParams,
    encryption_context,
)

MAGIC = b"MLVS"
VERSION = 2  # what encode() writes
VERSIONS = (1, 2)  # what decode() reads
CHECKSUM_SIZE = 16
KIND_PASSPHRASE = 1
KIND_OWNER = 2
KIND_X25519 = 3
KIND_AWS_KMS = 4
# The kinds each format version may hold, and the most params bytes each kind may declare.
KINDS = {1: (KIND_PASSPHRASE, KIND_OWNER), 2: (KIND_PASSPHRASE, KIND_OWNER, KIND_X25519, KIND_AWS_KMS)}
INFO = b"mlvault/keyslot/v1"
OWNER_INFO = b"mlvault/slot/owner/v1"
PREFIX = struct.Struct(">4sBB16s16s16sH")
PASSPHRASE_PARAMS = struct.Struct(">16sIIB")
TAIL = struct.Struct(">12sI")
MAX_SECRET = 64 * 1024
PARAMS_CAP = {
    KIND_PASSPHRASE: PASSPHRASE_PARAMS.size,
    KIND_OWNER: 0,
    KIND_X25519: RECIPIENT_PARAMS_SIZE,
    KIND_AWS_KMS: MAX_KMS_PARAMS,
}
MAX_PARAMS = max(PARAMS_CAP.values())
# The largest slot decode accepts: what a reader may fetch before decoding.
MAX_SLOT_SIZE = PREFIX.size + MAX_PARAMS + TAIL.size + MAX_SECRET + aead.TAG_SIZE + CHECKSUM_SIZE


@dataclass(frozen=True)
class KeySlot:
    """A parsed key slot; ``kdf`` and ``salt`` are set for passphrase slots, ``recipient`` for
    x25519 slots and ``kms`` for aws-kms slots."""

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
    recipient: RecipientParams | None = None
    kms: KmsParams | None = None


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
    recipient: RecipientParams | None = None,
    kms: KmsParams | None = None,
) -> bytes:
    """Wrap ``secret`` under ``kek`` as a key slot; the kind's params come as keywords."""
    return _encode_from_parts(
        kind,
        vault_id,
        ring_id,
        slot_id,
        kek,
        secret,
        kdf=kdf,
        salt=salt,
        recipient=recipient,
        kms=kms,
        nonce=aead.new_nonce(),
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
    recipient: RecipientParams | None = None,
    kms: KmsParams | None = None,
    nonce: bytes,
    version: int = VERSION,
) -> bytes:
    """:func:`encode` with the nonce (and format version) given: the seam for known-answer vectors."""
    if len(nonce) != aead.NONCE_SIZE:
        raise ValueError("a key slot nonce is 12 bytes")
    if version not in VERSIONS:
        raise ValueError(f"unknown key slot format version {version}")
    if kind not in KINDS[version]:
        raise ValueError(f"slot kind {kind} does not exist in slot format version {version}")
    if kind == KIND_PASSPHRASE:
        if kdf is None or salt is None or len(salt) != SALT_SIZE:
            raise ValueError("passphrase slots need KDF parameters and a 16-byte salt")
        params = PASSPHRASE_PARAMS.pack(salt, kdf.time_cost, kdf.memory_kib, kdf.parallelism)
    elif kind == KIND_X25519:
        if recipient is None:
            raise ValueError("x25519 slots need recipient params")
        params = recipient.encode()
    elif kind == KIND_AWS_KMS:
        if kms is None:
            raise ValueError("aws-kms slots need KMS params")
        params = kms.encode()
    else:
        params = b""
    if len(secret) > MAX_SECRET:
        raise ValueError(f"a key slot wraps at most {MAX_SECRET} bytes")
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
    if kind not in KINDS[version]:
        raise IntegrityError(f"key slot kind {kind} is not one this vault's format writes{ALTERED}")
    if params_len > PARAMS_CAP[kind]:
        raise IntegrityError("key slot parameters too long")
    pos = PREFIX.size
    params = data[pos : pos + params_len]
    if len(params) != params_len:
        raise IntegrityError("key slot truncated")
    kdf = salt = recipient_params = kms = None
    if kind == KIND_PASSPHRASE:
        if params_len != PASSPHRASE_PARAMS.size:
            raise IntegrityError("passphrase key slot parameters malformed")
        salt, time_cost, memory_kib, parallelism = PASSPHRASE_PARAMS.unpack(params)
        kdf = KdfParams(time_cost, memory_kib, parallelism).check()
    elif kind == KIND_OWNER:
        if params_len != 0:
            raise IntegrityError("owner key slot parameters malformed")
    elif kind == KIND_X25519:
        recipient_params = RecipientParams.decode(params)
    else:
        kms = KmsParams.decode(params)
    pos += params_len
    if len(data) < pos + TAIL.size:
        raise IntegrityError("key slot truncated")
    nonce, ct_len = TAIL.unpack_from(data, pos)
    pos += TAIL.size
    if not aead.TAG_SIZE <= ct_len <= MAX_SECRET + aead.TAG_SIZE or len(data) != pos + ct_len:
        raise IntegrityError("key slot length out of range")
    return KeySlot(
        kind,
        vault_id,
        ring_id,
        slot_id,
        kdf,
        salt,
        data[:pos],
        nonce,
        data[pos:],
        version,
        recipient_params,
        kms,
    )


def unwrap(slot: KeySlot, kek: bytes) -> bytes:
    """Open ``slot`` with ``kek``; DecryptionError if the KEK is wrong or the slot was altered."""
    key = aead.derive_key(kek, slot.slot_id, INFO)
    return aead.open_sealed(key, slot.nonce, slot.ciphertext, slot.aad)


# -- x25519: a secret wrapped to a recipient's public key ------------------------------------------


def encode_x25519(
    vault_id: bytes, ring_id: bytes, slot_id: bytes, recipient_pub: bytes, secret: bytes
) -> bytes:
    """Wrap ``secret`` to the raw X25519 public key ``recipient_pub``.

    IntegrityError if that key is a low-order point. Known-answer vectors build the same slot
    from :func:`vault.crypto.recipient._wrap_from_parts` and :func:`_encode_from_parts`.
    """
    ephemeral_pub, kek = recipient.wrap_to_recipient(recipient_pub)
    params = RecipientParams(ephemeral_pub, recipient.fingerprint(recipient_pub))
    return encode(KIND_X25519, vault_id, ring_id, slot_id, kek, secret, recipient=params)


def x25519_fingerprint(slot: KeySlot) -> bytes:
    """The fingerprint of the recipient an x25519 slot was made for."""
    return _recipient(slot).fingerprint


def open_x25519(slot: KeySlot, identity_private: X25519PrivateKey) -> bytes:
    """Open an x25519 slot with an identity's private key; DecryptionError if it is not for it."""
    params = _recipient(slot)
    if not hmac.compare_digest(
        params.fingerprint, recipient.fingerprint(recipient.public_bytes(identity_private))
    ):
        raise DecryptionError()
    return unwrap(slot, recipient.recipient_kek(identity_private, params.ephemeral_pub))


def _recipient(slot: KeySlot) -> RecipientParams:
    if slot.recipient is None:
        raise ValueError("not an x25519 key slot")
    return slot.recipient


# -- aws-kms: a secret wrapped by a data key that AWS KMS encrypted --------------------------------


def encode_kms(
    vault_id: bytes,
    ring_id: bytes,
    slot_id: bytes,
    key_id: str,
    data_key_blob: bytes,
    kek: bytes,
    secret: bytes,
) -> bytes:
    """Wrap ``secret`` under the plaintext KMS data key ``kek``, storing its KMS-encrypted blob.

    The blob must come from GenerateDataKey with :func:`kms_encryption_context_for` of the same
    vault, ring and slot ids, or KMS will refuse to decrypt it.
    """
    if len(kek) != aead.KEY_SIZE:
        raise ValueError("a KMS data key for a key slot is 32 bytes (KeySpec AES_256)")
    params = KmsParams(key_id, data_key_blob)
    return encode(KIND_AWS_KMS, vault_id, ring_id, slot_id, kek, secret, kms=params)


def kms_key_id(slot: KeySlot) -> str:
    """The KMS key an aws-kms slot pins: decrypt its blob with this KeyId and no other."""
    return _kms(slot).key_id


def kms_blob(slot: KeySlot) -> bytes:
    """The KMS-encrypted data key of an aws-kms slot."""
    return _kms(slot).blob


def kms_encryption_context(slot: KeySlot) -> dict[str, str]:
    """The EncryptionContext to decrypt an aws-kms slot's blob with: its vault, keyring and slot."""
    _kms(slot)
    return encryption_context(slot.vault_id, slot.ring_id, slot.slot_id)


def kms_encryption_context_for(vault_id: bytes, ring_id: bytes, slot_id: bytes) -> dict[str, str]:
    """The EncryptionContext to generate a new aws-kms slot's data key with."""
    return encryption_context(vault_id, ring_id, slot_id)


def _kms(slot: KeySlot) -> KmsParams:
    if slot.kms is None:
        raise ValueError("not an aws-kms key slot")
    return slot.kms
