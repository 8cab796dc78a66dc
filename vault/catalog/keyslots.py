"""Key slot records and key events: what the catalog knows about the key slots in storage.

A key slot itself lives in storage (``keys/<ring>/<slot>``) and carries nothing a user chose.
Its label, who made it and when, and when it last opened the vault are kept here, so storage
never holds names; a slot without a record is listed with none of them, a record without a
slot is ignored. ``key_events`` is the append-only history of slot additions, removals and
rekeys, which the audit log will take over.

Times are passed in by the caller (its injected clock), never read here. Every value read back
is checked (:mod:`vault.catalog.values`): a hostile row is an ``IntegrityError`` naming it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update

from vault import layout
from vault.catalog import values
from vault.catalog.engine import Aggregate
from vault.catalog.schema import key_events, key_slots
from vault.errors import MlvaultError

SLOT_KINDS = frozenset({"passphrase", "owner", "x25519", "aws-kms"})
EVENT_KINDS = SLOT_KINDS | {"damaged"}  # a damaged slot can be removed, and its removal logged
ACTIONS = frozenset({"add", "remove", "rekey"})
MAX_LABEL = 255
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SlotRecord:
    """The catalog's record of one key slot."""

    slot_id: str
    ring: str
    kind: str
    label: str | None
    created_at: dt.datetime
    created_by: str
    last_used_at: dt.datetime | None
    recipient_public: bytes | None = None  # x25519: the raw public key a rekey rewraps to


@dataclass(frozen=True)
class KeyEvent:
    """One addition, removal or rekey of a key slot."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    slot_id: str
    ring: str
    kind: str
    label: str | None


def check_label(label: str | None) -> str | None:
    """``label`` if it can label a slot (printable, at most 255 characters); else ValueError."""
    if label is not None and (not label or len(label) > MAX_LABEL or not label.isprintable()):
        raise ValueError(f"a slot label is 1..{MAX_LABEL} printable characters")
    return label


class KeySlotIndex(Aggregate):
    """Slot records and key events."""

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
        """Record a new slot and its ``add`` event, in one transaction.

        ``recipient_public`` (x25519 slots) is kept so a rekey can wrap the new keyring to the same
        recipient: the slot itself stores only the recipient's fingerprint.
        """
        row = {"slot_id": slot_id, "ring": ring, "kind": kind, "label": check_label(label)}
        public = None if recipient_public is None else recipient_public.hex()
        with self._engine.begin() as conn:
            conn.execute(
                self._insert(key_slots)
                .values(**row, recipient_public=public, created_at=at, created_by=actor, last_used_at=None)
                .on_conflict_do_nothing()
            )
            conn.execute(key_events.insert().values(**row, at=at, actor=actor, action="add"))

    def forget_slot(self, slot_id: str, ring: str, kind: str, actor: str, at: dt.datetime) -> None:
        """Drop a slot's record and log its ``remove`` event (with the label it had)."""
        with self._engine.begin() as conn:
            label = conn.scalar(select(key_slots.c.label).where(key_slots.c.slot_id == slot_id))
            conn.execute(key_slots.delete().where(key_slots.c.slot_id == slot_id))
            conn.execute(
                key_events.insert().values(
                    slot_id=slot_id,
                    ring=ring,
                    kind=kind,
                    label=_label(label, f"key slot {slot_id}"),
                    at=at,
                    actor=actor,
                    action="remove",
                )
            )

    def log_key_event(
        self, action: str, slot_id: str, ring: str, kind: str, actor: str, at: dt.datetime
    ) -> None:
        """Append an event (``rekey`` rewrites a slot in place; add/remove go through the methods above)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown key event action {action!r}")
        with self._engine.begin() as conn:
            conn.execute(
                key_events.insert().values(
                    slot_id=slot_id, ring=ring, kind=kind, label=None, at=at, actor=actor, action=action
                )
            )

    def touch_slot(self, slot_id: str, at: dt.datetime) -> None:
        """Record that ``slot_id`` opened the vault at ``at``.

        Best effort: a catalog the user may only read (or one that is briefly busy) must not stop
        them from using their keys, so a failed write is dropped.
        """
        try:
            with self._engine.begin() as conn:
                conn.execute(update(key_slots).where(key_slots.c.slot_id == slot_id).values(last_used_at=at))
        except (sa_exc.DBAPIError, MlvaultError):
            pass

    def slot_records(self) -> dict[str, SlotRecord]:
        """slot id → record, for every recorded slot."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(key_slots)).mappings().all()
        records = {}
        for row in rows:
            where = f"key slot {row['slot_id']!r}"
            slot_id = values.an_id(row["slot_id"], "a key slot row", "slot id")
            records[slot_id] = SlotRecord(
                slot_id,
                _ring(row["ring"], where),
                _one_of(row["kind"], SLOT_KINDS, where, "kind"),
                _label(row["label"], where),
                _time(row["created_at"], where, "creation time"),
                _text(row["created_by"], where, "creator"),
                None if row["last_used_at"] is None else _time(row["last_used_at"], where, "last use"),
                None if row["recipient_public"] is None else _public(row["recipient_public"], where),
            )
        return records

    def key_events(self) -> list[KeyEvent]:
        """Every key event, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(key_events).order_by(key_events.c.id)).mappings().all()
        events = []
        for row in rows:
            where = f"key event {row['id']!r}"
            events.append(
                KeyEvent(
                    values.a_count(row["id"], "a key event row", "id", (1 << 63) - 1, least=1),
                    _time(row["at"], where, "time"),
                    _text(row["actor"], where, "actor"),
                    _one_of(row["action"], ACTIONS, where, "action"),
                    values.an_id(row["slot_id"], where, "slot id"),
                    _ring(row["ring"], where),
                    _one_of(row["kind"], EVENT_KINDS, where, "kind"),
                    _label(row["label"], where),
                )
            )
        return events


def _ring(value: object, where: str) -> str:
    return layout.OWNER_RING if value == layout.OWNER_RING else values.an_id(value, where, "ring")


def _one_of(value: object, allowed: frozenset[str], where: str, what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise values.bad(where, f"{what} {value!r}, not one of {', '.join(sorted(allowed))}")
    return value


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL or not value.isprintable():
        raise values.bad(where, f"{what} {value!r}, not 1..{MAX_LABEL} printable characters")
    return value


def _label(value: object, where: str) -> str | None:
    return None if value is None else _text(value, where, "label")


def _public(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise values.bad(where, f"recipient public key {value!r}, not 64 lower-case hex digits")
    return bytes.fromhex(value)


def _time(value: object, where: str, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise values.bad(where, f"{what} {value!r}, not a timestamp")
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)  # SQLite drops the zone
