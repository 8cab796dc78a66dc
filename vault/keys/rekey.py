"""Rotating a namespace's keyring: a new data-key epoch, and every slot of the keyring rewritten.

``rekey NS`` appends a fresh data key (DEK) to NS's keyring. New chunks, pack trailers and
manifests are sealed under the newest epoch; old objects keep the epoch they were written under
and stay readable, because the keyring still holds every older DEK. The id key does not change
(chunk ids, and so dedup, stay the same). Storage is write-once, so every slot of the keyring is
written again under a **new slot id** and the old slot objects are deleted afterwards:

- the owner slot, under the vault owner key;
- one x25519 slot per recipient whose public key the catalog recorded (``key_slots``) and whose
  fingerprint is the slot's (a catalog edit cannot redirect a recipient); a recipient slot
  without such a key cannot be carried over: the rekey refuses and names it, unless
  ``drop_unrewrappable`` (then that recipient loses the namespace and must be added again). A
  slot a killed rekey wrote before recording it shares its fingerprint with a recorded one, so
  it is recognised, not refused;
- damaged slots (they open nothing) are left where they are and reported.

Key events: each new slot is an ``add``, each old one a ``remove``, and finally one ``rekey`` per
new slot. "Was a slot removed since the newest epoch began?" is answered from these events
(:func:`removed_since_rekey`): a removal from the keyring, or from the owner ring (a removed
passphrase or KMS slot could open the owner key, and through it the keyring), logged after the
keyring's last ``rekey`` event. ``rekey --reencrypt`` uses it to skip a new epoch when the newest
one is still known only to the current slot holders.

**What a removed recipient keeps.** A recipient removed before the rekey cannot open anything
sealed under the new epoch; what they could read before (older epochs) stays readable to anyone
who kept the old keyring secret, until ``rekey --reencrypt`` rewrites it. The id key never changes
in an epoch rotation, so such a reader can still test whether a file they know is stored (keyed
chunk ids) until a full re-encryption under a new id key, which is future work.

**Owner key.** When an owner-opening slot (passphrase, aws-kms, recovery) was removed since the
owner ring's last rekey (:func:`owner_key_exposed`), the rekey rotates the owner key first
(:mod:`vault.keys.owner_rotation`) and always starts a new epoch (the old owner key opened the
newest one). Other namespaces keep epochs the old owner key could open until they are rekeyed
too; the result names them (``needs_rekey``).

The key cache of this process is told about every new key (``replace_owner_key``,
``replace_keyring``), so a push right after a rekey in the same process uses the new epoch.

**Interrupted.** Slots are written before the old ones are deleted, so a rekey killed half-way
leaves both the old and the new owner slot; nothing is lost. The next rekey opens every owner slot
and continues from the keyring with the most epochs (:func:`open_newest`), so it never makes a
second, different DEK for an epoch someone may already have used. Until then, a reader that
happens to open the old owner slot first cannot read objects sealed under the new epoch (exit 4);
re-running the rekey ends that.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault import keystore, layout
from vault.catalog.keyslots import KeyEvent
from vault.crypto import aead
from vault.crypto.keyring import Keyring
from vault.errors import AuthenticationError, DecryptionError, IntegrityError, NotFoundError, UsageError
from vault.formats import keyring as keyring_format
from vault.formats import keyslot
from vault.keys import slots, subtrees
from vault.keys.owner_rotation import OwnerRotation, Step, rotate_owner_key
from vault.keys.slots import StoredSlot
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.keycache import KeyCache


@dataclass(frozen=True)
class SlotRewrite:
    """What rewriting the slots of one keyring did (slot ids, hex)."""

    written: tuple[str, ...]
    deleted: tuple[str, ...]
    dropped: tuple[str, ...]  # recipient slots that could not be carried over (deleted)
    damaged: tuple[str, ...]  # left in place: they open nothing


@dataclass(frozen=True)
class RekeyResult:
    """The outcome of ``rekey NS`` (and, with re-encryption, of its key steps)."""

    namespace: str
    ring_id: str
    epoch: int  # the newest epoch after the rekey
    new_epoch: bool  # False when --reencrypt found the newest epoch still clean
    slots: SlotRewrite | None
    # An owner-opening slot was removed since the owner key was last rotated, and the owner key was
    # not rotated (only when the rekey stopped before it; after a rotation this is False).
    owner_key_exposed: bool = False
    owner_rotation: OwnerRotation | None = None
    needs_rekey: tuple[str, ...] = ()  # after a rotation: namespaces still under old-owner-key epochs


def ring_of(catalog: Catalog, namespace: str) -> str:
    """The keyring id of ``namespace``; NotFoundError if it has none (nothing was pushed there)."""
    ring = catalog.keyring_for(namespace)
    if ring is None:
        raise NotFoundError(f"namespace {namespace} has no keyring (nothing was ever pushed there)")
    return ring


def open_newest(stored: Sequence[StoredSlot], owner_key: bytes, ring: str) -> Keyring:
    """The keyring with the most epochs among the owner slots of ``ring`` that ``owner_key`` opens.

    Two owner slots exist only after an interrupted rekey; both hold the same id key, and the one
    with more epochs is the newer.
    """
    found: list[Keyring] = []
    for item in stored:
        slot = item.slot
        if slot is None or slot.kind != keyslot.KIND_OWNER:
            continue
        kek = aead.derive_key(owner_key, slot.slot_id, keyslot.OWNER_INFO)
        try:
            found.append(keyring_format.decode(keyslot.unwrap(slot, kek), bytes.fromhex(ring)))
        except (DecryptionError, IntegrityError):
            continue  # not wrapped by this owner key, or not a keyring secret
    if not found:
        raise AuthenticationError(f"no key slot of keyring {ring} opens with this vault's owner key")
    if len({k.id_key for k in found}) != 1:
        raise IntegrityError(f"the owner slots of keyring {ring} hold different id keys")
    return max(found, key=lambda k: len(k.deks))


def with_new_epoch(keyring: Keyring) -> Keyring:
    """``keyring`` with one more epoch (a fresh random DEK); the id key is unchanged."""
    if len(keyring.deks) >= keyring_format.MAX_EPOCHS:
        raise UsageError(f"keyring {keyring.ring_id.hex()} already has {keyring_format.MAX_EPOCHS} epochs")
    return Keyring(keyring.ring_id, keyring.id_key, (*keyring.deks, os.urandom(32)))


def retired(keyring: Keyring) -> Keyring:
    """``keyring`` with every DEK but the newest replaced by fresh random bytes nobody ever used.

    Epoch numbers stay where they are (chunk and sealed headers name them), but an object that
    claims a retired epoch no longer opens: once every chunk and manifest was rewritten under the
    newest epoch, the old keys are gone from every new slot.
    """
    return Keyring(
        keyring.ring_id,
        keyring.id_key,
        (*(os.urandom(32) for _ in keyring.deks[:-1]), keyring.deks[-1]),
    )


def removed_since_rekey(events: Sequence[KeyEvent], ring: str) -> bool:
    """Whether a slot of ``ring`` or of the owner ring was removed after ``ring``'s last rekey."""
    last = max((e.id for e in events if e.action == "rekey" and e.ring == ring), default=0)
    return any(e.action == "remove" and e.ring in (ring, layout.OWNER_RING) and e.id > last for e in events)


