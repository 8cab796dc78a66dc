"""Materializing a version: everything into a temporary directory, verified, then renamed.

The destination never holds unverified bytes. Files are written under a fresh temporary
directory next to the destination (same filesystem, so the final rename is atomic); every
chunk is decrypted and its keyed id recomputed on worker threads, every file's SHA-256 is
compared with the manifest, and only then is the tree renamed into place. On any failure
the temporary directory is removed. Paths come from an authenticated manifest and are
checked again here; files are created with ``O_EXCL | O_NOFOLLOW`` inside directories
this code just made, so nothing can be written outside the destination.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import hmac
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import zstandard

from vault.catalog import ChunkLocation
from vault.crypto.keyring import Keyring
from vault.errors import (
    ConfigurationError,
    DestinationExistsError,
    HostileManifestError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
    UsageError,
)
from vault.formats import chunk as chunk_format
from vault.formats.manifest import FileEntry, Manifest, check_path
from vault.packs import pack_key
from vault.storage import Backend

Progress = Callable[[int], None]
Locate = Callable[[list[bytes]], dict[bytes, ChunkLocation]]


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with DestinationExistsError if ``dst`` exists.

    Uses Linux ``renameat2(RENAME_NOREPLACE)`` so that a destination created by someone
    else after our check is never replaced; elsewhere falls back to check-then-rename.
    """
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if result == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise DestinationExistsError(f"{dst} appeared while pulling; nothing was written")
        if err not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: the filesystem lacks the flag
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists() or dst.is_symlink():
        raise DestinationExistsError(f"{dst} appeared while pulling; nothing was written")
    os.rename(src, dst)


def plan_destination(manifest: Manifest, dest: Path) -> Path:
    """Where the version will land; DestinationExistsError if that exists.

    A directory version lands at ``dest``. A single file lands at ``dest``, or inside
    ``dest`` under its own name when ``dest`` is an existing directory.
    """
    if manifest.root == "file" and dest.is_dir():
        name = check_path(manifest.files[0].path)  # checked before it picks a directory
        if "/" in name:
            raise HostileManifestError(f"single-file manifest path {name!r} has directories; refusing")
        dest = dest / name
    if dest.exists() or dest.is_symlink():
        raise DestinationExistsError(f"{dest} already exists; choose another destination or remove it")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent} is not a directory; create it first")
    return dest


# setuid, setgid and sticky bits are never restored: a pulled model must not become a
# privileged program just because a manifest said so.
SAFE_MODE_BITS = 0o777
RUN_BYTES = 4 * 1024 * 1024  # one ranged read covers neighbouring records up to this size
RUN_GAP = 256 * 1024  # read through gaps this small rather than issue another request


class ChunkFetcher:
    """Reads, decrypts and verifies runs of chunks on a thread pool.

    Neighbouring records of one pack are read with a single ranged read (a "run"), which
    turns a 1 GiB pull from S3 into a few hundred GETs instead of a thousand.
    """

    def __init__(self, backend: Backend, keyring: Keyring, pool: ThreadPoolExecutor) -> None:
        self._backend = backend
        self._keyring = keyring
        self._pool = pool

    def fetch_run(self, run: list[tuple[bytes, ChunkLocation]]) -> list[bytes]:
        """Return the verified plaintexts of a run of chunks stored close together in one pack."""
        pack_id = run[0][1].pack_id
        start = run[0][1].offset
        end = max(where.offset + where.length for _, where in run)
        try:
            blob = self._backend.get_range(pack_key(pack_id), start, end - start)
        except NotFoundError as exc:
            raise IntegrityError(f"pack {pack_id} is missing from storage") from exc
        decompressor = zstandard.ZstdDecompressor()
        plaintexts = []
        for chunk_id, where in run:
            record = blob[where.offset - start : where.offset - start + where.length]
            try:
                plaintexts.append(chunk_format.decode(record, self._keyring, chunk_id, decompressor))
            except ConfigurationError as exc:
                # The vault's config pins the format, so a record the index points at that claims an
                # unknown version or suite was altered (a flipped byte): integrity, not configuration.
                raise IntegrityError(f"chunk record damaged ({exc})") from exc
        return plaintexts

    def submit(self, run: list[tuple[bytes, ChunkLocation]]) -> Future[list[bytes]]:
        """Fetch a run in the background."""
        return self._pool.submit(self.fetch_run, run)


Run = list[tuple[bytes, ChunkLocation]]


def group_runs(chunks: list[tuple[bytes, ChunkLocation]]) -> list[Run]:
    """Group chunks, kept in the given order, into runs that one ranged read can serve.

    A chunk joins the current run when it sits in the same pack, starts at most RUN_GAP
    after the previous record ends, and the run stays within RUN_BYTES.
    """
    runs: list[Run] = []
    for chunk_id, where in chunks:
        if runs:
            first, last = runs[-1][0][1], runs[-1][-1][1]
            last_end = last.offset + last.length
            if (
                where.pack_id == last.pack_id
                and last_end <= where.offset <= last_end + RUN_GAP
                and where.offset + where.length - first.offset <= RUN_BYTES
            ):
                runs[-1].append((chunk_id, where))
                continue
        runs.append([(chunk_id, where)])
    return runs


