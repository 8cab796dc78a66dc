"""The vault's ``owner`` identity: a principal whose signing key is the root admin key of the policies.

``init`` generates it (X25519 + ECDSA P-256, like :mod:`vault.clientstate.identities`) and stores its
private part sealed under the owner key, so whoever opens the owner key — passphrase, KMS, recovery
identity — can load it and sign as the owner; a passphrase-only vault needs no identity setup.

**Where.** ``owner-identity/<id>`` (:func:`vault.layout.owner_identity_key`), where the id is
HKDF(owner key, salt = vault id, info "mlvault/owner-identity/name/v1")[:16]: one name per owner key,
so a reader holding the owner key does one GET (no listing), two processes creating it at once meet
on the same write-once name (the loser loads the winner's), and an object under any other name — a
leftover of a killed rotation, or one planted by a storage writer — is never read.

**Format** (big-endian; the header is the AAD)::

    magic "MLVO" | version u8 = 1 | suite u8 = 1 | reserved u16 = 0 | vault id 16 | object id 16
    | nonce 12 | ciphertext length u32 (16 + 32 + 64 .. 16 + 32 + 512) | AES-256-GCM ciphertext
    plaintext = X25519 raw private key 32 ‖ PKCS#8 DER of the P-256 private key
    key = HKDF-SHA256(owner key, salt = object id, info "mlvault/owner-identity/v1")

An object that does not decode, names another vault or id, or does not authenticate under the owner
key is ``IntegrityError`` (exit 5): only the owner key can have written that name.

**Pins.** The owner identity's signing fingerprint is the vault's root admin key: the initializing
client pins it for the trust policy and the access policy (:func:`pin_root_admin`), and any client
that opens the owner key (its owner-key pin checked by :mod:`vault.keys.pins`) adds it to its pins
from this sealed object, instead of trusting on first use whatever key signed the catalog's policy.
Pins are only ever added here, never replaced.

**Rotation.** :func:`reseal` writes the same identity under a new owner key
(:mod:`vault.keys.owner_rotation`), and :func:`sweep` deletes every other owner-identity object.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault import layout
from vault.clientstate.identities import Identity, PublicIdentity
from vault.crypto import aead
from vault.errors import AuthenticationError, DecryptionError, IntegrityError, NotFoundError
from vault.formats import ALTERED
from vault.signing import keys as signing_keys
from vault.storage.base import ObjectExistsError

if TYPE_CHECKING:
    from vault.clientstate.pins import TrustPins
    from vault.keycache import KeyCache
    from vault.signing.signers import LocalSigner, Signer
    from vault.storage import Backend

OWNER_NAME = "owner"
MAGIC = b"MLVO"
VERSION = 1
SUITE_AES256GCM_HKDF = 1
INFO = b"mlvault/owner-identity/v1"
NAME_INFO = b"mlvault/owner-identity/name/v1"
HEADER = struct.Struct(">4sBBH16s16s12sI")
_X25519_LEN = 32
MIN_SECRET = _X25519_LEN + 64
MAX_SECRET = _X25519_LEN + 512
MAX_SIZE = HEADER.size + MAX_SECRET + aead.TAG_SIZE


def object_id(vault_id: bytes, owner_key: bytes) -> bytes:
    """The 16-byte id naming the owner identity sealed under ``owner_key``."""
    return aead.derive_key(owner_key, vault_id, NAME_INFO)[:16]


def storage_key(vault_id: bytes, owner_key: bytes) -> str:
    """Where the owner identity sealed under ``owner_key`` lives."""
    return layout.owner_identity_key(object_id(vault_id, owner_key).hex())


def generate() -> Identity:
    """A fresh owner identity."""
    x_key = X25519PrivateKey.generate()
    return _identity(x_key, signing_keys.generate_private_key())


def encode_secret(identity: Identity) -> bytes:
    """The plaintext of the sealed object: X25519 raw private key ‖ PKCS#8 DER of the P-256 key."""
    der = identity.ecdsa_private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return identity.x25519_private.private_bytes_raw() + der


