"""Listing, adding and removing key slots, with their catalog records and key events.

Each add writes one slot to storage and then records it (label, creator, time) together with an
``add`` key event in one catalog transaction; each removal deletes the slot, then drops its record
and logs a ``remove`` event. Storage never holds a label or a name. Adding or removing a slot
rewrites only that slot, never data, and every change needs the vault owner key (only the owner
manages slots; an identity that holds one namespace cannot hand it on through mlvault).

Removing a slot is refused (``UsageError``, exit 2) when it is the last usable slot on the owner
ring (passphrase, aws-kms or x25519): nothing could open the vault afterwards. The ``owner`` slot
of a keyring is never removed: it is how the owner key reaches that namespace.

**Write implies read.** A recipient slot wraps a namespace's whole keyring (id key and every
epoch's data key): pushing needs the id key (keyed chunk ids, for dedup) and the current data key,
and either lets its holder read. So a recipient can read and push that namespace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault import keystore, layout
from vault.catalog.keyslots import SlotRecord, check_label
from vault.crypto.kdf import KdfParams
from vault.errors import NotFoundError, UsageError
from vault.formats import keyslot
from vault.keys import slots, subtrees
from vault.keys.slots import StoredSlot
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.clientstate.identities import Identity, PublicIdentity
    from vault.keycache import KeyCache

RECOVERY_LABEL = "recovery"


@dataclass(frozen=True)
class SlotInfo:
    """One key slot as ``keys ls`` shows it; ``kind`` is ``damaged`` for a slot that cannot be used."""

    slot_id: str
    kind: str
    opens: str  # "owner" (the owner key, so everything) or "keyring"
    ring: str
    namespace: str | None
    recipient: str | None  # x25519: the recipient's fingerprint (hex)
    kms_key_id: str | None
    label: str | None
    created_at: dt.datetime | None
    created_by: str | None
    last_used_at: dt.datetime | None
    damage: str | None = None


def list_slots(backend: Backend, vault_id: bytes, catalog: Catalog) -> list[SlotInfo]:
    """Every slot in storage, owner ring first, with what the catalog records about it."""
    namespaces = {ring: ns for ns, ring in catalog.all_keyrings().items()}
    records = catalog.slot_records()
    rings = {layout.OWNER_RING}
    for key in backend.list(layout.KEYS_PREFIX):
        parsed = layout.parse_slot_key(key)
        if parsed is not None:
            rings.add(parsed[0])
    ordered = [
        layout.OWNER_RING,
        *sorted(rings - {layout.OWNER_RING}, key=lambda r: (namespaces.get(r, "~"), r)),
    ]
    return [
        _info(item, namespaces.get(item.ring), records.get(item.slot_id))
        for ring in ordered
        for item in slots.scan_ring(backend, vault_id, ring)
    ]


def _info(item: StoredSlot, namespace: str | None, record: SlotRecord | None) -> SlotInfo:
    slot = item.slot
    return SlotInfo(
        slot_id=item.slot_id,
        kind=item.kind or "damaged",
        opens="owner" if item.ring == layout.OWNER_RING else "keyring",
        ring=item.ring,
        namespace=namespace,
        recipient=keyslot.x25519_fingerprint(slot).hex()
        if slot and slot.kind == keyslot.KIND_X25519
        else None,
        kms_key_id=keyslot.kms_key_id(slot) if slot and slot.kind == keyslot.KIND_AWS_KMS else None,
        label=record.label if record else None,
        created_at=record.created_at if record else None,
        created_by=record.created_by if record else None,
        last_used_at=record.last_used_at if record else None,
        damage=item.damage,
    )


def _label(label: str | None) -> str | None:
    try:
        return check_label(label)
    except ValueError as exc:
        raise UsageError(f"invalid --label {label!r}: {exc}") from None


def _recorded(
    keys: KeyCache,
    catalog: Catalog,
    slot_id: str,
    ring: str,
    kind: str,
    label: str | None,
    recipient_public: bytes | None = None,
) -> str:
    catalog.record_slot(
        slot_id, ring, kind, label, keys.actor, keys.clock(), recipient_public=recipient_public
    )
    return slot_id


def add_passphrase(
    keys: KeyCache,
    backend: Backend,
    catalog: Catalog,
    passphrase: bytes,
    kdf: KdfParams,
    *,
    label: str | None = None,
    allow_slow_kdf: bool = False,
) -> str:
    """A new passphrase slot on the owner key; returns its id."""
    label = _label(label)
    keystore.refuse_slow_kdf(kdf, allow_slow_kdf=allow_slow_kdf)
    if not passphrase:
        raise UsageError("the passphrase must not be empty")
    key = keystore.add_passphrase_slot(
        backend, keys.vault_id, keys.owner_key(), passphrase, kdf, allow_slow_kdf=allow_slow_kdf
    )
    return _recorded(keys, catalog, key.rsplit("/", 1)[-1], layout.OWNER_RING, "passphrase", label)


def add_kms(
    keys: KeyCache, backend: Backend, catalog: Catalog, key_id: str, *, label: str | None = None
) -> str:
    """A new aws-kms slot on the owner key (GenerateDataKey under ``key_id``); returns its id."""
    from vault.keys.kms import write_kms_slot

    label = _label(label)
    if not key_id or len(key_id) > 2048 or not key_id.isprintable():
        raise UsageError(f"invalid KMS key id {key_id!r}")
    slot_id, _ = write_kms_slot(backend, keys.vault_id, keys.owner_key(), keys.kms(), key_id)
    return _recorded(keys, catalog, slot_id, layout.OWNER_RING, "aws-kms", label)


def add_recipient(
    keys: KeyCache,
    backend: Backend,
    catalog: Catalog,
    public: PublicIdentity,
    namespace: str,
    *,
    label: str | None = None,
) -> str:
    """Wrap ``namespace``'s keyring to ``public`` (read and push there); returns the slot id."""
    label = _label(label) or public.name
    keys.owner_key()
    keyring = subtrees.keyring_for_namespace(keys, backend, catalog, namespace)
    ring = keyring.ring_id.hex()
    slot_id = slots.write_x25519_slot(
        backend, keys.vault_id, ring, public.x25519_public, slots.keyring_secret(keyring)
    )
    return _recorded(keys, catalog, slot_id, ring, "x25519", label, public.x25519_public)


