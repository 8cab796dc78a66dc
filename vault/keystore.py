"""Opening and creating key slots in storage.

Two levels, so that one passphrase opens every namespace without one Argon2 run per
namespace:

* the vault **owner key** (32 random bytes) sits in ``keys/owner/<slot>`` wrapped by
  passphrase slots (Argon2id). ``init`` creates the first one.
* each top-level namespace has a **keyring** (id key + DEKs) in ``keys/<ring id>/<slot>``,
  wrapped by an ``owner`` slot whose KEK is HKDF(owner key, slot id). Grants to other
  principals will add slots of their own kind to a keyring, never touching data.

Anyone who can write to storage can plant owner slots, so unlocking is bounded (issue 8,
items 11 and 14). The slot that last opened the vault on this client is tried first, then
the others cheapest first. A slot whose Argon2 parameters are "slow" (more than 4× the
default's memory or work, :attr:`KdfParams.is_slow`) is skipped unless the caller allows slow
KDFs, and one unlock stops spending Argon2 work after :data:`kdf.UNLOCK_BUDGET`. Slots that do
not parse, fail their checksum, belong to another vault or are not passphrase slots are
counted as damaged. When nothing opens, the error names what was skipped and why, so a
damaged or planted slot is never reported as only "wrong passphrase".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vault import layout
from vault.crypto import aead
from vault.crypto.kdf import RFC9106_LOW_MEMORY, SALT_SIZE, SLOW_FACTOR, UNLOCK_BUDGET, KdfParams, stretch
from vault.crypto.keyring import Keyring, new_id
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DecryptionError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from vault.formats import keyring as keyring_format
from vault.formats import keyslot
from vault.storage import Backend

# The format's cap: a passphrase slot is ~150 bytes, but KMS slots are ~8 KB and keyring slots
# grow with epochs; anything bigger was not written by mlvault.
MAX_SLOT_SIZE = keyslot.MAX_SLOT_SIZE
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


def refuse_slow_kdf(kdf: KdfParams, *, allow_slow_kdf: bool = False) -> KdfParams:
    """``kdf`` if it is within the caps and not slow (or slow is allowed); else UsageError."""
    kdf.check()
    if kdf.is_slow and not allow_slow_kdf:
        raise UsageError(
            f"Argon2 parameters {kdf.describe()} cost more than {SLOW_FACTOR}× the default "
            f"({RFC9106_LOW_MEMORY.describe()}): every unlock would need --allow-slow-kdf; "
            "pass --allow-slow-kdf to use them anyway"
        )
    return kdf


def create_owner(
    backend: Backend, vault_id: bytes, passphrase: bytes, kdf: KdfParams, *, allow_slow_kdf: bool = False
) -> bytes:
    """Create the owner key and its first passphrase slot; return the owner key."""
    owner_key = os.urandom(32)
    add_passphrase_slot(backend, vault_id, owner_key, passphrase, kdf, allow_slow_kdf=allow_slow_kdf)
    return owner_key


def add_passphrase_slot(
    backend: Backend,
    vault_id: bytes,
    owner_key: bytes,
    passphrase: bytes,
    kdf: KdfParams,
    *,
    allow_slow_kdf: bool = False,
) -> str:
    """Wrap ``owner_key`` under another passphrase; returns the slot key."""
    refuse_slow_kdf(kdf, allow_slow_kdf=allow_slow_kdf)
    slot_id, salt = new_id(), os.urandom(SALT_SIZE)
    kek = stretch(passphrase, salt, kdf)
    blob = keyslot.encode(
        keyslot.KIND_PASSPHRASE, vault_id, b"\0" * 16, slot_id, kek, owner_key, kdf=kdf, salt=salt
    )
    key = layout.slot_key(layout.OWNER_RING, slot_id)
    backend.put(key, blob)
    return key


@dataclass(frozen=True)
class OpenedOwner:
    """The owner key, and the id (hex) of the passphrase slot that opened it."""

    owner_key: bytes
    slot_id: str


@dataclass
class _Attempt:
    """What one unlock did with each slot, for the error when none opens."""

    tried: int = 0
    damaged: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)
    over_count: list[str] = field(default_factory=list)


def open_owner(
    backend: Backend,
    vault_id: bytes,
    passphrase: bytes,
    *,
    preferred: str | None = None,
    allow_slow_kdf: bool = False,
    budget: int = UNLOCK_BUDGET,
) -> OpenedOwner:
    """Open the owner key with ``passphrase``, trying slot ``preferred`` (hex id) first.

    At most ``budget`` Argon2 work (:attr:`KdfParams.work`) is spent, unless ``allow_slow_kdf``.
    AuthenticationError when no slot opens, naming the slots that were skipped as damaged,
    slow or over the budget.
    """
    keys = sorted(backend.list(layout.slot_prefix(layout.OWNER_RING)))
    if not keys:
        raise NotFoundError("the vault has no passphrase key slot; it cannot be opened with a passphrase")
    attempt = _Attempt()
    slots = _passphrase_slots(backend, vault_id, keys, attempt)
    slots.sort(key=lambda item: (item[0] != preferred, _kdf(item[1]).work, item[0]))
    spent = 0
    for slot_id, slot in slots:
        kdf = _kdf(slot)
        if not allow_slow_kdf and kdf.is_slow:
            attempt.slow.append(slot_id)
        elif not allow_slow_kdf and spent + kdf.work > budget:
            attempt.over_budget.append(slot_id)
        elif attempt.tried >= MAX_PASSPHRASE_SLOTS:
            attempt.over_count.append(slot_id)  # cheap planted slots must not add up either
        else:
            attempt.tried += 1
            spent += kdf.work
            assert slot.salt is not None
            try:
                secret = keyslot.unwrap(slot, stretch(passphrase, slot.salt, kdf))
            except DecryptionError:
                continue
            if len(secret) == 32:
                return OpenedOwner(secret, slot_id)
            attempt.damaged.append(slot_id)
    raise AuthenticationError(_no_slot_opens(attempt))


def _kdf(slot: keyslot.KeySlot) -> KdfParams:
    assert slot.kdf is not None  # decode sets it on every passphrase slot
    return slot.kdf


def _passphrase_slots(
    backend: Backend, vault_id: bytes, keys: list[str], attempt: _Attempt
) -> list[tuple[str, keyslot.KeySlot]]:
    """The passphrase slots of this vault among ``keys``; the rest are counted as damaged."""
    found = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        try:
            slot = keyslot.decode(backend.get(key, max_size=MAX_SLOT_SIZE))
        except NotFoundError:
            continue  # removed since the listing
        except (IntegrityError, ConfigurationError):
            attempt.damaged.append(name)  # malformed, oversized, not a file, checksum, caps
            continue
        if slot.kind in (keyslot.KIND_X25519, keyslot.KIND_AWS_KMS) and slot.vault_id == vault_id:
            continue  # opened by an identity or KMS, not by a passphrase (vault.keys)
        if (
            slot.kind != keyslot.KIND_PASSPHRASE
            or slot.vault_id != vault_id
            or slot.slot_id.hex() != name  # a slot is stored under its own id
        ):
            attempt.damaged.append(name)
            continue
        found.append((name, slot))
    return found


def _no_slot_opens(attempt: _Attempt) -> str:
    if attempt.tried:
        tried = "1 key slot" if attempt.tried == 1 else f"{attempt.tried} key slots"
        parts = [f"wrong passphrase: it opens none of the {tried} tried"]
    else:
        parts = ["cannot unlock: no key slot of this vault could be tried with the passphrase"]
    if attempt.damaged:
        parts.append(
            f"{_count(attempt.damaged, 'is', 'are')} damaged or "
            f"{'was' if len(attempt.damaged) == 1 else 'were'} not written by mlvault "
            f"({_ids(attempt.damaged)})"
        )
    if attempt.slow:
        its, it = ("its", "it") if len(attempt.slow) == 1 else ("their", "them")
        parts.append(
            f"{_count(attempt.slow, 'was', 'were')} skipped because {its} Argon2 parameters cost more than "
            f"{SLOW_FACTOR}× the default ({_ids(attempt.slow)}): pass --allow-slow-kdf to try {it}"
        )
    if attempt.over_budget:
        it = "it" if len(attempt.over_budget) == 1 else "them"
        parts.append(
            f"{_count(attempt.over_budget, 'was', 'were')} not tried because this unlock's Argon2 budget "
            f"was spent ({_ids(attempt.over_budget)}): pass --allow-slow-kdf to try {it}"
        )
    if attempt.over_count:
        parts.append(
            f"{_count(attempt.over_count, 'was', 'were')} not tried: at most {MAX_PASSPHRASE_SLOTS} "
            f"slots are tried per unlock ({_ids(attempt.over_count)})"
        )
    return "; ".join(parts)


def _count(names: list[str], one: str, many: str) -> str:
    return f"1 key slot {one}" if len(names) == 1 else f"{len(names)} key slots {many}"


def _ids(names: list[str], shown: int = 4) -> str:
    """Slot ids for a message; a planted name is quoted, never printed raw."""
    out = [n if layout.is_id(n) else repr(n[:40]) for n in names[:shown]]
    if len(names) > shown:
        out.append(f"and {len(names) - shown} more")
    return ", ".join(out)


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


def write_owner_slot(backend: Backend, vault_id: bytes, owner_key: bytes, keyring: Keyring) -> str:
    """Wrap ``keyring`` (every epoch it holds) in a new owner slot; returns the slot id (hex)."""
    slot_id = new_id()
    kek = aead.derive_key(owner_key, slot_id, keyslot.OWNER_INFO)
    blob = keyslot.encode(
        keyslot.KIND_OWNER, vault_id, keyring.ring_id, slot_id, kek, keyring_format.encode(keyring)
    )
    backend.put(layout.slot_key(keyring.ring_id.hex(), slot_id), blob)
    return slot_id.hex()


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
