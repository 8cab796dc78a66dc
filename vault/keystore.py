"""Opening and creating key slots in storage.

Two levels, so that one passphrase opens every namespace without one Argon2 run per
namespace:

* the vault **owner key** (32 random bytes) sits in ``keys/owner/<slot>`` wrapped by
  passphrase slots (Argon2id). ``init`` creates the first one.
* each top-level namespace has a **keyring** (id key + DEKs) in ``keys/<ring id>/<slot>``,
  wrapped by an ``owner`` slot whose KEK is HKDF(owner key, slot id). Grants to other
  principals will add slots of their own kind to a keyring, never touching data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from vault import layout
from vault.crypto import aead
from vault.crypto.kdf import SALT_SIZE, KdfParams, stretch
from vault.crypto.keyring import Keyring, new_id
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DecryptionError,
    IntegrityError,
    NotFoundError,
)
from vault.formats import keyring as keyring_format
from vault.formats import keyslot
from vault.storage import Backend

MAX_SLOT_SIZE = 4096  # a slot is ~150 bytes; anything bigger was not written by us
MAX_PASSPHRASE_SLOTS = 16
PassphraseSource = Callable[[], bytes]


def _readable_slots(backend: Backend, keys: list[str]) -> Iterator[keyslot.KeySlot]:
    """Parse each slot, skipping oversized or malformed ones (anyone with storage access can plant them)."""
    for key in keys:
        try:
            slot = keyslot.decode(backend.get(key, max_size=MAX_SLOT_SIZE))
        except (IntegrityError, ConfigurationError):
            continue
        yield slot


def create_owner(backend: Backend, vault_id: bytes, passphrase: bytes, kdf: KdfParams) -> bytes:
    """Create the owner key and its first passphrase slot; return the owner key."""
    owner_key = os.urandom(32)
    add_passphrase_slot(backend, vault_id, owner_key, passphrase, kdf)
    return owner_key


def add_passphrase_slot(
    backend: Backend, vault_id: bytes, owner_key: bytes, passphrase: bytes, kdf: KdfParams
) -> str:
    """Wrap ``owner_key`` under another passphrase; returns the slot key."""
    slot_id, salt = new_id(), os.urandom(SALT_SIZE)
    kek = stretch(passphrase, salt, kdf.check())
    blob = keyslot.encode(
        keyslot.KIND_PASSPHRASE, vault_id, b"\0" * 16, slot_id, kek, owner_key, kdf=kdf, salt=salt
    )
    key = layout.slot_key(layout.OWNER_RING, slot_id)
    backend.put(key, blob)
    return key


def open_owner(backend: Backend, vault_id: bytes, passphrase: bytes) -> bytes:
    """Try every passphrase slot; return the owner key or raise AuthenticationError."""
    slots = sorted(backend.list(layout.slot_prefix(layout.OWNER_RING)))
    if not slots:
        raise NotFoundError("the vault has no passphrase key slot; it cannot be opened with a passphrase")
    tried = 0
    for slot in _readable_slots(backend, slots):
        if slot.kind != keyslot.KIND_PASSPHRASE or slot.vault_id != vault_id:
            continue
        tried += 1
        if tried > MAX_PASSPHRASE_SLOTS:
            break  # planted slots must not buy an attacker unbounded Argon2 work
        assert slot.kdf is not None and slot.salt is not None
        kek = stretch(passphrase, slot.salt, slot.kdf)
        try:
            secret = keyslot.unwrap(slot, kek)
        except DecryptionError:
            continue
        if len(secret) == 32:
            return secret
    raise AuthenticationError("wrong passphrase: no key slot of this vault opens with it")


def create_keyring(backend: Backend, vault_id: bytes, owner_key: bytes) -> tuple[Keyring, str]:
    """Make a new keyring wrapped for the owner; returns it and its slot key."""
    keyring = Keyring.generate()
    slot_id = new_id()
    kek = aead.derive_key(owner_key, slot_id, keyslot.OWNER_INFO)
    blob = keyslot.encode(
        keyslot.KIND_OWNER, vault_id, keyring.ring_id, slot_id, kek, keyring_format.encode(keyring)
    )
    key = layout.slot_key(keyring.ring_id.hex(), slot_id)
    backend.put(key, blob)
    return keyring, key


def open_keyring(backend: Backend, vault_id: bytes, ring_id: bytes, owner_key: bytes) -> Keyring:
    """Open a keyring through its owner slot."""
    for slot in _readable_slots(backend, sorted(backend.list(layout.slot_prefix(ring_id.hex())))):
        if slot.kind != keyslot.KIND_OWNER or slot.vault_id != vault_id or slot.ring_id != ring_id:
            continue
        kek = aead.derive_key(owner_key, slot.slot_id, keyslot.OWNER_INFO)
        try:
            return keyring_format.decode(keyslot.unwrap(slot, kek), ring_id)
        except DecryptionError:
            continue
    raise AuthenticationError(f"no key slot for keyring {ring_id.hex()} opens with this vault's owner key")