def add_recovery(
    keys: KeyCache, backend: Backend, catalog: Catalog, public: PublicIdentity, *, label: str | None = None
) -> str:
    """Wrap the owner key to ``public``: that identity can open (and restore) everything."""
    label = _label(label) or RECOVERY_LABEL
    slot_id = slots.write_x25519_slot(
        backend, keys.vault_id, layout.OWNER_RING, public.x25519_public, keys.owner_key()
    )
    return _recorded(keys, catalog, slot_id, layout.OWNER_RING, "x25519", label, public.x25519_public)


def add_generated_recovery(
    keys: KeyCache, backend: Backend, catalog: Catalog, *, label: str | None = None
) -> tuple[str, PublicIdentity]:
    """Generate a recovery identity, wrap the owner key to it and keep it sealed under the owner key.

    The slot is written first, then the sealed identity: if that fails the slot is deleted again,
    so a recovery slot whose private part the vault should keep never exists without it.
    """
    from vault.keys import recovery

    label = _label(label) or RECOVERY_LABEL
    owner_key = keys.owner_key()
    identity = recovery.generate()
    slot_id = slots.write_x25519_slot(
        backend, keys.vault_id, layout.OWNER_RING, identity.public.x25519_public, owner_key
    )
    try:
        recovery.store(backend, keys.vault_id, owner_key, slot_id, identity)
    except BaseException:
        backend.delete(layout.slot_key(layout.OWNER_RING, slot_id))
        raise
    _recorded(keys, catalog, slot_id, layout.OWNER_RING, "x25519", label, identity.public.x25519_public)
    return slot_id, identity.public


def kept_recovery(keys: KeyCache, backend: Backend, slot_id: str | None = None) -> tuple[str, Identity]:
    """The recovery identity the vault keeps for ``slot_id`` (or its only one), opened with the owner key."""
    from vault.keys import recovery

    chosen = recovery.choose(backend, slot_id)
    return chosen, recovery.load(backend, keys.vault_id, keys.owner_key(), chosen)


def remove_slot(keys: KeyCache, backend: Backend, catalog: Catalog, slot_id: str) -> SlotInfo:
    """Delete slot ``slot_id``; refused for the last owner-opening slot and keyring owner slots."""
    if not layout.is_id(slot_id):
        raise UsageError(f"invalid slot id {slot_id!r}: expected 32 lower-case hex digits (see `keys ls`)")
    every = list_slots(backend, keys.vault_id, catalog)
    target = next((s for s in every if s.slot_id == slot_id), None)
    if target is None:
        raise NotFoundError(f"no key slot {slot_id} in this vault (see `mlvault keys ls`)")
    owner_openers = [s for s in every if s.opens == "owner" and s.kind != "damaged"]
    if target.opens == "owner" and target.kind != "damaged" and len(owner_openers) <= 1:
        raise UsageError(
            f"refusing to remove key slot {slot_id}: it is the last slot that can open the vault's "
            "owner key; add another first (keys add-passphrase, add-kms or add-recovery)"
        )
    if target.kind == "owner":
        raise UsageError(
            f"refusing to remove key slot {slot_id}: it is how the owner key opens namespace "
            f"{target.namespace or target.ring}"
        )
    keys.owner_key()  # only the owner manages slots
    backend.delete(layout.slot_key(target.ring, slot_id))
    if target.ring == layout.OWNER_RING:  # a generated recovery identity goes with its slot
        with contextlib.suppress(NotFoundError):
            backend.delete(layout.recovery_identity_key(slot_id))
    catalog.forget_slot(slot_id, target.ring, target.kind, keys.actor, keys.clock())
    return target
