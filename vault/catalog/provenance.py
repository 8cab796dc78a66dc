"""An index of provenance records: which signed record, stored where, names which version or tag.

The records themselves live write-once in storage (``records/…``, :mod:`vault.layout`) and are
verified there by every reader (:mod:`vault.access.records`); these rows vouch for nothing. They
let a policy change find one principal's records without walking storage, and ``attest`` list
what a version has. A row lost in a crash, or deleted by a catalog writer, costs at most a record
that a later policy change does not keep valid (refused, fixed by ``mlvault attest``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from vault.catalog.engine import Aggregate
from vault.catalog.schema import provenance_records

_IN_CHUNK = 500


@dataclass(frozen=True)
class RecordIndexRow:
    """One indexed provenance record (unverified: check the stored object it names)."""

    digest: str
    kind: str
    artifact: str
    version_id: str
    tag: str | None
    seq: int | None
    principal_id: str | None
    storage_key: str
    created_at: dt.datetime


class ProvenanceIndex(Aggregate):
    """Index rows of the provenance records in storage."""

    def index_record(self, row: RecordIndexRow) -> None:
        """Index a stored record (a second index of the same record is a no-op)."""
        with self._engine.begin() as conn:
            conn.execute(self._insert(provenance_records).values(**vars(row)).on_conflict_do_nothing())

    def records_by_principals(self, principal_ids: Collection[str]) -> list[RecordIndexRow]:
        """The indexed records that name one of ``principal_ids`` as their signer."""
        wanted = sorted(set(principal_ids))
        rows: list[RecordIndexRow] = []
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows.extend(
                    RecordIndexRow(**r._mapping)
                    for r in conn.execute(
                        select(provenance_records)
                        .where(provenance_records.c.principal_id.in_(chunk))
                        .order_by(provenance_records.c.created_at, provenance_records.c.digest)
                    )
                )
        return rows

    def records_of_version(self, version_id: str) -> list[RecordIndexRow]:
        """The indexed records naming ``version_id`` (push, attest and tag records)."""
        with self._engine.connect() as conn:
            return [
                RecordIndexRow(**r._mapping)
                for r in conn.execute(
                    select(provenance_records)
                    .where(provenance_records.c.version_id == version_id)
                    .order_by(provenance_records.c.created_at, provenance_records.c.digest)
                )
            ]