def owner_key_exposed(events: Sequence[KeyEvent]) -> bool:
    """Whether a slot of the owner ring was removed after the owner ring's last rekey."""
    return removed_since_rekey(events, layout.OWNER_RING)


def recorded_recipients(
    stored: Sequence[StoredSlot], catalog: Catalog
) -> dict[bytes, tuple[bytes, str | None]]:
    """fingerprint → (public key, label) of the x25519 slots whose recorded public key matches the slot."""
    records = catalog.slot_records()
    found: dict[bytes, tuple[bytes, str | None]] = {}
    for item in stored:
        record = records.get(item.slot_id)
        if item.slot is None or item.slot.kind != keyslot.KIND_X25519 or record is None:
            continue
        fingerprint = keyslot.x25519_fingerprint(item.slot)
        public = record.recipient_public
        if public is not None and hmac.compare_digest(hashlib.sha256(public).digest(), fingerprint):
            found.setdefault(fingerprint, (public, record.label))
    return found


def unrewrappable(stored: Sequence[StoredSlot], catalog: Catalog) -> list[str]:
    """Recipient slots of a keyring with no recorded public key of their fingerprint."""
    known = recorded_recipients(stored, catalog)
    return [
        s.slot_id
        for s in stored
        if s.slot is not None
        and s.slot.kind == keyslot.KIND_X25519
        and keyslot.x25519_fingerprint(s.slot) not in known
    ]


def refuse_unrewrappable(missing: list[str], namespace: str, *, drop: bool) -> None:
    """UsageError naming recipient slots a rekey cannot carry over, unless ``drop``."""
    if missing and not drop:
        raise UsageError(
            f"cannot rekey namespace {namespace}: recipient slot(s) {', '.join(missing)} have no recorded "
            "public key, so the new keyring cannot be wrapped to them; pass --drop-unrewrappable to "
            "remove them (add those recipients again afterwards), or remove them with `keys rm`"
        )


