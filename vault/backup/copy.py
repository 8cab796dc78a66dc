"""Copy stored objects verbatim from one backend to another: only what the destination lacks.

A vault's objects are write-once and named by random ids (or, for ``config``, never rewritten), so a
key present at the destination holds the same bytes as at the source, and both backends publish a
``put`` atomically (``link(2)`` locally, one PUT on S3): an interrupted copy leaves only complete
objects, and the next one copies the rest. Nothing is decrypted or parsed.

Objects up to :data:`IN_MEMORY` bytes go through memory (``get`` then ``put``); larger ones are
streamed through a temporary file in the destination's spool directory (``get_range`` in
:data:`PIECE` pieces, then ``put_file``, which consumes the file), so a copy never holds a large
pack whole. Copies run on ``destination.upload_concurrency`` threads; ``after_each`` runs on the
calling thread after every finished object with the bytes written (-1: it was there already); the
backup run counts progress and heartbeats its lease there, and may raise to stop the copy. An object
that appeared at the destination meanwhile is not an error.

When the destination can copy an object inside the store (S3 to S3 on the same endpoint:
:meth:`Backend.copy_from`, one CopyObject), no bytes pass through this process. With a
``retention``, every object is written under that S3 Object Lock retention.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from vault.backup.objectlock import put_file, put_object
from vault.errors import IntegrityError
from vault.storage import Backend, ObjectExistsError
from vault.storage.base import Retention

IN_MEMORY = 64 * 1024 * 1024
PIECE = 8 * 1024 * 1024


@dataclass(frozen=True)
class CopyResult:
    """What one copy wrote."""

    objects: int
    bytes: int


def copy_objects(
    source: Backend,
    destination: Backend,
    keys: Iterable[tuple[str, int]],
    *,
    after_each: Callable[[int], None] | None = None,
    retention: Retention | None = None,
) -> CopyResult:
    """Copy every (key, size) in ``keys`` from ``source`` to ``destination``; returns what was written."""
    workers = max(1, destination.upload_concurrency)
    totals = [0, 0]

    def settle(done: set[Future[int]]) -> None:
        for future in done:
            written = future.result()
            if written >= 0:
                totals[0] += 1
                totals[1] += written
            if after_each is not None:
                after_each(written)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup-copy") as pool:
        running: set[Future[int]] = set()
        try:
            for key, size in keys:
                if len(running) >= workers * 2:
                    done, pending = wait(running, return_when=FIRST_COMPLETED)
                    running = set(pending)
                    settle(set(done))
                running.add(pool.submit(copy_one, source, destination, key, size, retention))
            done, _ = wait(running)
            running = set()
            settle(set(done))
        except BaseException:
            for future in running:
                future.cancel()
            raise
    return CopyResult(totals[0], totals[1])


def copy_one(
    source: Backend, destination: Backend, key: str, size: int, retention: Retention | None = None
) -> int:
    """Copy one object; the bytes written, or -1 when the destination already had it."""
    try:
        if destination.copy_from(source, key, size, retention):
            return size
        if size <= IN_MEMORY:
            data = source.get(key, max_size=size)
            if len(data) != size:
                raise IntegrityError(f"object {key} is {len(data)} bytes at the source, not {size}")
            put_object(destination, key, data, retention)
        else:
            put_file(destination, key, _spooled(source, destination, key, size), retention)
    except ObjectExistsError:
        return -1
    return size


def _spooled(source: Backend, destination: Backend, key: str, size: int) -> Path:
    spool = destination.spool_dir()
    fd, name = tempfile.mkstemp(prefix="backup-", dir=None if spool is None else str(spool))
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0
            while offset < size:
                piece = source.get_range(key, offset, min(PIECE, size - offset))
                if not piece:
                    break
                out.write(piece)
                offset += len(piece)
        if offset != size:
            raise IntegrityError(f"object {key} is {offset} bytes at the source, not {size}")
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path
