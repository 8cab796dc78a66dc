"""Which principal of the access policy an audit row was by, and whether it could still act then.

Rows name the acting principal as text (the ``--identity`` name, else ``user@host``); that name
is the client's file name for its identity, not the policy's principal name, and a removed name
can be given to a new principal. So rows written while an identity acts also carry its X25519
fingerprint in ``details["identity"]`` (:data:`DETAIL_IDENTITY`), and rows are matched to
principals by that fingerprint only — the way the access gate recognises a caller. Rows without
one (the owner acting by passphrase or KMS, rows written before fingerprints were recorded) are
attributed to no principal.

A principal's standing at a time ``t`` (:func:`standing`), among the principals holding that
fingerprint and added at or before ``t``: if one is not removed at ``t`` and not expired, the
action was allowed. Otherwise, if one is not removed but every such one has expired, the
action came after expiry — ``expires`` is a date, and like the gate (which compares it with the
UTC date) a principal may act through the whole of that UTC day, so it is expired from midnight
UTC after it. Otherwise every holder was removed before ``t``: the action came after removal.
Actions by an identity before any principal held it are not judged here.

Principals are duck-typed (:class:`PolicyPrincipal`; a :class:`vault.access.principals.Principal`
is one), so this module needs nothing from the access package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

DETAIL_IDENTITY = "identity"  # str: the acting identity's X25519 fingerprint (64 hex digits)


class PolicyPrincipal(Protocol):
    """What attribution reads of a principal of the verified access policy."""

    @property
    def id(self) -> str: ...  # noqa: D102
    @property
    def name(self) -> str: ...  # noqa: D102
    @property
    def fingerprint(self) -> str: ...  # noqa: D102
    @property
    def signing_fingerprint(self) -> str: ...  # noqa: D102
    @property
    def added_at(self) -> dt.datetime: ...  # noqa: D102
    @property
    def expires(self) -> dt.date | None: ...  # noqa: D102
    @property
    def removed_at(self) -> dt.datetime | None: ...  # noqa: D102


@dataclass(frozen=True)
class Standing:
    """A principal that could no longer act: ``kind`` is ``expired`` or ``removed``, since ``since``."""

    kind: str
    principal_id: str
    name: str
    since: dt.datetime


def expiry_moment(expires: dt.date) -> dt.datetime:
    """The first instant a principal with this expiry date is expired (midnight UTC after it)."""
    return dt.datetime.combine(expires + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def identity_of(details: Mapping[str, Any]) -> str | None:
    """The acting identity's fingerprint recorded in a row's details, if any."""
    value = details.get(DETAIL_IDENTITY) if isinstance(details, Mapping) else None
    return value if isinstance(value, str) and value else None


class Principals:
    """The policy's principals (removed ones included), looked up by identity fingerprint."""

    def __init__(self, principals: Iterable[PolicyPrincipal]) -> None:
        self._by_fingerprint: dict[str, list[PolicyPrincipal]] = {}
        self._all = list(principals)
        for p in self._all:
            self._by_fingerprint.setdefault(p.fingerprint, []).append(p)

    def __bool__(self) -> bool:
        return bool(self._by_fingerprint)

    def live_signer(self, signing_fingerprint: str, at: dt.datetime) -> tuple[str | None, str | None]:
        """(name of a principal live and unexpired at ``at`` holding this signing key, else None;
        name of any principal ever holding it, else None)."""
        holders = [p for p in self._all if p.signing_fingerprint == signing_fingerprint]
        for p in holders:
            live = p.added_at <= at and (p.removed_at is None or at < p.removed_at)
            if live and (p.expires is None or at < expiry_moment(p.expires)):
                return p.name, p.name
        return None, holders[0].name if holders else None

    def standing(self, fingerprint: str, at: dt.datetime) -> Standing | None:
        """``None`` if a principal holding ``fingerprint`` could act at ``at`` (or none held it yet)."""
        known = [p for p in self._by_fingerprint.get(fingerprint, ()) if p.added_at <= at]
        live = [p for p in known if p.removed_at is None or at < p.removed_at]
        if any(p.expires is None or at < expiry_moment(p.expires) for p in live):
            return None
        if live:
            who = max(live, key=lambda p: expiry_moment(p.expires) if p.expires else at)
            assert who.expires is not None
            return Standing("expired", who.id, who.name, expiry_moment(who.expires))
        if known:
            gone = max(known, key=lambda p: p.removed_at or at)
            assert gone.removed_at is not None
            return Standing("removed", gone.id, gone.name, gone.removed_at)
        return None