def plan_runs(entry: FileEntry, locations: dict[bytes, ChunkLocation]) -> list[Run]:
    """A file's chunks, in file order, grouped into runs."""
    located = []
    for chunk_id, _ in entry.chunks:
        where = locations.get(chunk_id)
        if where is None:
            raise IntegrityError("a chunk of this file is missing from the chunk index")
        located.append((chunk_id, where))
    return group_runs(located)


MAX_RUNS_AHEAD = 32  # many small files: keep enough GETs in flight to hide latency
MAX_BYTES_AHEAD = 24 * 1024 * 1024  # big files: bound memory instead


class Prefetcher:
    """Fetches the runs of every file ahead of the writer, across file boundaries.

    Runs are handed out in manifest order; at most MAX_RUNS_AHEAD runs and MAX_BYTES_AHEAD
    stored bytes (always at least one run) are in flight, so a directory of small files
    keeps the pool busy and a huge file does not grow memory.
    """

    def __init__(self, runs: list[list[Run]], fetcher: ChunkFetcher) -> None:
        self._pending = iter([run for file_runs in runs for run in file_runs])
        self._fetcher = fetcher
        self._in_flight: deque[tuple[Future[list[bytes]], int]] = deque()
        self._bytes = 0

    def _fill(self) -> None:
        while len(self._in_flight) < MAX_RUNS_AHEAD and (
            not self._in_flight or self._bytes < MAX_BYTES_AHEAD
        ):
            run = next(self._pending, None)
            if run is None:
                return
            size = sum(where.length for _, where in run)
            self._in_flight.append((self._fetcher.submit(run), size))
            self._bytes += size

    def next_run(self) -> list[bytes]:
        """The verified plaintexts of the next run, in manifest order."""
        self._fill()
        future, size = self._in_flight.popleft()
        self._bytes -= size
        return future.result()

    def cancel(self) -> None:
        """Drop what is still queued (on failure)."""
        for future, _ in self._in_flight:
            future.cancel()
        self._in_flight.clear()


def write_file(
    entry: FileEntry,
    target: Path,
    run_count: int,
    prefetch: Prefetcher,
    progress: Progress | None,
    hasher: ThreadPoolExecutor,
    window: int = 8,
) -> bytes:
    """Write one file from its next ``run_count`` runs; return its verified SHA-256 (raw).

    The SHA-256 runs on ``hasher`` (one thread, so updates stay in order) while this
    thread writes, so fetching, decrypting, hashing and writing overlap.
    """
    sizes = iter(size for _, size in entry.chunks)
    sha = hashlib.sha256()
    hashing: deque[Future[None]] = deque()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for _ in range(run_count):
            for data in prefetch.next_run():
                if len(data) != next(sizes, -1):
                    raise IntegrityError("a chunk has the wrong size")
                out.write(data)
                hashing.append(hasher.submit(sha.update, data))
                while len(hashing) > window:
                    hashing.popleft().result()
                written += len(data)
                if progress:
                    progress(len(data))
        while hashing:
            hashing.popleft().result()
    digest = sha.digest()
    if written != entry.size or not hmac.compare_digest(digest, entry.sha256):
        raise IntegrityError("content does not match its SHA-256")
    os.chmod(target, entry.mode & SAFE_MODE_BITS)
    return digest


def materialize(
    manifest: Manifest, dest: Path, fetcher: ChunkFetcher, locate: Locate, progress: Progress | None = None
) -> tuple[Path, dict[str, bytes]]:
    """Write ``manifest`` to ``dest`` atomically; return where it landed and path → SHA-256."""
    dest = plan_destination(manifest, dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name[:40]}.mlvault-", dir=dest.parent))
    digests: dict[str, bytes] = {}
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    prefetch: Prefetcher | None = None
    try:
        root = staging / "tree"
        root.mkdir()
        for directory in manifest.dirs:
            (root / check_path(directory.path)).mkdir(parents=True, exist_ok=True)
        locations = locate([cid for entry in manifest.files for cid, _ in entry.chunks])
        runs = []
        for entry in manifest.files:
            try:
                runs.append(plan_runs(entry, locations))
            except IntegrityError as exc:
                raise IntegrityError(f"{entry.path}: {exc}") from exc
        prefetch = Prefetcher(runs, fetcher)
        for entry, file_runs in zip(manifest.files, runs, strict=True):
            target = root / check_path(entry.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                digests[entry.path] = write_file(entry, target, len(file_runs), prefetch, progress, hasher)
            except (IntegrityError, StorageUnavailableError) as exc:
                raise type(exc)(f"{entry.path}: {exc}") from exc
        for directory in sorted(manifest.dirs, key=lambda d: d.path.count("/"), reverse=True):
            os.chmod(root / directory.path, directory.mode & SAFE_MODE_BITS)
        if dest.exists() or dest.is_symlink():
            raise DestinationExistsError(f"{dest} appeared while pulling; nothing was written")
        if manifest.root == "file":
            rename_noreplace(root / manifest.files[0].path, dest)
        else:
            rename_noreplace(root, dest)
    except BaseException as exc:
        if prefetch is not None:
            prefetch.cancel()
        hasher.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, MlvaultError):
            raise UsageError(f"cannot write {dest}: {exc.strerror}") from exc
        raise
    hasher.shutdown(wait=True)
    shutil.rmtree(staging, ignore_errors=True)
    return dest, digests
