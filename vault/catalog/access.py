"""Catalog storage for the signed access policy, and an index of its newest document.

The catalog only *stores* the documents; it vouches for nothing. A client reads the newest
document and accepts it only if a pinned admin key signed it, or an admin principal of the document
before it (:mod:`vault.access.delegation`, which reads older serials with :meth:`AccessIndex.access_policy`).
Documents are append-only and numbered by their serial: storing a serial not above the newest
is a ``ConflictError``, which is what two admins changing the policy at once get.

``access_principals`` and ``access_grants`` are rewritten from each stored document in the same
transaction: an index for SQL joins (audit reports by principal name, say). Nothing reads them to
decide access, so a row inserted by hand grants nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy import exc as sa_exc

from vault.catalog.engine import Aggregate
from vault.catalog.schema import access_grants, access_policies, access_principals
from vault.catalog.signatures import fetch_document, newest_document, stored_size
from vault.errors import ConflictError, MalformedSignatureError

MAX_STORED_ACCESS_POLICY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AccessPolicyRow:
    """One stored, not yet verified, access-policy document."""

    serial: int
    document: bytes
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class PrincipalIndexRow:
    """What the index keeps of one principal of the newest document."""

    id: str
    name: str
    kind: str
    fingerprint: str
    signing_fingerprint: str
    expires: str | None
    removed_at: dt.datetime | None


@dataclass(frozen=True)
class GrantIndexRow:
    """What the index keeps of one rule of the newest document."""

    principal_id: str
    pattern: str
    capabilities: str  # comma-separated, sorted
    deny: bool


class AccessIndex(Aggregate):
    """Signed access-policy documents and the index of the newest one."""

    def latest_access_policy(self) -> AccessPolicyRow | None:
        """The newest stored access-policy document, or ``None`` if the vault has none."""
        row = newest_document(self._engine, access_policies, MAX_STORED_ACCESS_POLICY_BYTES, "access policy")
        return None if row is None else AccessPolicyRow(*row)

    def access_policy(self, serial: int) -> AccessPolicyRow | None:
        """The stored document of one serial (not yet verified), or ``None``; size checked first."""
        columns = (access_policies.c.created_by, access_policies.c.created_at)
        with self._engine.connect() as conn:
            head = conn.execute(
                select(*columns, stored_size(access_policies.c.document).label("size")).where(
                    access_policies.c.serial == serial
                )
            ).first()
            if head is None:
                return None
            if head.size > MAX_STORED_ACCESS_POLICY_BYTES:
                raise MalformedSignatureError(
                    f"the stored access policy (serial {serial}) is {head.size} bytes, "
                    f"over the {MAX_STORED_ACCESS_POLICY_BYTES}-byte limit"
                )
            document = fetch_document(
                conn,
                select(access_policies.c.document).where(access_policies.c.serial == serial),
                f"access policy (serial {serial})",
            )
        if document is None:
            return None
        return AccessPolicyRow(serial, document, head.created_by, head.created_at)

    def store_access_policy(
        self,
        serial: int,
        document: bytes,
        *,
        principals: Sequence[PrincipalIndexRow],
        grants: Sequence[GrantIndexRow],
        created_by: str,
        at: dt.datetime,
    ) -> None:
        """Append a signed document and rewrite the index; ``ConflictError`` unless it is the newest."""
        try:
            with self._engine.begin() as conn:
                latest = conn.scalar(select(func.max(access_policies.c.serial)))
                if latest is not None and serial <= latest:
                    raise ConflictError(
                        f"access policy serial {serial} is not newer than the stored serial {latest}; "
                        "someone changed the policy meanwhile: run the command again"
                    )
                conn.execute(
                    access_policies.insert().values(
                        serial=serial, document=document, created_by=created_by, created_at=at
                    )
                )
                conn.execute(delete(access_grants))
                conn.execute(delete(access_principals))
                if principals:
                    conn.execute(access_principals.insert(), [vars(p) for p in principals])
                if grants:
                    conn.execute(access_grants.insert(), [vars(g) for g in grants])
        except sa_exc.IntegrityError as exc:
            raise ConflictError(
                f"access policy serial {serial} was stored by someone else meanwhile"
            ) from exc

    def access_grant_index(self) -> list[GrantIndexRow]:
        """The rules of the newest document as indexed (for joins and reports; never for decisions)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    access_grants.c.principal_id,
                    access_grants.c.pattern,
                    access_grants.c.capabilities,
                    access_grants.c.deny,
                ).order_by(access_grants.c.id)
            ).all()
        return [GrantIndexRow(r.principal_id, r.pattern, r.capabilities, bool(r.deny)) for r in rows]
