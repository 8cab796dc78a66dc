"""``backup forget``: apply a schedule's retention to its target, then delete what nothing needs.

Everything here reads the plaintext object lists (:class:`vault.backup.snapshot.ObjectList`), so
it needs no private key:

1. The target's marker must name this vault (exit 8 otherwise) and must not be the vault's own
   storage. Every sealed snapshot needs a readable object list of this vault and a signature of a
   signer the vault accepts (:mod:`vault.backup.signature`); one that is missing, damaged or forged
   stops the forget (exit 5) before anything is deleted, since nobody can tell what that snapshot
   needs, and a forged newest snapshot must not decide what the real ones lose (``backup verify``
   names it).
2. :func:`vault.backup.retention.apply_policy` decides with the schedule's policy and an injected
   clock; a snapshot whose sealed object is under Object Lock is *locked* and kept, and the newest
   successful snapshot is always kept.
3. Each forgotten snapshot loses its sealed object first, then its object list (a crash between
   the two leaves a list with no snapshot: the next forget removes it).
4. Every target object that no remaining snapshot references is deleted, except the target's own
   marker and locked objects (:func:`vault.backup.objectlock.locked`, one HEAD each on a
   lock-enabled bucket). Only the target is touched, never the vault.

The leases of every schedule writing to the same target are held meanwhile, so no run copies
objects that are not referenced yet while they are swept. ``dry_run`` does steps 1-2 and counts
what step 4 would delete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vault import layout
from vault.backup import snapshot
from vault.backup.lease import LeaseOwner
from vault.backup.objectlock import locked
from vault.backup.retention import REASON_LOCKED, Decision, RetentionPolicy, SnapshotInfo, apply_policy
from vault.backup.signature import Acceptance
from vault.catalog import Catalog
from vault.errors import ConfigurationError, ConflictError, IntegrityError, NotFoundError
from vault.formats import ALTERED
from vault.storage import Backend

Clock = Callable[[], datetime]
LEASE_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class ForgetReport:
    """What forget decided and did (or, with ``dry_run``, would do)."""

    decisions: list[Decision]
    dry_run: bool
    snapshots_removed: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    bytes_deleted: int = 0
    locked_kept: list[str] = field(default_factory=list)  # unreferenced but locked: not deleted


def read_snapshots(
    target: Backend, vault_id: str, acceptance: Acceptance | None = None
) -> list[snapshot.ObjectList]:
    """The object lists of every sealed snapshot on ``target``, oldest first; exit 5 if one is unreadable
    (or, with ``acceptance``, not signed by a signer it allows)."""
    owner = snapshot.read_marker(target)
    if owner is None:
        raise NotFoundError(
            f"{target.url} is not a backup target yet (no backup/target marker): run a backup"
        )
    if owner != vault_id:
        raise ConfigurationError(f"the backup target {target.url} belongs to vault {owner}, not {vault_id}")
    listings = []
    for snapshot_id in snapshot.snapshot_ids(target):
        try:
            if acceptance is None:
                listing = snapshot.read_object_list(target, snapshot_id)
            else:
                listing, _ = snapshot.read_signed_listing(target, vault_id, snapshot_id, acceptance)
        except (NotFoundError, IntegrityError) as exc:
            raise IntegrityError(
                f"snapshot {snapshot_id} on {target.url} cannot be trusted ({exc}); nothing was "
                "deleted: run `mlvault backup verify` and remove that snapshot by hand"
            ) from None
        if listing.vault_id != vault_id:
            raise IntegrityError(f"the object list of snapshot {snapshot_id} names another vault{ALTERED}")
        listings.append(listing)
    return listings


def decide(
    target: Backend, listings: list[snapshot.ObjectList], policy: RetentionPolicy, now: datetime
) -> list[Decision]:
    """Retention decisions, newest first; a snapshot whose sealed object is locked counts as locked."""
    infos = [
        SnapshotInfo(
            s.snapshot_id, s.created_at, locked=locked(target, layout.snapshot_key(s.snapshot_id), now)
        )
        for s in listings
    ]
    return apply_policy(infos, policy, now)


def snapshot_keys(snapshot_id: str) -> tuple[str, str]:
    """The two objects of a snapshot: the sealed part, then its object list."""
    return layout.snapshot_key(snapshot_id), layout.snapshot_objects_key(snapshot_id)


def retained_keys(
    target: Backend, vault_id: str, policy: RetentionPolicy, now: datetime, acceptance: Acceptance
) -> set[str]:
    """Every object the snapshots the policy keeps (not only for their lock) need, their own included;
    a snapshot ``acceptance`` refuses fails the run, so no forged list gets its objects locked longer."""
    listings = {s.snapshot_id: s for s in read_snapshots(target, vault_id, acceptance)}
    keys: set[str] = set()
    for decision in decide(target, list(listings.values()), policy, now):
        # Kept only because it is locked: extending it would keep it locked for ever.
        if set(decision.reasons) - {REASON_LOCKED}:
            keys.update(listings[decision.snapshot.id].objects)
            keys.update(snapshot_keys(decision.snapshot.id))
    return keys


def forget_snapshots(
    target: Backend,
    vault_id: str,
    policy: RetentionPolicy,
    now: datetime,
    *,
    acceptance: Acceptance | None = None,
    dry_run: bool = False,
) -> ForgetReport:
    """Steps 1-4 of the module docstring on ``target`` (the caller holds the leases); ``acceptance``
    defaults to accepting unsigned snapshots only."""
    acceptance = acceptance or Acceptance(frozenset())
    listings = {s.snapshot_id: s for s in read_snapshots(target, vault_id, acceptance)}
    decisions = decide(target, list(listings.values()), policy, now)
    kept = {d.snapshot.id for d in decisions if d.keep}
    removed = [d.snapshot.id for d in reversed(decisions) if not d.keep]
    needed = {layout.BACKUP_TARGET}
    for snapshot_id in kept:
        needed.update(listings[snapshot_id].objects)
        needed.update(snapshot_keys(snapshot_id))
    if not dry_run:
        for snapshot_id in removed:
            for key in snapshot_keys(snapshot_id):
                target.delete(key)
    gone = {key for snapshot_id in removed for key in snapshot_keys(snapshot_id)}
    sweep = sorted(key for key in target.list() if key not in needed and key not in gone)
    deleted, deleted_bytes, locked_kept = 0, 0, []
    for key in sweep:
        if locked(target, key, now):
            locked_kept.append(key)
            continue
        size = 0
        with contextlib.suppress(NotFoundError):
            size = target.size(key)
        if not dry_run:
            target.delete(key)
        deleted, deleted_bytes = deleted + 1, deleted_bytes + size
    return ForgetReport(decisions, dry_run, removed, deleted, deleted_bytes, locked_kept)


def forget_schedule(
    catalog: Catalog,
    vault_backend: Backend,
    vault_id: str,
    name: str,
    *,
    open_target: Callable[..., Backend],
    owner: LeaseOwner,
    clock: Clock,
    acceptance: Acceptance | None = None,
    dry_run: bool = False,
) -> ForgetReport:
    """``backup forget NAME``: the schedule's policy on its target, under the leases of that target."""
    definition = catalog.backup_schedule(name).definition
    url = definition.target.url
    if url.rstrip("/") == vault_backend.url.rstrip("/"):
        raise ConfigurationError(
            f"schedule {name!r} targets the vault's own storage; forget refuses to touch it"
        )
    sharing = [r.name for r in catalog.backup_schedules() if r.definition.target.url == url]
    leases = catalog.backup_lease_store()
    held: list[str] = []
    target = open_target(definition.target)
    try:
        if not dry_run:
            for schedule in sorted(sharing):
                if not leases.try_acquire(schedule, owner, clock(), LEASE_TTL):
                    raise ConflictError(
                        f"backup schedule {schedule!r} (same target) is running; forget again when it ends"
                    )
                held.append(schedule)
        return forget_snapshots(
            target, vault_id, definition.retention, clock(), acceptance=acceptance, dry_run=dry_run
        )
    finally:
        for schedule in held:
            leases.release(schedule, owner)
        target.close()