def rewrite_slots(
    keys: KeyCache,
    backend: Backend,
    catalog: Catalog,
    keyring: Keyring,
    *,
    namespace: str,
    drop_unrewrappable: bool = False,
    step: Step | None = None,
) -> SlotRewrite:
    """Wrap ``keyring`` in new slots for the owner and every recorded recipient, then delete the old
    ones; ``step`` is called after each write or delete (tests kill there)."""
    tick = step or (lambda _: None)
    ring = keyring.ring_id.hex()
    stored = slots.scan_ring(backend, keys.vault_id, ring)
    dropped = unrewrappable(stored, catalog)
    refuse_unrewrappable(dropped, namespace, drop=drop_unrewrappable)
    recipients = dict(recorded_recipients(stored, catalog).values())
    owner_key = keys.owner_key()
    written: list[tuple[str, str]] = []
    owner_slot = keystore.write_owner_slot(backend, keys.vault_id, owner_key, keyring)
    tick("owner slot written")
    catalog.record_slot(owner_slot, ring, "owner", None, keys.actor, keys.clock())
    written.append(("owner", owner_slot))
    secret = slots.keyring_secret(keyring)
    for public, label in recipients.items():
        slot_id = slots.write_x25519_slot(backend, keys.vault_id, ring, public, secret)
        tick("x25519 slot written")
        catalog.record_slot(slot_id, ring, "x25519", label, keys.actor, keys.clock(), recipient_public=public)
        written.append(("x25519", slot_id))
    keys.replace_keyring(keyring)
    deleted = []
    for item in stored:
        if item.slot is None or item.kind is None:
            continue  # damaged: opens nothing, left for the owner to inspect
        with contextlib.suppress(NotFoundError):
            backend.delete(layout.slot_key(ring, item.slot_id))
        tick(f"{item.kind} slot deleted")
        catalog.forget_slot(item.slot_id, ring, item.kind, keys.actor, keys.clock())
        deleted.append(item.slot_id)
    # Logged last: a rekey killed before this point counts as not done (removed_since_rekey).
    for kind, slot_id in written:
        catalog.log_key_event("rekey", slot_id, ring, kind, keys.actor, keys.clock())
    tick("logged")
    return SlotRewrite(
        tuple(s for _, s in written),
        tuple(deleted),
        tuple(dropped),
        tuple(s.slot_id for s in stored if s.slot is None),
    )


def current_keyring(keys: KeyCache, backend: Backend, ring: str) -> Keyring:
    """The newest keyring ``ring``'s owner slots hold (needs the owner key)."""
    owner_key = keys.owner_key()
    return open_newest(slots.scan_ring(backend, keys.vault_id, ring), owner_key, ring)


def rekey_namespace(
    keys: KeyCache,
    backend: Backend,
    catalog: Catalog,
    namespace: str,
    *,
    new_epoch: bool = True,
    drop_unrewrappable: bool = False,
    step: Step | None = None,
) -> tuple[RekeyResult, Keyring]:
    """Start a new epoch for ``namespace`` (or, without ``new_epoch``, only check it can be rewritten),
    rotating the owner key first when a slot that could open it was removed.

    Returns the result and the keyring now in force. Only the owner rekeys: the owner key is
    opened first. ``step`` is called after each write or delete (tests kill there).
    """
    keys.owner_key()
    # A deeper namespace's own keyring through its owner-signed record (vault.keys.subtrees).
    ring = subtrees.ring_of_namespace(keys, backend, catalog, namespace) or ring_of(catalog, namespace)
    stored = slots.scan_ring(backend, keys.vault_id, ring)
    refuse_unrewrappable(unrewrappable(stored, catalog), namespace, drop=drop_unrewrappable)
    rotation = None
    if owner_key_exposed(catalog.key_events()):
        rotation = rotate_owner_key(
            keys,
            backend,
            catalog,
            lambda other: current_keyring(keys, backend, other),
            drop_unrewrappable=drop_unrewrappable,
            step=step,
        )
        new_epoch = True  # the old owner key opened the newest epoch
    keyring = current_keyring(keys, backend, ring)
    rewrite = None
    if new_epoch:
        keyring = with_new_epoch(keyring)
        rewrite = rewrite_slots(
            keys,
            backend,
            catalog,
            keyring,
            namespace=namespace,
            drop_unrewrappable=drop_unrewrappable,
            step=step,
        )
    events = catalog.key_events()
    stale: tuple[str, ...] = ()
    if rotation is not None:
        others = sorted(catalog.all_keyrings().items())
        stale = tuple(ns for ns, other in others if other != ring and removed_since_rekey(events, other))
    result = RekeyResult(
        namespace, ring, keyring.epoch, new_epoch, rewrite, owner_key_exposed(events), rotation, stale
    )
    return result, keyring
