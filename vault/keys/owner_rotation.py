"""Rotating the vault owner key (inside ``rekey``) after a slot that could open it was removed.

Whoever kept a removed passphrase, KMS grant or recovery identity, and the slot object it opened,
still opens the **old** owner key, and through it every keyring owner slot made under it. So when
the key events say an owner-ring slot was removed since the owner key was last rotated
(:func:`vault.keys.rekey.owner_key_exposed`), ``rekey`` first makes a new owner key and leaves
nothing under the old one. The steps, in an order where a SIGKILL anywhere loses nothing:

1. a new owner key (random); it lives only in this process until step 3;
2. every keyring's owner slot written again under it (the newest keyring each, contents
   unchanged): until step 3 these open nothing, and the old slots still open everything;
3. new owner-ring slots wrapping it: the passphrase that opened the vault in this process (its
   Argon2 parameters kept), one aws-kms slot per KMS key id (``write_kms_slot``), one x25519 slot
   per recipient whose public key the catalog recorded; then any keyring created meanwhile gets
   an owner slot too. From here both owner keys open every keyring;
   The owner identity (:mod:`vault.keys.owner_identity`) is sealed under the new key too (same
   identity, new wrapping);
4. this client re-pins the new owner key and remembers the new passphrase slot (before any old
   slot goes: a re-run must not meet only a key its pin refuses);
5. the old owner-ring slots deleted, then every other owner slot of each keyring (the old ones,
   and any a killed rotation left under a key nobody holds), then every owner-identity object but
   the new one;
6. one ``rekey`` event per new owner-ring slot, last: until then the catalog still says the
   owner key is exposed, and a re-run rotates again from whichever owner key opens.

**Carried over or refused.** A passphrase slot this process's passphrase opens is covered by the
one new passphrase slot (so a re-run recognises the slots a killed run wrote); any other
passphrase slot, and every one when an identity or KMS opened the vault (no passphrase is
known), cannot be rewrapped. An x25519 slot is carried over when the catalog recorded a public
key whose fingerprint is the slot's (so a catalog edit cannot redirect it), or it is the
identity that opened the vault. Slots that cannot be carried over are named and the rotation
refuses (``UsageError``) unless ``drop_unrewrappable``; damaged slots are left in place.

Do not rotate while another process creates a namespace: a keyring it creates under the old
owner key after step 3 keeps only an owner slot under that key, which the rotating client does
not know about.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vault import keystore, layout
from vault.crypto.kdf import KdfParams, stretch
from vault.crypto.keyring import Keyring
from vault.errors import ConflictError, DecryptionError, NotFoundError, UsageError
from vault.formats import keyslot
from vault.keys import owner_identity, slots
from vault.keys.kms import write_kms_slot
from vault.keys.slots import StoredSlot
from vault.keys.sources import OpenedBy
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.catalog.keyslots import SlotRecord
    from vault.keycache import KeyCache

Step = Callable[[str], None]
OpenKeyring = Callable[[str], Keyring]


@dataclass(frozen=True)
class OwnerRotation:
    """What rotating the owner key did (slot ids, hex)."""

    written: tuple[str, ...]  # new owner-ring slots
    deleted: tuple[str, ...]  # old owner-ring slots
    dropped: tuple[str, ...]  # owner-ring slots that could not be carried over (deleted)
    damaged: tuple[str, ...]  # left in place: they open nothing
    keyrings: int  # keyrings whose owner slot was rewritten


@dataclass
class _Carry:
    """What the new owner ring will hold: one entry per passphrase, KMS key and recipient."""

    passphrase: tuple[bytes, KdfParams, str | None] | None = None
    kms: dict[str, str | None] = field(default_factory=dict)  # key id → label
    recipients: dict[bytes, str | None] = field(default_factory=dict)  # public key → label
    dropped: list[str] = field(default_factory=list)


def _no_step(_: str) -> None:
    return None


def rotate_owner_key(
    keys: KeyCache,
    backend: Backend,
    catalog: Catalog,
    open_keyring: OpenKeyring,
    *,
    drop_unrewrappable: bool = False,
    step: Step | None = None,
) -> OwnerRotation:
    """Steps 1-6 of the module docstring; ``open_keyring(ring)`` gives a keyring's newest contents
    under the current owner key, and ``step`` is called after each write or delete (tests kill there)."""
    tick = step or _no_step
    keys.owner_key()
    stored = slots.scan_ring(backend, keys.vault_id, layout.OWNER_RING)
    carry = _plan(keys, stored, catalog.slot_records())
    if carry.dropped and not drop_unrewrappable:
        raise UsageError(
            f"cannot rotate the owner key: key slot(s) {', '.join(carry.dropped)} cannot be rewrapped (a "
            "passphrase other than the one given, or a recipient with no recorded public key); pass "
            "--drop-unrewrappable to remove them (add them again afterwards), or remove them with `keys rm`"
        )
    if carry.passphrase is None and not carry.kms and not carry.recipients:
        raise UsageError("cannot rotate the owner key: no slot could open the new one")
    keyrings = {ring: open_keyring(ring) for ring in catalog.all_keyrings().values()}  # before any write
    identity = owner_identity.load(backend, keys.vault_id, keys.owner_key())  # None: made before them
    new_key = os.urandom(32)
    rewritten = {
        ring: _keyring_slot(keys, backend, catalog, new_key, keyring, tick)
        for ring, keyring in keyrings.items()
    }
    written, opened = _write_owner_ring(keys, backend, catalog, new_key, carry, tick)
    for ring in set(catalog.all_keyrings().values()) - set(rewritten):  # created meanwhile
        rewritten[ring] = _keyring_slot(keys, backend, catalog, new_key, open_keyring(ring), tick)
    if identity is not None:
        owner_identity.reseal(backend, keys.vault_id, identity, new_key)
        tick("owner identity resealed")
    keys.replace_owner_key(new_key, opened)
    tick("re-pinned")
    deleted = []
    for item in stored:
        if item.slot is not None and item.kind is not None:
            _delete(keys, backend, catalog, item, tick)
            deleted.append(item.slot_id)
    for ring, kept in rewritten.items():
        for item in slots.scan_ring(backend, keys.vault_id, ring):
            if item.kind == "owner" and item.slot_id != kept:
                _delete(keys, backend, catalog, item, tick)
    if owner_identity.sweep(backend, keys.vault_id, new_key):  # the old wrapping, and a killed run's
        tick("owner identity swept")
    for kind, slot_id in written:  # last: a rotation killed before this point counts as not done
        catalog.log_key_event("rekey", slot_id, layout.OWNER_RING, kind, keys.actor, keys.clock())
    tick("logged")
    return OwnerRotation(
        tuple(s for _, s in written),
        tuple(deleted),
        tuple(carry.dropped),
        tuple(s.slot_id for s in stored if s.slot is None),
        len(rewritten),
    )


def _plan(keys: KeyCache, stored: Sequence[StoredSlot], records: dict[str, SlotRecord]) -> _Carry:
    """Which owner-ring slots the new owner key can be wrapped for, and which it cannot."""
    carry, opened = _Carry(), keys.opened_by
    secret = opened.passphrase if opened is not None and opened.source == "passphrase" else None
    known = _recorded_recipients(stored, records)
    identity = keys.identity() if opened is not None and opened.source == "identity" else None
    if identity is not None:
        public = identity.public.x25519_public
        known.setdefault(hashlib.sha256(public).digest(), (public, None))
    tries = 0
    for item in stored:
        slot, label = item.slot, _label(records, item.slot_id)
        if slot is None:
            continue
        if slot.kind == keyslot.KIND_AWS_KMS:
            carry.kms.setdefault(keyslot.kms_key_id(slot), label)
        elif slot.kind == keyslot.KIND_X25519:
            found = known.get(keyslot.x25519_fingerprint(slot))
            if found is None:
                carry.dropped.append(item.slot_id)
            else:
                carry.recipients.setdefault(found[0], found[1] or label)
        elif secret is None or opened is None:
            carry.dropped.append(item.slot_id)
        elif item.slot_id == opened.slot_id:
            assert slot.kdf is not None
            carry.passphrase = (secret, slot.kdf, label)
        elif tries >= keystore.MAX_PASSPHRASE_SLOTS or not _opens(slot, secret, keys.sources.allow_slow_kdf):
            carry.dropped.append(item.slot_id)  # another passphrase: cannot be rewrapped
        else:
            tries += 1  # the same passphrase (e.g. a slot a killed rotation wrote): covered
    if secret is not None and carry.passphrase is None:
        raise ConflictError(
            "the passphrase slot that opened the vault is gone; open the vault again and retry"
        )
    return carry


def _recorded_recipients(
    stored: Sequence[StoredSlot], records: dict[str, SlotRecord]
) -> dict[bytes, tuple[bytes, str | None]]:
    """fingerprint → (public key, label) for every recorded owner-ring recipient whose key matches."""
    known: dict[bytes, tuple[bytes, str | None]] = {}
    for item in stored:
        record = records.get(item.slot_id)
        if item.slot is None or item.slot.kind != keyslot.KIND_X25519 or record is None:
            continue
        public = record.recipient_public
        fingerprint = keyslot.x25519_fingerprint(item.slot)
        if public is not None and hmac.compare_digest(hashlib.sha256(public).digest(), fingerprint):
            known.setdefault(fingerprint, (public, record.label))
    return known


def _opens(slot: keyslot.KeySlot, secret: bytes, allow_slow_kdf: bool) -> bool:
    """Whether passphrase ``secret`` opens passphrase ``slot`` (slow KDFs only when allowed)."""
    assert slot.kdf is not None and slot.salt is not None
    if slot.kdf.is_slow and not allow_slow_kdf:
        return False
    try:
        return len(keyslot.unwrap(slot, stretch(secret, slot.salt, slot.kdf))) == 32
    except DecryptionError:
        return False


def _label(records: dict[str, SlotRecord], slot_id: str) -> str | None:
    record = records.get(slot_id)
    return None if record is None else record.label


def _keyring_slot(
    keys: KeyCache, backend: Backend, catalog: Catalog, new_key: bytes, keyring: Keyring, tick: Step
) -> str:
    """Step 2 for one keyring: its owner slot under the new owner key; returns the slot id."""
    ring = keyring.ring_id.hex()
    slot_id = keystore.write_owner_slot(backend, keys.vault_id, new_key, keyring)
    tick("keyring slot written")
    catalog.record_slot(slot_id, ring, "owner", None, keys.actor, keys.clock())
    tick("keyring slot recorded")
    return slot_id


def _write_owner_ring(
    keys: KeyCache, backend: Backend, catalog: Catalog, new_key: bytes, carry: _Carry, tick: Step
) -> tuple[list[tuple[str, str]], OpenedBy]:
    """Step 3: the new owner-ring slots as (kind, slot id), and how this process now holds the key."""
    written: list[tuple[str, str]] = []
    before = keys.opened_by
    opened = OpenedBy(before.source if before is not None and before.source != "passphrase" else "given")
    vault_id, owner = keys.vault_id, layout.OWNER_RING

    def record(kind: str, slot_id: str, label: str | None, public: bytes | None = None) -> None:
        tick(f"{kind} slot written")
        catalog.record_slot(slot_id, owner, kind, label, keys.actor, keys.clock(), recipient_public=public)
        tick(f"{kind} slot recorded")
        written.append((kind, slot_id))

    if carry.passphrase is not None:
        secret, kdf, label = carry.passphrase
        key = keystore.add_passphrase_slot(backend, vault_id, new_key, secret, kdf, allow_slow_kdf=True)
        slot_id = key.rsplit("/", 1)[-1]
        record("passphrase", slot_id, label)
        opened = OpenedBy("passphrase", slot_id, secret)
    for key_id, label in carry.kms.items():
        slot_id, _ = write_kms_slot(backend, vault_id, new_key, keys.kms(), key_id)
        record("aws-kms", slot_id, label)
    for public, label in carry.recipients.items():
        record("x25519", slots.write_x25519_slot(backend, vault_id, owner, public, new_key), label, public)
    return written, opened


def _delete(keys: KeyCache, backend: Backend, catalog: Catalog, item: StoredSlot, tick: Step) -> None:
    """Delete one old slot, then drop its record (a ``remove`` event)."""
    assert item.kind is not None
    with contextlib.suppress(NotFoundError):
        backend.delete(layout.slot_key(item.ring, item.slot_id))
    tick(f"{item.kind} slot deleted")
    catalog.forget_slot(item.slot_id, item.ring, item.kind, keys.actor, keys.clock())
    tick(f"{item.kind} slot forgotten")
