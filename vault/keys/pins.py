"""Key pins: commitments to a vault's owner key and keyrings, pinned on first use, checked after.

A storage writer can plant an x25519 slot (or an aws-kms slot under a KMS key the user may
decrypt with) that opens for a user and wraps a key of its choosing. So each client pins a
commitment to the owner key and to each keyring the first time it sees them, whichever source
opened them, and refuses a different key later (:class:`Pins` says yes or no; the key cache
skips a refused slot for the next one and raises :meth:`Pins.refusal` when none is accepted).

**Owner-key rotation.** ``rekey`` rotates the owner key when a slot that could open it was
removed (:mod:`vault.keys.owner_rotation`). The rotating client re-pins at once
(:meth:`Pins.repin_owner`): the new key came from its own rotation. Another client meets an
owner key it did not pin; it accepts it (and re-pins) only when

- a **passphrase** slot opened it: nobody can plant a slot that opens with the client's
  passphrase without knowing that passphrase, and
- every keyring this client pinned opens through its owner slot under the new key, to the
  keyring pinned (keyring owner slots are authenticated by the owner key).

An owner key that an identity (x25519) or KMS opened is never accepted this way: anyone can
write an x25519 slot, and an aws-kms slot may name a KMS key the attacker controls. That
refusal says the owner key was rotated (when the catalog says so) and how to accept the new
one: open the vault once with its passphrase, or remove the vault's ``owner`` entry from
``key-pins.json`` after checking with the vault's owner.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol, runtime_checkable

from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError

ROTATED_HINT = (
    "; this vault's owner key was rotated by `rekey`: if that is why, open the vault once with its "
    'passphrase to accept the new owner key, or remove the vault\'s "owner" entry from key-pins.json '
    "in the client config dir after checking with the vault's owner"
)


def owner_commitment(vault_id: bytes, owner_key: bytes) -> str:
    """SHA-256(label ‖ vault id ‖ owner key), hex: what a client pins for a vault's owner key."""
    return hashlib.sha256(b"mlvault/commit/owner/v1" + vault_id + owner_key).hexdigest()


def keyring_commitment(vault_id: bytes, keyring: Keyring) -> str:
    """SHA-256(label ‖ vault id ‖ ring id ‖ id key), hex: what a client pins for a keyring. Not the
    DEKs: a rekey appends one and ``--reencrypt`` retires the old ones, but never changes the id key."""
    material = keyring.ring_id + keyring.id_key
    return hashlib.sha256(b"mlvault/commit/keyring/v1" + vault_id + material).hexdigest()


@runtime_checkable
class KeyPinStore(Protocol):
    """Where this client pins commitments to each vault's keys on first use (a ClientState)."""

    def pinned_keyring(self, vault_id: str, ring_id: str) -> str | None:
        """The commitment pinned for keyring ``ring_id``, if any (pins nothing)."""
        ...

    def pin_owner_key(self, vault_id: str, commitment: str) -> str:
        """Pin ``commitment`` for the owner key unless one is pinned; return the one pinned."""
        ...

    def repin_owner_key(self, vault_id: str, commitment: str) -> None:
        """Pin ``commitment`` for the owner key in place of the one pinned (a rotation)."""
        ...

    def pin_keyring(self, vault_id: str, ring_id: str, commitment: str) -> str:
        """Pin ``commitment`` for keyring ``ring_id`` unless one is pinned; return the one pinned."""
        ...


class Pins:
    """The pin checks of one vault; without a store every key is accepted (nothing pinned)."""

    def __init__(self, store: KeyPinStore | None, vault_id: bytes) -> None:
        self._store = store
        self._vault_id = vault_id

    def owner(self, owner_key: bytes) -> bool:
        """Whether ``owner_key`` is the one pinned for this vault (the first one seen is pinned)."""
        if self._store is None:
            return True
        commitment = owner_commitment(self._vault_id, owner_key)
        return hmac.compare_digest(self._store.pin_owner_key(self._vault_id.hex(), commitment), commitment)

    def keyring(self, keyring: Keyring) -> bool:
        """Whether ``keyring`` is the one pinned for its ring id (the first one seen is pinned)."""
        if self._store is None:
            return True
        commitment = keyring_commitment(self._vault_id, keyring)
        pinned = self._store.pin_keyring(self._vault_id.hex(), keyring.ring_id.hex(), commitment)
        return hmac.compare_digest(pinned, commitment)

    def pinned_keyring(self, ring_id: str) -> str | None:
        """The commitment pinned for keyring ``ring_id``, if any (pins nothing)."""
        return None if self._store is None else self._store.pinned_keyring(self._vault_id.hex(), ring_id)

    def repin_owner(self, owner_key: bytes) -> None:
        """Pin ``owner_key`` in place of the pinned one: only after a rotation this client trusts."""
        if self._store is not None:
            self._store.repin_owner_key(self._vault_id.hex(), owner_commitment(self._vault_id, owner_key))

    @staticmethod
    def refusal(slot_ids: list[str], held: str, *, rotated: bool = False) -> IntegrityError:
        """The refusal of a key other than the pinned one; ``held`` says what the slots hold."""
        which = (
            f"key slot {slot_ids[0]} holds" if len(slot_ids) == 1 else f"key slots {', '.join(slot_ids)} hold"
        )
        hint = ROTATED_HINT if rotated else ""
        refused = "that is not the one this client pinned for this vault (a planted key slot?)"
        return IntegrityError(f"{which} {held} {refused}{hint}")
