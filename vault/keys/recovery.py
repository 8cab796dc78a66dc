"""Recovery identities the vault generates and keeps, sealed under the owner key.

``keys add-recovery --generate`` makes an identity (X25519 + ECDSA P-256, like the owner identity),
wraps the owner key to its X25519 key in an x25519 slot on the owner ring (what ``keys add-recovery
FILE.pub`` does with an identity made elsewhere), and stores its private part sealed under the owner
key, so whoever opens the owner key — the passphrase above all — can take it back out:
``keys export-recovery`` writes it to an identity file for offline safekeeping, and ``backup restore``
without ``--recovery-key`` opens a snapshot with it (the target holds this object verbatim).

**Where.** ``recovery-identity/<slot id>`` (:func:`vault.layout.recovery_identity_key`): one object per
generated recovery slot, named by that slot's id, so the slot and its private part are found from
each other without a catalog.

**Format.** The owner identity's (:mod:`vault.keys.owner_identity`), with another magic and HKDF info
so the two can never be taken for each other (an object moved to the other's name is refused)::

    magic "MLVR" | version u8 = 1 | suite u8 = 1 | reserved u16 = 0 | vault id 16 | slot id 16
    | nonce 12 | ciphertext length u32 | AES-256-GCM ciphertext (the header is the AAD)
    plaintext = X25519 raw private key 32 ‖ PKCS#8 DER of the P-256 private key
    key = HKDF-SHA256(owner key, salt = slot id, info "mlvault/recovery-identity/v1")

Anything that does not decode, names another vault or slot, or does not authenticate is
``IntegrityError`` (exit 5). Owner-key rotation does not reseal these objects yet (see docs/design.md):
after a rotation, export the recovery identity again before relying on passphrase-only restore.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vault import layout
from vault.clientstate.identities import Identity, PublicIdentity
from vault.crypto import aead
from vault.errors import DecryptionError, DestinationExistsError, IntegrityError, NotFoundError, UsageError
from vault.formats import ALTERED
from vault.keys import owner_identity

if TYPE_CHECKING:
    from vault.storage import Backend

RECOVERY_NAME = "recovery"
MAGIC = b"MLVR"
VERSION = 1
SUITE_AES256GCM_HKDF = 1
INFO = b"mlvault/recovery-identity/v1"
HEADER = owner_identity.HEADER
MAX_SIZE = owner_identity.MAX_SIZE
_MIN_CT = owner_identity.MIN_SECRET + aead.TAG_SIZE
_MAX_CT = owner_identity.MAX_SECRET + aead.TAG_SIZE


def generate(name: str = RECOVERY_NAME) -> Identity:
    """A fresh recovery identity called ``name``."""
    return renamed(owner_identity.generate(), name)


def renamed(identity: Identity, name: str) -> Identity:
    """``identity`` under another name (the sealed form does not keep one)."""
    public = PublicIdentity(name, identity.public.x25519_public, identity.public.ecdsa_public_der)
    return Identity(name, identity.x25519_private, identity.ecdsa_private, public)


def seal(vault_id: bytes, owner_key: bytes, slot_id: str, identity: Identity) -> bytes:
    """The sealed object for ``identity``, the recovery identity of owner-ring slot ``slot_id``."""
    secret = owner_identity.encode_secret(identity)
    return _seal_from_parts(vault_id, owner_key, bytes.fromhex(slot_id), secret, nonce=aead.new_nonce())


def _seal_from_parts(
    vault_id: bytes, owner_key: bytes, slot_id: bytes, secret: bytes, *, nonce: bytes
) -> bytes:
    """:func:`seal` with the plaintext and nonce given (known-answer vectors; never for storage)."""
    if len(vault_id) != 16 or len(slot_id) != 16 or len(nonce) != aead.NONCE_SIZE:
        raise ValueError("bad vault id, slot id or nonce length")
    if not _MIN_CT <= len(secret) + aead.TAG_SIZE <= _MAX_CT:
        raise ValueError("bad secret length")
    ct_len = len(secret) + aead.TAG_SIZE
    header = HEADER.pack(MAGIC, VERSION, SUITE_AES256GCM_HKDF, 0, vault_id, slot_id, nonce, ct_len)
    return header + aead.seal(aead.derive_key(owner_key, slot_id, INFO), nonce, secret, header)


def open_object(data: bytes, vault_id: bytes, owner_key: bytes, slot_id: str) -> Identity:
    """The identity in the object at :func:`vault.layout.recovery_identity_key`; else ``IntegrityError``."""
    what = f"the recovery identity object of slot {slot_id}"
    if len(data) < HEADER.size:
        raise IntegrityError(f"{what} is truncated" + ALTERED)
    magic, version, suite, reserved, vid, sid, nonce, ct_len = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or suite != SUITE_AES256GCM_HKDF or reserved:
        raise IntegrityError(f"{what} has an unknown magic, version or suite" + ALTERED)
    if not _MIN_CT <= ct_len <= _MAX_CT:
        raise IntegrityError(f"{what} has an impossible length" + ALTERED)
    if len(data) != HEADER.size + ct_len:
        raise IntegrityError(f"{what} is truncated or has trailing data" + ALTERED)
    if vid != vault_id:
        raise IntegrityError(f"{what} belongs to another vault" + ALTERED)
    if sid.hex() != slot_id:
        raise IntegrityError(f"{what} is stored under another slot's name" + ALTERED)
    try:
        secret = aead.open_sealed(
            aead.derive_key(owner_key, sid, INFO), nonce, data[HEADER.size :], data[: HEADER.size]
        )
    except DecryptionError as exc:
        raise IntegrityError(f"{what} does not open under the owner key" + ALTERED) from exc
    return renamed(owner_identity.decode_secret(secret), RECOVERY_NAME)


def store(backend: Backend, vault_id: bytes, owner_key: bytes, slot_id: str, identity: Identity) -> None:
    """Write the sealed recovery identity of slot ``slot_id`` (write-once)."""
    backend.put(layout.recovery_identity_key(slot_id), seal(vault_id, owner_key, slot_id, identity))


def load(backend: Backend, vault_id: bytes, owner_key: bytes, slot_id: str) -> Identity:
    """The recovery identity of slot ``slot_id``; ``NotFoundError`` if the vault keeps none for it."""
    try:
        data = backend.get(layout.recovery_identity_key(slot_id), max_size=MAX_SIZE)
    except NotFoundError:
        raise NotFoundError(
            f"the vault keeps no recovery identity for slot {slot_id} (only `keys add-recovery --generate` "
            "makes one; a recovery identity made elsewhere is exported where it was made)"
        ) from None
    return open_object(data, vault_id, owner_key, slot_id)


def kept_slots(backend: Backend) -> list[str]:
    """The slot ids of every recovery identity kept in ``backend``, sorted."""
    found = (layout.parse_recovery_identity_key(k) for k in backend.list(layout.RECOVERY_IDENTITY_PREFIX))
    return sorted(s for s in found if s is not None)


def choose(backend: Backend, slot_id: str | None) -> str:
    """``slot_id`` checked, or the only kept recovery identity's slot when it is None."""
    if slot_id is not None:
        if not layout.is_id(slot_id):
            raise UsageError(
                f"invalid slot id {slot_id!r}: expected 32 lower-case hex digits (see `keys ls`)"
            )
        return slot_id
    kept = [s for s in kept_slots(backend) if backend.exists(layout.slot_key(layout.OWNER_RING, s))]
    if not kept:
        raise NotFoundError(
            "this vault keeps no recovery identity; make one with `mlvault keys add-recovery --generate`"
        )
    if len(kept) > 1:
        raise UsageError(f"this vault keeps {len(kept)} recovery identities; name a slot: {', '.join(kept)}")
    return kept[0]


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path``, mode 0600; ``DestinationExistsError`` if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise DestinationExistsError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
