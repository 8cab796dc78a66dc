"""AES-256-GCM with per-object keys derived by HKDF-SHA256.

Every encrypted object in mlvault uses the same recipe: a 32-byte input key (a DEK or a
key-encryption key), an HKDF salt that is the object's own id, and an ``info`` label that
names the object kind. Deriving a fresh key per object keeps the random 96-bit nonces far
from the GCM birthday bound however much data one DEK protects, and binds each ciphertext
to its id. Failures are opaque: one DecryptionError, no detail.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import DecryptionError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def derive_key(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256(ikm, salt, info) → 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(ikm)


def new_nonce() -> bytes:
    """A fresh random 96-bit nonce."""
    return os.urandom(NONCE_SIZE)


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate; returns ciphertext with the 16-byte tag appended."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt, or raise DecryptionError."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError() from exc
