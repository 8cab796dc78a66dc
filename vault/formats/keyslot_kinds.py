"""The parameters of the x25519 and aws-kms key slot kinds (slot format version 2 only).

:mod:`vault.formats.keyslot` owns the slot envelope; this module owns what the two
public-key and KMS kinds keep in its ``params`` field, and nothing else. Both layouts are
exact: ``decode`` refuses a params field whose declared lengths do not add up to its size,
and every length is checked against its cap before anything is sliced. The params are part
of the slot header, hence of the AEAD associated data: rewriting any of them (and the
checksum) still fails the open.

kind 3 ``x25519``: params = ephemeral public key 32 B | recipient fingerprint 32 B
    (SHA-256 of the recipient's raw X25519 public key; see :mod:`vault.crypto.recipient`).
kind 4 ``aws-kms``: params = key id length u16 | key id (UTF-8, no control characters,
    1..2048 B) | blob length u16 | encrypted data key (1..6144 B): the CiphertextBlob of
    KMS GenerateDataKey(KeySpec=AES_256, EncryptionContext=:func:`encryption_context`).
    The decrypted data key is the slot's KEK. The context names the vault, keyring and slot,
    so KMS refuses to decrypt a blob copied into another vault, keyring or slot.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vault.crypto.recipient import FINGERPRINT_SIZE, PUBLIC_KEY_SIZE
from vault.errors import IntegrityError

MAX_KMS_KEY_ID = 2048  # KMS KeyId: a key id, ARN, alias name or alias ARN
MAX_KMS_BLOB = 6144  # KMS CiphertextBlob
RECIPIENT_PARAMS_SIZE = PUBLIC_KEY_SIZE + FINGERPRINT_SIZE
MAX_KMS_PARAMS = 2 + MAX_KMS_KEY_ID + 2 + MAX_KMS_BLOB
_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class RecipientParams:
    """An x25519 slot's params: the sender's ephemeral public key and the recipient's fingerprint."""

    ephemeral_pub: bytes
    fingerprint: bytes

    def encode(self) -> bytes:
        """The params bytes; ValueError if a field has the wrong size."""
        if len(self.ephemeral_pub) != PUBLIC_KEY_SIZE or len(self.fingerprint) != FINGERPRINT_SIZE:
            raise ValueError("x25519 slot params are a 32-byte key and a 32-byte fingerprint")
        return self.ephemeral_pub + self.fingerprint

    @classmethod
    def decode(cls, params: bytes) -> RecipientParams:
        """Parse x25519 slot params; IntegrityError if malformed."""
        if len(params) != RECIPIENT_PARAMS_SIZE:
            raise IntegrityError("x25519 key slot parameters malformed")
        return cls(params[:PUBLIC_KEY_SIZE], params[PUBLIC_KEY_SIZE:])


@dataclass(frozen=True)
class KmsParams:
    """An aws-kms slot's params: which KMS key, and the data key it encrypted."""

    key_id: str
    blob: bytes

    def encode(self) -> bytes:
        """The params bytes; ValueError if a field is empty, too long or not a clean key id."""
        key_id = self.key_id.encode("utf-8")
        if not 0 < len(key_id) <= MAX_KMS_KEY_ID or not _printable(self.key_id):
            raise ValueError(f"a KMS key id is 1..{MAX_KMS_KEY_ID} bytes of printable UTF-8")
        if not 0 < len(self.blob) <= MAX_KMS_BLOB:
            raise ValueError(f"a KMS ciphertext blob is 1..{MAX_KMS_BLOB} bytes")
        return _U16.pack(len(key_id)) + key_id + _U16.pack(len(self.blob)) + self.blob

    @classmethod
    def decode(cls, params: bytes) -> KmsParams:
        """Parse aws-kms slot params; IntegrityError if malformed or out of range."""
        malformed = IntegrityError("aws-kms key slot parameters malformed")
        if not _U16.size < len(params) <= MAX_KMS_PARAMS:
            raise malformed
        (id_len,) = _U16.unpack_from(params)
        blob_at = _U16.size + id_len + _U16.size
        if not 0 < id_len <= MAX_KMS_KEY_ID or len(params) < blob_at:
            raise malformed
        (blob_len,) = _U16.unpack_from(params, blob_at - _U16.size)
        if not 0 < blob_len <= MAX_KMS_BLOB or len(params) != blob_at + blob_len:
            raise malformed
        try:
            key_id = params[_U16.size : _U16.size + id_len].decode("utf-8")
        except UnicodeDecodeError:
            raise malformed from None
        if not _printable(key_id):
            raise malformed
        return cls(key_id, params[blob_at:])


def encryption_context(vault_id: bytes, ring_id: bytes, slot_id: bytes) -> dict[str, str]:
    """The KMS EncryptionContext that binds a data key to one vault, keyring and slot."""
    return {
        "mlvault:vault": vault_id.hex(),
        "mlvault:keyring": ring_id.hex(),
        "mlvault:slot": slot_id.hex(),
    }


def _printable(text: str) -> bool:
    # A key id is shown by `keys ls`: no terminal escapes, newlines or other controls.
    return text.isprintable()
