"""The unlocked keys of one open vault, opened on first use and kept for its lifetime.

A :class:`KeyCache` turns a passphrase source into the owner key (one Argon2id run, and
only when a key is first needed), and the owner key into namespace keyrings. Operations
that need keys receive this object, never the facade. Future slot kinds (AWS KMS, X25519
recipients) and identities plug in here: they are other ways to reach the same owner key
or keyring.

Unlocking is bounded (see :mod:`vault.keystore`): given a :class:`SlotMemory` (the client
state store), the slot that last opened this vault on this client is tried first and the
slot that opens it is remembered, so a slot planted in storage cannot go first; slots with
slow Argon2 parameters run only when the cache was made with ``allow_slow_kdf=True``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from vault import keystore
from vault.catalog import Catalog
from vault.crypto.keyring import Keyring
from vault.errors import AuthenticationError
from vault.storage import Backend

Passphrase = bytes | str | Callable[[], bytes | str] | None


class SlotMemory(Protocol):
    """Where this client remembers the key slot that last opened each vault (a ClientState)."""

    def last_slot(self, vault_id: str) -> str | None:
        """The slot id (hex) that last opened ``vault_id``, if any."""
        ...

    def remember_slot(self, vault_id: str, slot_id: str) -> None:
        """Remember that ``slot_id`` opened ``vault_id``."""
        ...


def passphrase_bytes(source: Passphrase) -> bytes:
    """The passphrase ``source`` yields, as bytes; AuthenticationError if there is none."""
    value = source() if callable(source) else source
    if value is None:
        raise AuthenticationError("a passphrase is needed: set MLVAULT_PASSPHRASE or use --passphrase-file")
    return value.encode() if isinstance(value, str) else value


class KeyCache:
    """Owner key and keyrings of one vault, unlocked lazily and cached (thread-safe)."""

    def __init__(
        self,
        backend: Backend,
        vault_id: bytes,
        passphrase: Passphrase,
        *,
        owner_key: bytes | None = None,
        slot_memory: SlotMemory | None = None,
        allow_slow_kdf: bool = False,
    ) -> None:
        self._backend = backend
        self._vault_id = vault_id
        self._passphrase = passphrase
        self._owner_key = owner_key
        self._slot_memory = slot_memory
        self._allow_slow_kdf = allow_slow_kdf
        self._keyrings: dict[str, Keyring] = {}
        self._lock = threading.RLock()

    @property
    def unlocked(self) -> bool:
        """Whether the owner key is open."""
        return self._owner_key is not None

    def owner_key(self) -> bytes:
        """The owner key, unlocking it with the passphrase on first use."""
        with self._lock:
            if self._owner_key is None:
                self._owner_key = self._unlock(passphrase_bytes(self._passphrase))
            return self._owner_key

    def _unlock(self, secret: bytes) -> bytes:
        vault_id = self._vault_id.hex()
        memory = self._slot_memory
        preferred = memory.last_slot(vault_id) if memory is not None else None
        opened = keystore.open_owner(
            self._backend, self._vault_id, secret, preferred=preferred, allow_slow_kdf=self._allow_slow_kdf
        )
        if memory is not None and opened.slot_id != preferred:
            memory.remember_slot(vault_id, opened.slot_id)
        return opened.owner_key

    def keyring(self, ring_id: str) -> Keyring:
        """The keyring ``ring_id`` (hex), opened through its owner slot on first use."""
        with self._lock:
            if ring_id not in self._keyrings:
                self._keyrings[ring_id] = keystore.open_keyring(
                    self._backend, self._vault_id, bytes.fromhex(ring_id), self.owner_key()
                )
            return self._keyrings[ring_id]

    def keyring_for_namespace(self, catalog: Catalog, namespace: str) -> Keyring:
        """The keyring of ``namespace``, created (and registered in the catalog) on first use."""
        ring_id = catalog.keyring_for(namespace)
        if ring_id is not None:
            return self.keyring(ring_id)
        keyring, slot_key = keystore.create_keyring(self._backend, self._vault_id, self.owner_key())
        winner = catalog.add_keyring(namespace, keyring.ring_id.hex())
        if winner != keyring.ring_id.hex():
            self._backend.delete(slot_key)  # another push created it first; use theirs
            return self.keyring(winner)
        with self._lock:
            self._keyrings[winner] = keyring
        return keyring
