"""The backup job: who it is (the signer of its snapshots), what the vault accepts, where runs are audited.

``backup run`` runs as the backup job's identity (``--identity`` / ``MLVAULT_IDENTITY``; for cron an
unencrypted one). Its signing key signs every snapshot (:mod:`vault.backup.signature`); before any
run, :meth:`vault.backup.signature.Acceptance.check_job` refuses (exit 8) a job whose snapshots the
vault would not accept — no identity while the access policy lists service principals, or an
identity that is not one of them. Each run, success or failure, is one ``backup`` row in the audit
log (:class:`RunAudit`, the vault's :class:`vault.audit.service.AuditService`); a row that cannot be
written fails the run (fail closed, exit 17), since nobody would otherwise know it happened.

A snapshot carries the audit checkpoints in storage only up to the newest audit row it exported
(:func:`exported_checkpoints`): rows are exported before storage is listed, and a checkpoint another
process wrote in between would name a row the restored log lacks, so ``audit verify`` would call the
restored log truncated.

The job seals snapshots to the vault's recovery recipients (:func:`recovery_recipients`): owner-ring
x25519 slots whose recorded public key matches the slot's fingerprint, so a catalog writer cannot
add a recipient that storage does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vault import layout
from vault.audit.events import Action, Outcome
from vault.backup import snapshot
from vault.backup.signature import Acceptance
from vault.catalog import Catalog
from vault.catalog.export import Rows, count_rows
from vault.catalog.migrate import HEAD_REVISION
from vault.errors import AuditUnavailableError, UsageError
from vault.formats import keyslot
from vault.keys import slots
from vault.signing.signers import Signer
from vault.storage import Backend


class RunAudit(Protocol):
    """Where runs are recorded (a :class:`vault.audit.service.AuditService` is one)."""

    def record(
        self, action: str, target: str, outcome: str = ..., details: Mapping[str, Any] | None = None
    ) -> object:
        """Append one row; AuditUnavailableError when it cannot."""
        ...


@dataclass(frozen=True)
class BackupJob:
    """The signer of the job's snapshots (None: unsigned), the signers the vault accepts, the audit log."""

    signer: Signer | None = None
    acceptance: Acceptance = field(default_factory=lambda: Acceptance(frozenset()))
    audit: RunAudit | None = None


def recovery_recipients(backend: Backend, catalog: Catalog, vault_id: str) -> list[bytes]:
    """Raw X25519 public keys of the recovery recipients; UsageError (exit 2) when there is none."""
    stored = {
        item.slot_id: item.slot
        for item in slots.scan_ring(backend, bytes.fromhex(vault_id), layout.OWNER_RING)
        if item.slot is not None and item.slot.kind == keyslot.KIND_X25519
    }
    found = []
    for slot_id, record in sorted(catalog.slot_records().items()):
        slot = stored.get(slot_id)
        public = record.recipient_public
        if slot is None or public is None or record.ring != layout.OWNER_RING:
            continue
        if keyslot.x25519_fingerprint(slot) == hashlib.sha256(public).digest():
            found.append(public)
    if not found:
        raise UsageError(
            "this vault has no recovery recipient to seal backups to; add one with "
            "`mlvault keys add-recovery FILE.pub` (an identity's public file)"
        )
    return found[: snapshot.MAX_STANZAS]


def seal_run_snapshot(
    vault_id: str,
    schedule: str,
    created: datetime,
    rows: Rows,
    sizes: dict[str, int],
    added: tuple[int, int],
    recipients: list[bytes],
    signer: Signer | None,
) -> tuple[str, bytes, bytes]:
    """A new snapshot's id, object list and sealed, signed envelope (``added``: objects, bytes)."""
    snapshot_id = snapshot.new_snapshot_id(created)
    listing = snapshot.ObjectList(
        vault_id, snapshot_id, created, schedule, count_rows(rows, "versions"), *added, sizes
    ).encode()
    payload: dict[str, Any] = {
        "format": snapshot.PAYLOAD_FORMAT,
        "version": 1,
        "vault_id": vault_id,
        "snapshot_id": snapshot_id,
        "created_at": created.isoformat(),
        "schedule": schedule,
        "catalog_schema": HEAD_REVISION,
        "objects_sha256": snapshot.sha256_hex(listing),
        "catalog": rows,
    }
    sealed = snapshot.seal_snapshot(
        bytes.fromhex(vault_id),
        bytes.fromhex(snapshot_id),
        recipients,
        snapshot.compress_json(payload),
        listing,
        signer,
    )
    return snapshot_id, listing, sealed


def record_run(
    job: BackupJob, schedule: str, snapshot_id: str | None, objects: int, size: int, error: str | None
) -> str | None:
    """Record a run (failed when ``error``); the reason the run fails when no row could be written."""
    if job.audit is None:
        return None
    details: dict[str, Any] = {"objects": objects, "bytes": size}
    if snapshot_id is not None:
        details["snapshot"] = snapshot_id
    if job.signer is not None:
        details["signer"] = job.signer.fingerprint()
    if error is not None:
        details["error"] = error[:500]
    try:
        job.audit.record(Action.BACKUP, schedule, Outcome.FAILED if error else Outcome.OK, details)
    except AuditUnavailableError as exc:
        written = "" if snapshot_id is None else f"snapshot {snapshot_id} was written, but "
        before = f"{error}; " if error else ""
        return f"{before}{written}the run could not be recorded in the audit log ({exc})"
    return None


def exported_checkpoints(rows: Rows, wanted: Callable[[str], bool] | None) -> Callable[[str], bool]:
    """``wanted`` (None: every key), minus audit checkpoints of rows newer than the exported ones."""
    entry = rows.get("audit_log") or {}
    try:
        at = entry["columns"].index("seq")
        newest = max((int(row[at]) for row in entry["rows"]), default=0)
    except (KeyError, ValueError, TypeError):
        newest = 0

    def keep(key: str) -> bool:
        seq = layout.parse_audit_checkpoint_key(key)
        return (seq is None or seq <= newest) and (wanted is None or wanted(key))

    return keep
