"""Catalog storage for signature bundles and trust-policy documents.

The catalog only *stores* these; it vouches for nothing. A bundle counts when it verifies
under a key of the trust policy, and the policy counts when a client-pinned admin key signed
it (see ``vault.attestation``). What this module does guard against is size: a row written by
someone with catalog access could be a gigabyte, so lengths are read with SQL ``length()``
first and oversized rows are reported as such, never loaded.

Policy documents are append-only and numbered by their own ``serial``; storing a serial not
greater than the newest one is a ``ConflictError``, which is what two admins editing the
policy at once get (the loser reloads and retries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Engine, LargeBinary, Table, cast, func, select
from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from sqlalchemy import Connection, Select

from vault.catalog.schema import signatures, trust_policies
from vault.errors import ConflictError, MalformedSignatureError, NotFoundError

MAX_STORED_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_STORED_POLICY_BYTES = 4 * 1024 * 1024


def stored_size(column: ColumnElement[bytes]) -> ColumnElement[int]:
    """The size in bytes of a stored document (a TEXT value planted on SQLite counts its bytes)."""
    return func.length(cast(column, LargeBinary))


def fetch_document(conn: Connection, query: Select[Any], what: str) -> bytes | None:
    """A document column's value as bytes; a value of another type (SQLite stores whatever it is
    given) is a malformed document, not a crash."""
    try:
        value: object = conn.scalar(query)
        return None if value is None else bytes(value)  # type: ignore[call-overload]
    except TypeError:
        raise MalformedSignatureError(
            f"the stored {what} is not binary data: the catalog was altered"
        ) from None


def newest_document(
    engine: Engine, table: Table, max_bytes: int, what: str
) -> tuple[int, bytes, str, dt.datetime] | None:
    """(serial, document, created_by, created_at) of the newest row of a signed-document table.

    The size is checked in the database before the document is fetched: a catalog writer can
    plant a huge row.
    """
    with engine.connect() as conn:
        head = conn.execute(
            select(
                table.c.serial,
                table.c.created_by,
                table.c.created_at,
                stored_size(table.c.document).label("size"),
            )
            .order_by(table.c.serial.desc())
            .limit(1)
        ).first()
        if head is None:
            return None
        if head.size > max_bytes:
            raise MalformedSignatureError(
                f"the stored {what} (serial {head.serial}) is {head.size} bytes, "
                f"over the {max_bytes}-byte limit"
            )
        document = fetch_document(conn, select(table.c.document).where(table.c.serial == head.serial), what)
    if document is None:
        raise NotFoundError(f"the {what} row disappeared while reading it")
    return int(head.serial), document, head.created_by, head.created_at


@dataclass(frozen=True)
class SignatureRow:
    """One stored signature. ``bundle`` is ``None`` when the row is over the size cap."""

    id: int
    version_id: str
    signer_fingerprint: str
    bundle: bytes | None
    size: int
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class PolicyRow:
    """The newest stored trust-policy document."""

    serial: int
    document: bytes
    created_by: str
    created_at: dt.datetime


class SignatureCatalog:
    """Signature bundles and trust-policy documents in the catalog database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_signature(self, version_id: str, signer_fingerprint: str, bundle: bytes, created_by: str) -> int:
        """Store one bundle for a version; returns the row id."""
        if len(bundle) > MAX_STORED_BUNDLE_BYTES:
            raise ConflictError(f"signature bundle of {len(bundle)} bytes is over the storage limit")
        with self.engine.begin() as conn:
            result = conn.execute(
                signatures.insert().values(
                    version_id=version_id,
                    signer_fingerprint=signer_fingerprint,
                    bundle=bundle.decode("utf-8"),
                    created_by=created_by,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def signatures_for(self, version_id: str) -> list[SignatureRow]:
        """Every stored signature of a version, oldest first; oversized bundles are not loaded."""
        size = func.length(signatures.c.bundle)
        with self.engine.connect() as conn:
            heads = conn.execute(
                select(
                    signatures.c.id,
                    signatures.c.signer_fingerprint,
                    signatures.c.created_by,
                    signatures.c.created_at,
                    size.label("size"),
                )
                .where(signatures.c.version_id == version_id)
                .order_by(signatures.c.id)
            ).all()
            # length() counts characters, so the byte length is checked again after loading.
            loadable = [h.id for h in heads if h.size <= MAX_STORED_BUNDLE_BYTES]
            bundles: dict[int, bytes] = {}
            if loadable:
                query = select(signatures.c.id, signatures.c.bundle).where(signatures.c.id.in_(loadable))
                bundles = {r.id: r.bundle.encode("utf-8") for r in conn.execute(query)}
        rows = []
        for h in heads:
            data = bundles.get(h.id)
            if data is not None and len(data) > MAX_STORED_BUNDLE_BYTES:
                data = None
            rows.append(
                SignatureRow(
                    h.id, version_id, h.signer_fingerprint, data, int(h.size), h.created_by, h.created_at
                )
            )
        return rows

    def latest_policy_row(self) -> PolicyRow | None:
        """The newest trust-policy document, or ``None`` if the vault has none."""
        row = newest_document(self.engine, trust_policies, MAX_STORED_POLICY_BYTES, "trust policy")
        return None if row is None else PolicyRow(*row)

    def latest_policy(self) -> bytes | None:
        """The newest signed trust-policy document, or ``None``."""
        row = self.latest_policy_row()
        return None if row is None else row.document

    def store_policy(self, serial: int, document: bytes, created_by: str) -> None:
        """Append a signed policy document; ``ConflictError`` unless ``serial`` is the newest."""
        try:
            with self.engine.begin() as conn:
                latest = conn.scalar(select(func.max(trust_policies.c.serial)))
                if latest is not None and serial <= latest:
                    raise ConflictError(
                        f"trust policy serial {serial} is not newer than the stored serial {latest}; "
                        "someone changed the policy meanwhile: run the command again"
                    )
                conn.execute(
                    trust_policies.insert().values(
                        serial=serial,
                        document=document,
                        created_by=created_by,
                        created_at=dt.datetime.now(dt.UTC),
                    )
                )
        except sa_exc.IntegrityError as exc:
            raise ConflictError(f"trust policy serial {serial} was stored by someone else meanwhile") from exc