def decode_secret(secret: bytes) -> Identity:
    """The identity a plaintext holds; ``IntegrityError`` if it is not one."""
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise IntegrityError("the owner identity has a secret of the wrong length" + ALTERED)
    try:
        x_key = X25519PrivateKey.from_private_bytes(secret[:_X25519_LEN])
        e_key = serialization.load_der_private_key(secret[_X25519_LEN:], password=None)
    except (ValueError, TypeError) as exc:
        raise IntegrityError("the owner identity holds a corrupt private key" + ALTERED) from exc
    if not isinstance(e_key, ec.EllipticCurvePrivateKey) or not isinstance(e_key.curve, ec.SECP256R1):
        raise IntegrityError("the owner identity does not hold an ECDSA P-256 key" + ALTERED)
    return _identity(x_key, e_key)


def seal(vault_id: bytes, owner_key: bytes, identity: Identity) -> bytes:
    """The sealed object for ``identity`` under ``owner_key``."""
    return _seal_from_parts(vault_id, owner_key, encode_secret(identity), nonce=aead.new_nonce())


def _seal_from_parts(vault_id: bytes, owner_key: bytes, secret: bytes, *, nonce: bytes) -> bytes:
    """:func:`seal` with the plaintext and nonce given (known-answer vectors; never for storage)."""
    if len(vault_id) != 16 or len(nonce) != aead.NONCE_SIZE or not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ValueError("bad vault id, nonce or secret length")
    oid = object_id(vault_id, owner_key)
    ct_len = len(secret) + aead.TAG_SIZE
    header = HEADER.pack(MAGIC, VERSION, SUITE_AES256GCM_HKDF, 0, vault_id, oid, nonce, ct_len)
    return header + aead.seal(aead.derive_key(owner_key, oid, INFO), nonce, secret, header)


def open_object(data: bytes, vault_id: bytes, owner_key: bytes) -> Identity:
    """The identity in a sealed object read from :func:`storage_key`; ``IntegrityError`` otherwise."""
    if len(data) < HEADER.size:
        raise IntegrityError("the owner identity object is truncated" + ALTERED)
    magic, version, suite, reserved, vid, oid, nonce, ct_len = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or suite != SUITE_AES256GCM_HKDF or reserved:
        raise IntegrityError("the owner identity object has an unknown magic, version or suite" + ALTERED)
    if not MIN_SECRET + aead.TAG_SIZE <= ct_len <= MAX_SECRET + aead.TAG_SIZE:
        raise IntegrityError("the owner identity object has an impossible length" + ALTERED)
    if len(data) != HEADER.size + ct_len:
        raise IntegrityError("the owner identity object is truncated or has trailing data" + ALTERED)
    if vid != vault_id:
        raise IntegrityError("the owner identity object belongs to another vault" + ALTERED)
    if oid != object_id(vault_id, owner_key):
        raise IntegrityError("the owner identity object is stored under another name" + ALTERED)
    header = data[: HEADER.size]
    try:
        secret = aead.open_sealed(aead.derive_key(owner_key, oid, INFO), nonce, data[HEADER.size :], header)
    except DecryptionError as exc:
        raise IntegrityError("the owner identity object does not open under the owner key" + ALTERED) from exc
    return decode_secret(secret)


def load(backend: Backend, vault_id: bytes, owner_key: bytes) -> Identity | None:
    """The owner identity sealed under ``owner_key``, or None if the vault has none (made before it)."""
    try:
        data = backend.get(storage_key(vault_id, owner_key), max_size=MAX_SIZE)
    except NotFoundError:
        return None
    return open_object(data, vault_id, owner_key)


def create(backend: Backend, vault_id: bytes, owner_key: bytes) -> Identity:
    """Store a new owner identity under ``owner_key``; if one is already there (a race), return it."""
    identity = generate()
    try:
        backend.put(storage_key(vault_id, owner_key), seal(vault_id, owner_key, identity))
    except ObjectExistsError:
        existing = load(backend, vault_id, owner_key)
        if existing is None:  # deleted between the two calls: nothing sane to return
            raise
        return existing
    return identity


