"""Client-side state: what this machine remembers between commands, in one config directory.

The directory is ``$MLVAULT_CONFIG_DIR`` if set, else the platform's user config directory
(resolved once, by :meth:`ClientState.default`, at the edge). Inside it::

    catalog-pins.json    vault id → catalog URL pinned on first use      (pins.CatalogPins)
    pins.json            trust-policy admin keys and policy serials      (pins.TrustPins)
    unlock-slots.json    vault id → key slot that last opened it         (pins.SlotMemory)
    key-pins.json        vault id → commitments to its owner key, keyrings (pins.KeyPins)
    keys/NAME.key|.pub   named signing keys                              (signing_keys.SigningKeys)
    identities/NAME.id|.pub  identities: X25519 + ECDSA P-256 key pairs  (identities.Identities)

Every JSON file goes through one :class:`~vault.clientstate.jsonfile.JsonFile`: size-capped
reads, ``flock``-ed read-modify-write, atomic replace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from vault.clientstate.pins import CatalogPins, KeyPins, SlotMemory, TrustPins

if TYPE_CHECKING:
    from vault.clientstate.identities import Identities
    from vault.clientstate.signing_keys import SigningKeys

CONFIG_DIR_ENV = "MLVAULT_CONFIG_DIR"

__all__ = ["CONFIG_DIR_ENV", "ClientState", "config_dir"]


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The client's config directory: ``$MLVAULT_CONFIG_DIR`` or the platform's user config dir."""
    override = (os.environ if environ is None else environ).get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir("mlvault"))


class ClientState:
    """Everything this client keeps under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.catalog_pins = CatalogPins(self.root / "catalog-pins.json")
        self.trust_pins = TrustPins(self.root / "pins.json")
        self.slots = SlotMemory(self.root / "unlock-slots.json")
        self.key_pins = KeyPins(self.root / "key-pins.json")

    @classmethod
    def default(cls) -> ClientState:
        """The state in :func:`config_dir`."""
        return cls(config_dir())

    @property
    def keys_dir(self) -> Path:
        """Where named signing keys live."""
        return self.root / "keys"

    def signing_keys(self) -> SigningKeys:
        """The named signing keys (imports the signing stack only when asked for)."""
        from vault.clientstate.signing_keys import SigningKeys

        return SigningKeys(self.keys_dir)

    def identities(self) -> Identities:
        """The identities of this client, in ``identities/`` (imports the key stack only when asked for)."""
        from vault.clientstate.identities import Identities

        return Identities(self.root / "identities")

    def pin_catalog(self, vault_id: str, catalog_url: str) -> None:
        """Pin ``catalog_url`` for ``vault_id`` on first use; ``ConfigurationError`` on a different one."""
        self.catalog_pins.pin(vault_id, catalog_url)

    def pinned_catalog(self, vault_id: str) -> str | None:
        """The catalog URL pinned for ``vault_id``, if any (pins nothing)."""
        return self.catalog_pins.pinned(vault_id)

    def last_slot(self, vault_id: str) -> str | None:
        """The key slot id that last opened ``vault_id`` on this client."""
        return self.slots.last(vault_id)

    def remember_slot(self, vault_id: str, slot_id: str) -> None:
        """Remember the key slot that just opened ``vault_id``."""
        self.slots.remember(vault_id, slot_id)

    def pinned_owner_key(self, vault_id: str) -> str | None:
        """The owner-key commitment pinned for ``vault_id``, if any (pins nothing)."""
        return self.key_pins.owner(vault_id)

    def pinned_keyring(self, vault_id: str, ring_id: str) -> str | None:
        """The commitment pinned for keyring ``ring_id`` of ``vault_id``, if any (pins nothing)."""
        return self.key_pins.ring(vault_id, ring_id)

    def pin_owner_key(self, vault_id: str, commitment: str) -> str:
        """Pin the owner-key ``commitment`` for ``vault_id`` on first use; return the one pinned."""
        return self.key_pins.pin_owner(vault_id, commitment)

    def repin_owner_key(self, vault_id: str, commitment: str) -> None:
        """Pin the owner-key ``commitment`` for ``vault_id`` in place of the pinned one (a rotation)."""
        self.key_pins.replace_owner(vault_id, commitment)

    def pin_keyring(self, vault_id: str, ring_id: str, commitment: str) -> str:
        """Pin the ``commitment`` of keyring ``ring_id`` on first use; return the one pinned."""
        return self.key_pins.pin_ring(vault_id, ring_id, commitment)
