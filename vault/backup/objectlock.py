"""S3 Object Lock on a backup target: locked writes, lock checks and lock extension.

A schedule with ``--object-lock MODE --retain-days N`` writes every object of a run (copied
packs, manifests, slots, the object list and the sealed snapshot) with retention MODE until
``now + N days`` (:func:`run_retention`). Each later run moves the retain-until date of every
object that a snapshot the retention policy keeps still references to ``now + N days``
(:func:`extend_locks`; the backend only ever moves a date later), so what the backups need stays
locked as long as runs keep coming, and the schedule check (:meth:`ScheduleDefinition.
check_lock_cadence`) guarantees runs come more often than N days. Objects only forgotten
snapshots need are no longer extended: they unlock N days after their last extension and
``forget`` can delete them then.

A target whose bucket does not have Object Lock enabled is refused before anything is written
(:class:`ConfigurationError`, exit 8): Object Lock can only be turned on when a bucket is created.
``forget`` asks :func:`locked` before every delete and never deletes a locked object. On a
lock-enabled (hence versioned) bucket a plain DeleteObject only adds a delete marker; S3 itself
refuses to delete a locked object *version*, which is what makes the backups immutable even to a
vault whose credentials were stolen. Deletes of unlocked objects leave noncurrent versions: a
lifecycle rule (NoncurrentVersionExpiration) frees that space.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from vault.backup.definition import ScheduleDefinition
from vault.errors import ConfigurationError, NotFoundError
from vault.storage import Backend
from vault.storage.base import Retention


def run_retention(definition: ScheduleDefinition, target: Backend, now: datetime) -> Retention | None:
    """The retention a run at ``now`` writes with; None without Object Lock. Exit 8 when unsupported."""
    lock = definition.object_lock
    if lock is None:
        return None
    if not target.object_lock_enabled:
        raise ConfigurationError(
            f"schedule {definition.name!r} uses Object Lock but the bucket of {target.url} does not have "
            "Object Lock enabled: it can only be enabled when a bucket is created (aws s3api create-bucket "
            "--object-lock-enabled-for-bucket); use such a bucket, or remove --object-lock from the schedule"
        )
    return Retention("COMPLIANCE" if lock.mode == "compliance" else "GOVERNANCE", now + lock.period)


def put_object(target: Backend, key: str, data: bytes, retention: Retention | None) -> None:
    """``put``, locked when ``retention`` is given."""
    if retention is None:
        target.put(key, data)
    else:
        target.put_locked(key, data, retention)


def put_file(target: Backend, key: str, path: Path, retention: Retention | None) -> None:
    """``put_file``, locked when ``retention`` is given."""
    if retention is None:
        target.put_file(key, path)
    else:
        target.put_file_locked(key, path, retention)


def locked(target: Backend, key: str, now: datetime) -> bool:
    """Whether ``key`` is under Object Lock retention at ``now`` (never on a bucket without it)."""
    if not target.object_lock_enabled:
        return False
    try:
        until = target.retained_until(key)
    except NotFoundError:
        return False
    return until is not None and until > now


Beat = Callable[[], None]


def extend_locks(
    target: Backend, keys: Iterable[str], retention: Retention, *, after_each: Beat | None = None
) -> int:
    """Move the retain-until date of every key to ``retention.until`` (never earlier); how many moved.

    A key that is gone is skipped: ``forget`` decides about missing objects, ``verify`` reports them.
    """

    def extend(key: str) -> bool:
        try:
            return target.extend_retention(key, retention)
        except NotFoundError:
            return False

    moved = 0
    with ThreadPoolExecutor(max(1, target.upload_concurrency), thread_name_prefix="backup-lock") as pool:
        for did in pool.map(extend, sorted(keys)):
            moved += did
            if after_each is not None:
                after_each()
    return moved
