"""X25519 recipients: a key-encryption key shared with the holder of a public key.

The design is age's X25519 recipient stanza (c2sp.org/age). The sender makes a fresh
ephemeral X25519 key pair, computes the shared secret with the recipient's public key and
derives the KEK as HKDF-SHA256(ikm = shared secret, salt = ephemeral public key ‖ recipient
public key, info = ``mlvault/slot/x25519/v1``). Salting with both public keys binds the KEK to
this exact pair, so an ephemeral share cannot be replayed against another recipient. The
ephemeral private key is dropped as soon as the KEK exists; only its public half is stored.

An all-zero shared secret means one side is a low-order point: the result would not depend on
the other key at all, so anyone could compute the KEK. pyca/cryptography refuses to compute it;
both that refusal and an all-zero result (should a backend ever return one) become mlvault
errors: IntegrityError when wrapping to a hostile recipient key, DecryptionError (opaque, like
every failed open) when unwrapping a hostile stored share.

A recipient's fingerprint is SHA-256 of its raw 32-byte public key: cheap to compare, so an
unlocker skips every slot that was not made for it without running a Diffie-Hellman.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vault.crypto import aead
from vault.errors import DecryptionError, IntegrityError

PUBLIC_KEY_SIZE = 32
FINGERPRINT_SIZE = 32
INFO = b"mlvault/slot/x25519/v1"
_ALL_ZERO = bytes(32)


def fingerprint(public_key: bytes) -> bytes:
    """SHA-256 of a raw 32-byte X25519 public key."""
    _check_size(public_key)
    return hashlib.sha256(public_key).digest()


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``private_key``."""
    return private_key.public_key().public_bytes_raw()


def wrap_to_recipient(recipient_pub: bytes) -> tuple[bytes, bytes]:
    """A fresh (ephemeral public key, KEK) for ``recipient_pub``; IntegrityError on a low-order key."""
    return _wrap_from_parts(recipient_pub, X25519PrivateKey.generate())


def _wrap_from_parts(recipient_pub: bytes, ephemeral_private: X25519PrivateKey) -> tuple[bytes, bytes]:
    """:func:`wrap_to_recipient` with the ephemeral key given: the seam for known-answer vectors."""
    _check_size(recipient_pub)
    shared = _exchange(ephemeral_private, recipient_pub)
    if shared is None:
        raise IntegrityError("the recipient public key is a low-order point: nothing can be wrapped to it")
    ephemeral_pub = public_bytes(ephemeral_private)
    return ephemeral_pub, _kek(shared, ephemeral_pub, recipient_pub)


def recipient_kek(identity_private: X25519PrivateKey, ephemeral_pub: bytes) -> bytes:
    """The KEK a sender derived for this identity; DecryptionError on a low-order share."""
    _check_size(ephemeral_pub)
    shared = _exchange(identity_private, ephemeral_pub)
    if shared is None:
        raise DecryptionError()
    return _kek(shared, ephemeral_pub, public_bytes(identity_private))


def _exchange(private_key: X25519PrivateKey, peer_pub: bytes) -> bytes | None:
    """X25519, or None when the shared secret is the all-zero value."""
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_pub))
    except ValueError:
        return None  # pyca/cryptography refuses an all-zero result
    if hmac.compare_digest(shared, _ALL_ZERO):
        return None
    return shared


def _kek(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes) -> bytes:
    return aead.derive_key(shared, ephemeral_pub + recipient_pub, INFO)


def _check_size(public_key: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError("an X25519 public key is 32 bytes")