def reseal(backend: Backend, vault_id: bytes, identity: Identity, new_owner_key: bytes) -> None:
    """Store ``identity`` under ``new_owner_key`` (an owner-key rotation; a re-run finds it there)."""
    with contextlib.suppress(ObjectExistsError):
        backend.put(storage_key(vault_id, new_owner_key), seal(vault_id, new_owner_key, identity))
    found = load(backend, vault_id, new_owner_key)
    if found is None or found.public != identity.public:
        raise IntegrityError("the owner identity under the new owner key is not the vault's owner identity")


def sweep(backend: Backend, vault_id: bytes, owner_key: bytes) -> list[str]:
    """Delete every owner-identity object except the one under ``owner_key``; returns the keys deleted."""
    keep = storage_key(vault_id, owner_key)
    gone = []
    for key in sorted(backend.list(layout.OWNER_IDENTITY_PREFIX)):
        if key != keep and layout.parse_owner_identity_key(key) is not None:
            with contextlib.suppress(NotFoundError):
                backend.delete(key)
            gone.append(key)
    return gone


def owner_identity(keys: KeyCache, backend: Backend, *, create_missing: bool = True) -> Identity:
    """The owner identity of an open vault, loaded with the owner key (unlocked now if need be).

    A vault made before owner identities gets one here (``create_missing``): the first command that
    needs the owner as a signer makes it. ``NotFoundError`` when it is missing and not to be made.
    """
    try:
        owner_key = keys.owner_key()
    except AuthenticationError as exc:
        raise AuthenticationError(f"signing as the vault owner needs the owner key: {exc}") from exc
    found = load(backend, keys.vault_id, owner_key)
    if found is not None:
        return found
    if not create_missing:
        raise NotFoundError("this vault has no owner identity yet (made before owner identities)")
    return create(backend, keys.vault_id, owner_key)


def owner_signer(keys: KeyCache, backend: Backend) -> LocalSigner:
    """A signer with the owner identity's signing key (the default admin signer)."""
    from vault.signing.signers import LocalSigner

    return LocalSigner(owner_identity(keys, backend).ecdsa_private)


def pin_root_admin(admin_pins: Sequence[TrustPins], vault_id: bytes, identity: Identity) -> bool:
    """Add the owner identity's signing key to each of ``admin_pins`` (the trust-policy and the
    access-policy admin pins) for ``vault_id``; True if any was new."""
    fingerprint = identity.public.signing_fingerprint
    added = False
    for pins in admin_pins:
        if fingerprint not in pins.admins(vault_id.hex()):
            pins.pin(vault_id.hex(), fingerprint)
            added = True
    return added


def _identity(x_key: X25519PrivateKey, e_key: ec.EllipticCurvePrivateKey) -> Identity:
    der = e_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = PublicIdentity(OWNER_NAME, x_key.public_key().public_bytes_raw(), der)
    return Identity(OWNER_NAME, x_key, e_key, public)


def policy_signer(
    keys: KeyCache,
    backend: Backend,
    pins: TrustPins,
    explicit: Signer | None,
    *,
    policy_exists: bool,
    fallback: TrustPins | None = None,
) -> tuple[Signer, str | None]:
    """The key to sign a policy change with, and the fingerprint this call pinned (if any).

    Without ``explicit`` (no ``--admin-key``) that is the owner identity. A key named explicitly is
    used as given, with one addition: while the vault has no such policy yet and this client pinned
    only other keys (``init`` pins the owner), the owner-key holder may name another admin key — the
    owner key is opened to prove it, then the key is pinned beside the owner. Once a policy exists,
    only pinned keys sign (the policy code refuses the rest).
    """
    if explicit is None:
        return owner_signer(keys, backend), None
    vault_id = keys.vault_id.hex()
    fingerprint = explicit.fingerprint()
    admins = pins.admins(vault_id) or (fallback.admins(vault_id) if fallback is not None else ())
    if not admins or fingerprint in admins or policy_exists or pins.policy_serial(vault_id):
        return explicit, None
    try:
        keys.owner_key()
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"admin key {fingerprint[:16]} is not pinned for this vault; naming a new admin key for the "
            f"first policy needs the vault owner key ({exc})"
        ) from exc
    if fingerprint not in pins.admins(vault_id):
        for admin in admins:  # keep the fallback's keys (the owner) beside the new one
            pins.pin(vault_id, admin)
        pins.pin(vault_id, fingerprint)
    return explicit, fingerprint
