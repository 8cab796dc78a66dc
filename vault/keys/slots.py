"""Every key slot of a ring, read from storage without trusting it; x25519 slots for identities.

:func:`scan_ring` reads ``keys/<ring>/*`` and returns one :class:`StoredSlot` per object. A slot
that does not decode (malformed, oversized, not a regular file, bad checksum, caps), belongs to
another vault or ring, is stored under another id, or is of a kind that ring never holds is
returned with its ``damage`` and never opened: anyone with storage access can plant slots.

An identity opens only the x25519 slots made for it: :func:`open_for_identity` compares the
stored recipient fingerprint (SHA-256 of the public key, in constant time) before any
Diffie-Hellman, so a ring with a thousand recipients costs one decode per slot and one X25519
exchange. At most :data:`MAX_IDENTITY_TRIES` slots claiming this identity's fingerprint are
tried, so planted ones cannot add up.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from vault import layout
from vault.crypto.keyring import Keyring, new_id
from vault.errors import ConfigurationError, DecryptionError, IntegrityError, NotFoundError
from vault.formats import keyring as keyring_format
from vault.formats import keyslot
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.clientstate.identities import Identity

T = TypeVar("T")
OWNER_RING_ID = bytes(16)  # the ring id field of every owner-ring slot
MAX_SLOT_SIZE = keyslot.MAX_SLOT_SIZE
MAX_IDENTITY_TRIES = 16
KIND_NAMES = {
    keyslot.KIND_PASSPHRASE: "passphrase",
    keyslot.KIND_OWNER: "owner",
    keyslot.KIND_X25519: "x25519",
    keyslot.KIND_AWS_KMS: "aws-kms",
}
# Which kinds each ring holds: the owner ring is opened by people and KMS, a keyring by the
# owner key or a recipient.
OWNER_RING_KINDS = (keyslot.KIND_PASSPHRASE, keyslot.KIND_X25519, keyslot.KIND_AWS_KMS)
KEYRING_KINDS = (keyslot.KIND_OWNER, keyslot.KIND_X25519)


@dataclass(frozen=True)
class StoredSlot:
    """One object under ``keys/<ring>/``: its parsed slot, or why it cannot be used."""

    ring: str
    slot_id: str
    slot: keyslot.KeySlot | None
    damage: str | None = None

    @property
    def kind(self) -> str | None:
        """passphrase, owner, x25519 or aws-kms; None for a damaged slot."""
        return None if self.slot is None else KIND_NAMES[self.slot.kind]

    @property
    def opens_owner(self) -> bool:
        """Whether this is a usable slot on the owner ring (it can open the owner key)."""
        return self.slot is not None and self.ring == layout.OWNER_RING


def ring_bytes(ring: str) -> bytes:
    """The 16-byte ring id field for ``ring`` (a keyring id in hex, or ``owner``)."""
    return OWNER_RING_ID if ring == layout.OWNER_RING else bytes.fromhex(ring)


def scan_ring(backend: Backend, vault_id: bytes, ring: str) -> list[StoredSlot]:
    """Every slot object of ``ring``, sorted by id; unusable ones carry their ``damage``."""
    found = []
    for key in sorted(backend.list(layout.slot_prefix(ring))):
        name = key.rsplit("/", 1)[-1]
        try:
            slot = keyslot.decode(backend.get(key, max_size=MAX_SLOT_SIZE))
        except NotFoundError:
            continue  # removed since the listing
        except (IntegrityError, ConfigurationError) as exc:
            found.append(StoredSlot(ring, name, None, str(exc)))
            continue
        damage = _misplaced(slot, vault_id, ring, name)
        found.append(StoredSlot(ring, name, None if damage else slot, damage))
    return found


def _misplaced(slot: keyslot.KeySlot, vault_id: bytes, ring: str, name: str) -> str | None:
    if slot.vault_id != vault_id:
        return "it belongs to another vault"
    if slot.slot_id.hex() != name:
        return "it is stored under another slot id"
    if slot.ring_id != ring_bytes(ring):
        return "it belongs to another keyring"
    if slot.kind not in (OWNER_RING_KINDS if ring == layout.OWNER_RING else KEYRING_KINDS):
        return f"a {KIND_NAMES[slot.kind]} slot does not belong on this ring"
    return None


def open_for_identity(
    stored: Iterable[StoredSlot], identity: Identity, accept: Callable[[bytes], T | None]
) -> tuple[str, T] | None:
    """(slot id, ``accept(secret)``) of the first x25519 slot made for ``identity`` whose secret
    opens and is accepted (``accept`` returns None for a secret of the wrong shape); else None."""
    fingerprint = bytes.fromhex(identity.public.fingerprint)
    tries = 0
    for item in stored:
        slot = item.slot
        if slot is None or slot.kind != keyslot.KIND_X25519:
            continue
        if not hmac.compare_digest(keyslot.x25519_fingerprint(slot), fingerprint):
            continue  # another recipient's: no Diffie-Hellman spent on it
        tries += 1
        if tries > MAX_IDENTITY_TRIES:
            return None
        try:
            value = accept(keyslot.open_x25519(slot, identity.x25519_private))
        except DecryptionError:
            continue  # damaged
        if value is not None:
            return item.slot_id, value
        # else: planted with our fingerprint, wrapping something that is not this ring's secret
    return None


def owner_key_from(secret: bytes) -> bytes | None:
    """``secret`` if it can be an owner key (32 bytes)."""
    return secret if len(secret) == 32 else None


def keyring_for(ring: str) -> Callable[[bytes], Keyring | None]:
    """An ``accept`` for :func:`open_for_identity`: the keyring a secret holds for ``ring``, or None."""

    def accept(secret: bytes) -> Keyring | None:
        try:
            return keyring_format.decode(secret, bytes.fromhex(ring))
        except IntegrityError:
            return None

    return accept


def write_x25519_slot(
    backend: Backend, vault_id: bytes, ring: str, recipient_pub: bytes, secret: bytes
) -> str:
    """Wrap ``secret`` (the owner key, or an encoded keyring) to a recipient; returns the slot id."""
    slot_id = new_id()
    blob = keyslot.encode_x25519(vault_id, ring_bytes(ring), slot_id, recipient_pub, secret)
    backend.put(layout.slot_key(ring, slot_id), blob)
    return slot_id.hex()


def keyring_secret(keyring: Keyring) -> bytes:
    """What a keyring slot wraps: the encoded keyring (id key and every epoch's DEK)."""
    return keyring_format.encode(keyring)
