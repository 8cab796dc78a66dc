"""Delegated admins: which keys may sign the next access-policy serial, and the walk that accepts one.

A document counts when a **root** admin key this client pinned signed it (the owner identity's
signing key), or when the signing key of an **admin principal** of the document at serial − 1 signed
it — a live principal, not past its expiry date (today, by the reader's clock), holding ``admin`` on
``*`` with no deny on ``*`` — and that document counts by the same rule. The walk goes back from the
newest document and stops at a root-signed one, or at the document this client accepted last, whose
serial and SHA-256 the access pins keep (so a steady client hashes one document per command and
re-verifies no history). A missing serial, a document at the accepted serial with other bytes, a
signer that was no admin at serial − 1, or a walk of more than :data:`MAX_WALK` documents is refused,
naming the serial and the key. With nothing pinned at all (trust on first use) the walk's base is the
oldest document that no admin principal of its predecessor signed, and its signer is the one pinned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault.access.policy import AccessPolicy, document_signer, verify_access_policy
from vault.errors import IntegrityError, UntrustedSignerError

if TYPE_CHECKING:
    from vault.catalog.access import AccessPolicyRow

MAX_WALK = 10_000


def document_digest(document: bytes) -> str:
    """The SHA-256 (hex) of a signed document, as the access pins record it."""
    return hashlib.sha256(document).hexdigest()


def delegated_admin_keys(policy: AccessPolicy, today: dt.date) -> dict[str, str]:
    """Signing fingerprint → name of each live, unexpired *user* principal holding ``admin`` on ``*``.

    A service principal (a backup job, a CI job) may hold ``admin`` on ``*`` to pass capability
    checks, but its key usually sits unencrypted in a cron or CI environment: it never signs the
    policy, so whoever copies that file cannot grant themselves anything.
    """
    admins = policy.admins()
    return {
        p.signing_fingerprint: p.name
        for p in policy.principals
        if p.id in admins and p.kind == "user" and p.live and not p.expired(today)
    }


@dataclass(frozen=True)
class Accepted:
    """The newest document as accepted: its policy, its signer, the root key at the walk's base
    (None when the walk stopped at the document accepted last) and how many documents it verified."""

    policy: AccessPolicy
    signer: str
    root: str | None
    verified: int


def accept_chain(
    newest: AccessPolicyRow,
    fetch: Callable[[int], AccessPolicyRow | None],
    *,
    roots: Collection[str],
    seen: tuple[int, str | None],
    vault_id: str,
    today: dt.date,
    limit: int = MAX_WALK,
) -> Accepted:
    """Accept ``newest`` under the rule above; ``fetch(serial)`` reads an older stored document."""
    seen_serial, seen_digest = seen
    row, head = newest, _verified(newest, vault_id)
    signer, verified = _signer(newest), 1
    head_signer = signer
    while True:
        if signer in roots:
            return Accepted(head, head_signer, signer, verified)
        if seen_digest is not None and row.serial == seen_serial:
            if document_digest(row.document) != seen_digest:
                raise IntegrityError(
                    f"the access policy stored as serial {row.serial} (signed by key {signer[:16]}) is not "
                    "the document this client accepted at that serial: the catalog was rewritten; refused"
                )
            return Accepted(head, head_signer, None, verified)
        if row.serial <= 1:
            if not roots:  # trust on first use: the oldest document's signer is the root
                return Accepted(head, head_signer, signer, verified)
            raise _untrusted(row.serial, signer, roots, vault_id, "")
        if verified > limit:
            raise IntegrityError(
                f"accepting access policy serial {newest.serial} needs a walk of over {limit} documents "
                "back to a root-signed one; ask the root admin to sign a new serial"
            )
        prev = fetch(row.serial - 1)
        if prev is None or prev.serial != row.serial - 1:
            raise IntegrityError(
                f"access policy serial {row.serial - 1} is missing from the catalog, so serial {row.serial} "
                f"(signed by key {signer[:16]}) cannot be traced to a pinned admin key: refused"
            )
        before = _verified(prev, vault_id)
        verified += 1
        if signer not in delegated_admin_keys(before, today):
            if not roots:
                return Accepted(head, head_signer, signer, verified)
            raise _untrusted(row.serial, signer, roots, vault_id, _why(before, signer, today))
        row, signer = prev, _signer(prev)


def _verified(row: AccessPolicyRow, vault_id: str) -> AccessPolicy:
    signer = document_signer(row.document)
    policy = verify_access_policy(row.document, [signer] if signer else [])
    if policy.vault_id != vault_id:
        raise IntegrityError(
            f"the access policy in this catalog was written for vault {policy.vault_id or '(none)'}, "
            f"not {vault_id}: it was copied from another vault"
        )
    if policy.serial != row.serial:
        raise IntegrityError(f"the access policy stored as serial {row.serial} says it is {policy.serial}")
    return policy


def _signer(row: AccessPolicyRow) -> str:
    signer = document_signer(row.document)
    assert signer is not None  # the document verified, so it names its key
    return signer


def _why(before: AccessPolicy, signer: str, today: dt.date) -> str:
    mine = [p for p in before.principals if p.signing_fingerprint == signer]
    if not mine:
        return f"; the key belongs to no principal at serial {before.serial}"
    who = mine[-1]
    if not who.live:
        return f"; principal {who.name} was removed by serial {before.serial}"
    if who.expired(today):
        return f"; principal {who.name} expired on {who.expires}"
    if who.kind != "user":
        return f"; principal {who.name} is a {who.kind} principal, and only user principals sign policies"
    return f"; principal {who.name} did not hold admin on '*' at serial {before.serial}"


def _untrusted(
    serial: int, signer: str, roots: Collection[str], vault_id: str, why: str
) -> UntrustedSignerError:
    return UntrustedSignerError(
        f"the access policy serial {serial} is signed by key {signer[:16]}, not by a pinned admin key of "
        f"vault {vault_id} ({', '.join(p[:16] for p in roots)}) nor by an admin principal of serial "
        f"{serial - 1}{why}: refused"
    )
