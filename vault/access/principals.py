"""Principals: the people and services (CI jobs) that grants name, by an immutable id.

A principal is a random 128-bit id (32 lowercase hex digits) with a name, a kind (``user`` or
``service``), the public half of an identity (the X25519 key that key slots are wrapped to and the
ECDSA P-256 key its records are signed with), an optional expiry date, and, once removed, the time
of removal.

**Ids, not names, carry grants.** Rules name principal ids, so renaming a principal keeps its
grants, and removing one then adding a principal with the same name gives the newcomer a fresh id
and none of the old grants. Removed principals stay in the policy document (marked
``removed_at``, with no rules left) so that old audit rows and provenance records still resolve
to a name, and so that an action by a removed principal can be recognised as such.

**Names** use the identity-name grammar (letters, digits, ``.``, ``_``, ``-``; at most 64) and are
unique among live principals; a live principal's identity (its X25519 key) is unique too, so a
key slot belongs to exactly one principal.

The JSON form (inside the signed access policy, :mod:`vault.access.policy`) is strict: exact keys,
exact types, canonical encodings; anything else is a ``MalformedSignatureError``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from vault.clientstate.identities import PublicIdentity, check_identity_name
from vault.errors import MalformedSignatureError, UsageError

KINDS = ("user", "service")
_ID_RE = re.compile(r"[0-9a-f]{32}")
_FIELDS = frozenset({"id", "name", "kind", "x25519", "ecdsa_p256", "expires", "added_at", "removed_at"})


def new_principal_id() -> str:
    """A fresh random principal id (128 bits, hex)."""
    return os.urandom(16).hex()


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is ``user`` or ``service``, else ``UsageError``."""
    if kind not in KINDS:
        raise UsageError(f"invalid principal kind {kind!r}: use user or service")
    return kind


def parse_expiry(text: str) -> dt.date:
    """An expiry date given as ``YYYY-MM-DD``; ``UsageError`` otherwise."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"invalid expiry {text!r}: expected a date such as 2027-06-30") from None


@dataclass(frozen=True)
class Principal:
    """One principal as the signed access policy records it."""

    id: str
    name: str
    kind: str
    identity: PublicIdentity
    added_at: dt.datetime
    expires: dt.date | None = None
    removed_at: dt.datetime | None = None

    @property
    def fingerprint(self) -> str:
        """The X25519 fingerprint: what a key slot wrapped to this principal records."""
        return self.identity.fingerprint

    @property
    def signing_fingerprint(self) -> str:
        """The fingerprint of the principal's ECDSA P-256 signing key."""
        return self.identity.signing_fingerprint

    @property
    def live(self) -> bool:
        """Not removed."""
        return self.removed_at is None

    def expired(self, today: dt.date) -> bool:
        """Whether the principal's expiry date is before ``today``."""
        return self.expires is not None and self.expires < today

    def renamed(self, name: str) -> Principal:
        """The same principal (same id, same grants) under another name."""
        name = check_identity_name(name)
        return replace(self, name=name, identity=replace(self.identity, name=name))

    def removed(self, at: dt.datetime) -> Principal:
        """The same principal, marked removed at ``at``."""
        return replace(self, removed_at=at)

    def to_json(self) -> dict[str, Any]:
        """The principal's entry in the policy document."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "x25519": self.identity.x25519_public.hex(),
            "ecdsa_p256": base64.b64encode(self.identity.ecdsa_public_der).decode("ascii"),
            "expires": self.expires.isoformat() if self.expires else None,
            "added_at": _time_text(self.added_at),
            "removed_at": _time_text(self.removed_at) if self.removed_at else None,
        }

    @classmethod
    def from_json(cls, value: object) -> Principal:
        """Parse one entry of a policy document; ``MalformedSignatureError`` on anything off."""
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise MalformedSignatureError(f"an access-policy principal must have exactly {sorted(_FIELDS)}")
        pid, name, kind = value["id"], value["name"], value["kind"]
        if not isinstance(pid, str) or not _ID_RE.fullmatch(pid):
            raise MalformedSignatureError("an access-policy principal id must be 32 lowercase hex digits")
        if not isinstance(name, str) or kind not in KINDS:
            raise MalformedSignatureError(f"access-policy principal {pid} has a bad name or kind")
        try:
            check_identity_name(name)
            x25519 = _text(value["x25519"], pid)
            if len(x25519) != 64 or x25519 != x25519.lower():
                raise ValueError("x25519")
            der = base64.b64decode(_text(value["ecdsa_p256"], pid), validate=True)
            identity = PublicIdentity(name, bytes.fromhex(x25519), der)
            identity.ecdsa_public_key()  # a P-256 SubjectPublicKeyInfo
            expires = (
                None if value["expires"] is None else dt.date.fromisoformat(_text(value["expires"], pid))
            )
            added = _parse_time(value["added_at"], pid)
            removed = None if value["removed_at"] is None else _parse_time(value["removed_at"], pid)
        except (UsageError, ValueError, binascii.Error) as exc:
            raise MalformedSignatureError(f"access-policy principal {pid} holds a malformed value") from exc
        return cls(pid, name, str(kind), identity, added, expires, removed)


def new_principal(
    name: str, identity: PublicIdentity, *, kind: str, expires: dt.date | None, at: dt.datetime
) -> Principal:
    """A new principal with a fresh id, holding ``identity``'s public keys."""
    name = check_identity_name(name)
    return Principal(new_principal_id(), name, check_kind(kind), replace(identity, name=name), at, expires)


def _text(value: object, pid: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"principal {pid}: expected a string")
    return value


def _time_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _parse_time(value: object, pid: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(_text(value, pid))
    if at.tzinfo is None:
        raise ValueError("a naive time")
    return at.astimezone(dt.UTC)
