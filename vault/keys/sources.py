"""What an unlock may use, how it went, and the interfaces a key cache talks to.

:class:`Unlock` names the sources (identity, KMS, passphrase; the order is
:mod:`vault.keycache`'s), :class:`OpenedBy` records which one opened the owner key (an owner-key
rotation rewraps that passphrase), and two narrow protocols stand for the client state
(:class:`SlotMemory`) and the catalog (:class:`SlotLedger`), so the key layer never sees either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from vault.errors import AuthenticationError

if TYPE_CHECKING:
    from vault.catalog.keyslots import KeyEvent
    from vault.clientstate.identities import Identity
    from vault.keys.kms import KmsKeys

Passphrase = bytes | str | Callable[[], bytes | str] | None
IdentitySource = Callable[[], "Identity"]
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


class SlotMemory(Protocol):
    """Where this client remembers the key slot that last opened each vault (a ClientState)."""

    def last_slot(self, vault_id: str) -> str | None:
        """The slot id (hex) that last opened ``vault_id``, if any."""
        ...

    def remember_slot(self, vault_id: str, slot_id: str) -> None:
        """Remember that ``slot_id`` opened ``vault_id``."""
        ...


class SlotLedger(Protocol):
    """What the key cache tells the catalog: slots that opened, keyring slots it made."""

    def touch_slot(self, slot_id: str, at: dt.datetime) -> None:
        """Stamp ``slot_id`` as used at ``at`` (best effort)."""
        ...

    def record_slot(
        self,
        slot_id: str,
        ring: str,
        kind: str,
        label: str | None,
        actor: str,
        at: dt.datetime,
        *,
        recipient_public: bytes | None = None,
    ) -> None:
        """Record a new slot and its key event."""
        ...

    def all_keyrings(self) -> dict[str, str]:
        """namespace → ring id."""
        ...

    def key_events(self) -> Sequence[KeyEvent]:
        """Every key event, oldest first."""
        ...


@dataclass(frozen=True)
class OpenedBy:
    """How this cache opened the owner key: ``passphrase``, ``identity``, ``kms`` or ``given``."""

    source: str
    slot_id: str | None = None
    passphrase: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Unlock:
    """The sources an unlock may use; see the module docstring for the order."""

    passphrase: Passphrase = None
    passphrase_is_prompt: bool = False  # the passphrase source would only prompt (nothing given)
    identity: IdentitySource | None = None
    kms: KmsKeys | None = None
    use_kms: bool = False  # --kms: use KMS even though another source was given
    allow_slow_kdf: bool = False

    @property
    def explicit(self) -> bool:
        """Whether the user named a source (then prompting and automatic KMS are off)."""
        return (
            self.identity is not None
            or self.use_kms
            or (self.passphrase is not None and not self.passphrase_is_prompt)
        )


def passphrase_bytes(source: Passphrase) -> bytes:
    """The passphrase ``source`` yields, as bytes; AuthenticationError if there is none."""
    value = source() if callable(source) else source
    if value is None:
        raise AuthenticationError("a passphrase is needed: set MLVAULT_PASSPHRASE or use --passphrase-file")
    return value.encode() if isinstance(value, str) else value
