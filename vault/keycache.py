"""The unlocked keys of one open vault, opened on first use and kept for its lifetime.

A :class:`KeyCache` reaches the owner key and the namespace keyrings through the sources an
:class:`Unlock` names, in an order that never hangs cron or CI on a prompt:

1. an **identity** (``--identity`` / ``MLVAULT_IDENTITY``): an x25519 slot made for it on a
   keyring opens that keyring directly (no owner key needed); one on the owner ring (a recovery
   or owner grant) opens the owner key and so everything;
2. **AWS KMS**: an aws-kms slot on the owner ring that the ambient credentials can decrypt, when
   asked for (``use_kms``) or automatically when no other source was given and such a slot
   exists (bounded: :data:`vault.keys.kms.DEADLINE`);
3. the **passphrase** (file, environment, prompt): bounded Argon2 unlock (:mod:`vault.keystore`),
   the slot this client remembers first. A passphrase that would only be prompted for is used
   only when nothing else was given.

A keyring is opened by the identity's slot on it, else by the owner key; with neither, the error
names the namespace ("no key slot you can open for namespace X", exit 4), raised before a push or
pull fetches any data. The owner key is unlocked at most once per cache: a failure is remembered,
so no slot is tried with a KDF twice. Slots that open are stamped "last used" in the catalog
(best effort, with the injected clock).

**Key pins** (:mod:`vault.keys.pins`). A storage writer can plant an x25519 (or aws-kms) slot
that opens for a user and wraps a key of its choosing, so the client pins commitments to the owner
key and each keyring on first sight, whichever source opened them, and refuses another key later
(IntegrityError), skipping that slot for the next; a keyring's authenticated owner slot goes first.
A passphrase that opens an owner key other than the pinned one is accepted as a rotation when
every pinned keyring authenticates under it (see :mod:`vault.keys.pins`).

**After a rekey.** The cache remembers how the owner key was opened (:class:`OpenedBy`: the
source, the slot, and the passphrase bytes), which an owner-key rotation needs to rewrap that
passphrase; :meth:`KeyCache.replace_owner_key` and :meth:`KeyCache.replace_keyring` swap in the
keys a rekey made, so the same process goes on with the new ones.

**On opening.** ``on_owner_key`` is called once with the owner key when a source opens it (not when
the key was handed in): :mod:`vault.bootstrap` pins the sealed owner identity there
(:mod:`vault.keys.owner_identity`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, TypeVar

from vault import keystore, layout
from vault.crypto import aead
from vault.crypto.keyring import Keyring
from vault.errors import AuthenticationError, IntegrityError, MlvaultError, UsageError
from vault.formats import keyring as keyring_format
from vault.formats import keyslot
from vault.keys import slots
from vault.keys.pins import KeyPinStore as KeyPinStore
from vault.keys.pins import Pins
from vault.keys.pins import keyring_commitment as keyring_commitment
from vault.keys.pins import owner_commitment as owner_commitment
from vault.keys.sources import Clock as Clock
from vault.keys.sources import IdentitySource as IdentitySource
from vault.keys.sources import OpenedBy as OpenedBy
from vault.keys.sources import Passphrase as Passphrase
from vault.keys.sources import SlotLedger, SlotMemory
from vault.keys.sources import Unlock as Unlock
from vault.keys.sources import passphrase_bytes as passphrase_bytes
from vault.keys.sources import utc_now as utc_now
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.clientstate.identities import Identity
    from vault.keys.kms import KmsKeys

T = TypeVar("T")


class KeyCache:
    """Owner key and keyrings of one vault, unlocked lazily and cached (thread-safe)."""

    def __init__(
        self,
        backend: Backend,
        vault_id: bytes,
        unlock: Unlock | Passphrase = None,
        *,
        owner_key: bytes | None = None,
        opened_by: OpenedBy | None = None,
        slot_memory: SlotMemory | None = None,
        key_pins: KeyPinStore | None = None,
        ledger: SlotLedger | None = None,
        actor: str = "mlvault",
        clock: Clock = utc_now,
        on_owner_key: Callable[[bytes], None] | None = None,
        admin_fingerprints: Callable[[], Collection[str]] | None = None,
    ) -> None:
        if key_pins is None and isinstance(slot_memory, KeyPinStore):
            key_pins = slot_memory  # a ClientState is both
        self._pins = Pins(key_pins, vault_id)
        self._backend = backend
        self._vault_id = vault_id
        self.sources = unlock if isinstance(unlock, Unlock) else Unlock(passphrase=unlock)
        self._owner_key = owner_key
        self._opened = opened_by or (OpenedBy("given") if owner_key is not None else None)
        self._owner_error: MlvaultError | None = None
        self._identity: Identity | None = None
        self._slot_memory = slot_memory
        self._ledger = ledger
        self.actor = actor
        self.clock = clock
        self._keyrings: dict[str, Keyring] = {}
        self._lock = threading.RLock()
        self._on_owner_key = on_owner_key
        self._admin_fingerprints = admin_fingerprints

    @property
    def vault_id(self) -> bytes:
        """The vault these keys belong to."""
        return self._vault_id

    @property
    def opened_by(self) -> OpenedBy | None:
        """How the owner key was opened (None until it is)."""
        return self._opened

    @property
    def unlocked(self) -> bool:
        """Whether the owner key is open."""
        return self._owner_key is not None

    def unlock(self) -> None:
        """Fail fast: load the identity if one was given, else open the owner key."""
        if self.sources.identity is not None:
            self.identity()
        else:
            self.owner_key()

    def identity(self) -> Identity | None:
        """The identity given to unlock with (loaded, and its passphrase read, on first use)."""
        with self._lock:
            if self._identity is None and self.sources.identity is not None:
                self._identity = self.sources.identity()
            return self._identity

    def admin_fingerprints(self) -> Collection[str]:
        """The root admin keys this client pinned for the vault (trust and access policy), if any."""
        return () if self._admin_fingerprints is None else self._admin_fingerprints()

    def kms(self) -> KmsKeys:
        """The KMS client to make or open aws-kms slots with."""
        if self.sources.kms is None:
            from vault.keys.kms import AwsKms

            return AwsKms()
        return self.sources.kms

    def owner_key(self) -> bytes:
        """The owner key, unlocked on first use from the sources in order; a failure is remembered."""
        with self._lock:
            if self._owner_key is None:
                if self._owner_error is not None:
                    raise self._owner_error
                try:
                    self._owner_key = self._open_owner()
                except MlvaultError as exc:
                    self._owner_error = exc
                    raise
                if self._on_owner_key is not None:
                    self._on_owner_key(self._owner_key)  # e.g. pin the owner identity as root admin
            return self._owner_key

    def _open_owner(self) -> bytes:
        src = self.sources
        stored = slots.scan_ring(self._backend, self._vault_id, layout.OWNER_RING)
        failures: list[MlvaultError] = []
        identity = self.identity()
        if identity is not None:
            try:
                opened = self._first_pinned(
                    stored,
                    lambda rest: slots.open_for_identity(rest, identity, slots.owner_key_from),
                    self._pins.owner,
                )
                if opened is not None:
                    self._opened = OpenedBy("identity", opened[0])
                    return opened[1]
                failures.append(
                    AuthenticationError(f"identity {identity.name} opens no owner key slot of this vault")
                )
            except IntegrityError as exc:
                failures.append(exc)
        if src.use_kms or (not src.explicit and any(s.kind == "aws-kms" for s in stored)):
            from vault.keys.kms import MAX_KMS_SLOTS_TRIED, open_with_kms

            kms = self.kms()
            try:
                opened = self._first_pinned(
                    stored, lambda rest: open_with_kms(rest, kms), self._pins.owner, MAX_KMS_SLOTS_TRIED
                )
            except MlvaultError as exc:
                failures.append(exc)
            else:
                assert opened is not None  # open_with_kms raises when nothing opens
                self._opened = OpenedBy("kms", opened[0])
                return opened[1]
        if src.passphrase is not None and (not src.passphrase_is_prompt or not src.explicit):
            try:
                return self._open_with_passphrase(passphrase_bytes(src.passphrase))
            except MlvaultError as exc:
                failures.append(exc)
        if not failures:
            raise AuthenticationError(
                "a passphrase is needed: set MLVAULT_PASSPHRASE or use --passphrase-file "
                "(or open the vault with --identity or --kms)"
            )
        first = failures[0]
        if len(failures) == 1:
            raise first
        refusal = any(isinstance(f, IntegrityError) for f in failures)  # a planted slot: say so (exit 5)
        raise (IntegrityError if refusal else type(first))("; ".join(str(f) for f in failures))

    def _open_with_passphrase(self, secret: bytes) -> bytes:
        vault_id = self._vault_id.hex()
        memory = self._slot_memory
        preferred = memory.last_slot(vault_id) if memory is not None else None
        opened = keystore.open_owner(
            self._backend,
            self._vault_id,
            secret,
            preferred=preferred,
            allow_slow_kdf=self.sources.allow_slow_kdf,
        )
        if not self._pins.owner(opened.owner_key):
            # Nobody can plant a slot this passphrase opens: either the owner key was rotated, or
            # the pin came from a planted slot.
            if not self._rotation_accepted(opened.owner_key):
                raise self._refusal([opened.slot_id], None)
            self._pins.repin_owner(opened.owner_key)
        if memory is not None and opened.slot_id != preferred:
            memory.remember_slot(vault_id, opened.slot_id)
        self._touch(opened.slot_id)
        self._opened = OpenedBy("passphrase", opened.slot_id, secret)
        return opened.owner_key

    def _rotation_accepted(self, owner_key: bytes) -> bool:
        """Whether every keyring this client pinned opens, to the pinned keyring, under ``owner_key``."""
        rings = self._ledger.all_keyrings().values() if self._ledger is not None else ()
        for ring_id in rings:
            if self._pins.pinned_keyring(ring_id) is None:
                continue
            try:
                self._keyring_as_owner(ring_id, owner_key)
            except (AuthenticationError, IntegrityError):
                return False
        return True

    def replace_owner_key(self, owner_key: bytes, opened_by: OpenedBy) -> None:
        """Use ``owner_key`` from now on (this process rotated it): re-pinned, keyrings forgotten."""
        with self._lock:
            self._pins.repin_owner(owner_key)
            if self._slot_memory is not None and opened_by.source == "passphrase" and opened_by.slot_id:
                self._slot_memory.remember_slot(self._vault_id.hex(), opened_by.slot_id)
            self._owner_key, self._opened, self._owner_error = owner_key, opened_by, None
            self._keyrings.clear()

    def replace_keyring(self, keyring: Keyring) -> None:
        """Use ``keyring`` (a rekey's, same id key) from now on in place of the cached one."""
        with self._lock:
            if not self._pins.keyring(keyring):
                raise self._refusal(["(new)"], keyring.ring_id.hex())
            self._keyrings[keyring.ring_id.hex()] = keyring

    def keyring(self, ring_id: str) -> Keyring:
        """The keyring ``ring_id`` (hex): by the identity's slot on it, else by the owner key."""
        with self._lock:
            if ring_id not in self._keyrings:
                self._keyrings[ring_id] = self._open_keyring(ring_id)
            return self._keyrings[ring_id]

    def _open_keyring(self, ring_id: str) -> Keyring:
        identity = self.identity()
        if identity is None:
            return self._keyring_as_owner(ring_id, self.owner_key())
        src = self.sources
        given = src.passphrase is not None and not src.passphrase_is_prompt
        owner_at_hand = self._owner_key is not None or (given and self._owner_error is None)
        if owner_at_hand and self._pins.pinned_keyring(ring_id) is None:
            # First use: pin the keyring of the owner slot (authenticated by the owner key),
            # not one an x25519 slot, which anyone can write, might wrap.
            with contextlib.suppress(AuthenticationError, IntegrityError):
                return self._keyring_as_owner(ring_id, self.owner_key())
        refusal: IntegrityError | None = None
        try:
            opened = self._first_pinned(
                slots.scan_ring(self._backend, self._vault_id, ring_id),
                lambda rest: slots.open_for_identity(rest, identity, slots.keyring_for(ring_id)),
                self._pins.keyring,
                ring_id=ring_id,
            )
            if opened is not None:
                return opened[1]
        except IntegrityError as exc:
            refusal = exc
        try:
            return self._keyring_as_owner(ring_id, self.owner_key())
        except AuthenticationError as exc:
            if refusal is not None:
                raise refusal from exc
            raise AuthenticationError(
                f"no key slot you can open for namespace {self._namespace_of(ring_id)}: identity "
                f"{identity.name} has no slot on its keyring ({exc})"
            ) from exc

    def _keyring_as_owner(self, ring_id: str, owner_key: bytes) -> Keyring:
        """Keyring ``ring_id`` from its owner slot (only the owner key makes those)."""
        ring, refused = bytes.fromhex(ring_id), []
        for item in slots.scan_ring(self._backend, self._vault_id, ring_id):
            if item.slot is None or item.slot.kind != keyslot.KIND_OWNER:
                continue
            kek = aead.derive_key(owner_key, item.slot.slot_id, keyslot.OWNER_INFO)
            try:
                keyring = keyring_format.decode(keyslot.unwrap(item.slot, kek), ring)
            except IntegrityError:  # DecryptionError too: not wrapped by this owner key, or damaged
                continue
            if self._pins.keyring(keyring):
                return keyring
            refused.append(item.slot_id)
        if refused:
            raise self._refusal(refused, ring_id)
        raise AuthenticationError(f"no key slot for keyring {ring_id} opens with this vault's owner key")

    def _first_pinned(
        self,
        stored: list[slots.StoredSlot],
        open_first: Callable[[list[slots.StoredSlot]], tuple[str, T] | None],
        pinned: Callable[[T], bool],
        limit: int = slots.MAX_IDENTITY_TRIES,
        ring_id: str | None = None,
    ) -> tuple[str, T] | None:
        """(slot id, key) of the first slot ``open_first`` opens that ``pinned`` accepts (stamped).

        A refused slot is skipped, so a planted one cannot hide a genuine one; when none is
        accepted after a refusal (or ``limit`` refusals), the refusal is raised (IntegrityError).
        """
        rest, refused = stored, list[str]()
        while len(refused) < limit:
            try:
                opened = open_first(rest)
            except MlvaultError:
                if not refused:
                    raise
                break
            if opened is None:
                break
            if pinned(opened[1]):
                self._touch(opened[0])
                return opened
            refused.append(opened[0])
            rest = rest[[s.slot_id for s in rest].index(opened[0]) + 1 :]
        if refused:
            raise self._refusal(refused, ring_id)
        return None

    def _refusal(self, slot_ids: list[str], ring_id: str | None) -> IntegrityError:
        """The refusal of keys pinned otherwise: the owner key (``ring_id`` None) or a keyring."""
        if ring_id is not None:
            return Pins.refusal(slot_ids, f"a keyring for namespace {self._namespace_of(ring_id)}")
        events = self._ledger.key_events() if self._ledger is not None else ()
        rotated = any(e.action == "rekey" and e.ring == layout.OWNER_RING for e in events)
        return Pins.refusal(slot_ids, "an owner key", rotated=rotated)

    def _namespace_of(self, ring_id: str) -> str:
        names = self._ledger.all_keyrings() if self._ledger is not None else {}
        return next((ns for ns, ring in names.items() if ring == ring_id), f"of keyring {ring_id}")

    def keyring_for_namespace(self, catalog: Catalog, namespace: str) -> Keyring:
        """The keyring of ``namespace``, created (and registered in the catalog) on first use.

        A deeper namespace (``team/secret``) has a keyring only if ``namespace create --own-keyring``
        made one; :func:`vault.keys.subtrees.keyring_for_namespace` finds it through its owner-signed
        record, never through the catalog alone; it is refused here.
        """
        if "/" in namespace:  # never from the catalog alone, never created here
            raise UsageError(f"{namespace} is not a top-level namespace (see vault.keys.subtrees)")
        ring_id = catalog.keyring_for(namespace)
        if ring_id is not None:
            return self.keyring(ring_id)
        try:
            owner_key = self.owner_key()
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"no key slot you can open for namespace {namespace}: it has no keyring yet, and creating "
                f"one needs the vault owner key ({exc})"
            ) from exc
        keyring, slot_key = keystore.create_keyring(self._backend, self._vault_id, owner_key)
        winner = catalog.add_keyring(namespace, keyring.ring_id.hex())
        if winner != keyring.ring_id.hex():
            self._backend.delete(slot_key)  # another push created it first; use theirs
            return self.keyring(winner)
        catalog.record_slot(slot_key.rsplit("/", 1)[-1], winner, "owner", None, self.actor, self.clock())
        self._pins.keyring(keyring)  # ours, new: pinned before any x25519 slot can be planted on it
        with self._lock:
            self._keyrings[winner] = keyring
        return keyring

    def _touch(self, slot_id: str) -> None:
        if self._ledger is not None:
            self._ledger.touch_slot(slot_id, self.clock())
