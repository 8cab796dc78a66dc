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

from vault import leftovers
from vault.catalog import ChunkLocation
from vault.errors import (
    DestinationExistsError,
    HostileManifestError,
    IntegrityError,
    MlvaultError,
    StorageUnavailableError,
    UsageError,
)
from vault.formats.manifest import FileEntry, Manifest, check_path
from vault.repository.fetch import ChunkFetcher, Prefetcher, plan_runs

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
    try:
        if manifest.root == "file" and dest.is_dir():
            name = check_path(manifest.files[0].path)  # checked before it picks a directory
            if "/" in name:
                raise HostileManifestError(f"single-file manifest path {name!r} has directories; refusing")
            dest = dest / name
        if dest.exists() or dest.is_symlink():
            raise DestinationExistsError(f"{dest} already exists; choose another destination or remove it")
        if not dest.parent.is_dir():
            raise UsageError(f"{dest.parent} is not a directory; create it first")
    except OSError as exc:  # e.g. a parent this user may not even look into
        raise UsageError(f"cannot write into {dest.parent}: {exc.strerror}") from exc
    return dest


# setuid, setgid and sticky bits are never restored: a pulled model must not become a
# privileged program just because a manifest said so.
SAFE_MODE_BITS = 0o777


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


def staging_prefix(dest: Path) -> str:
    """Name prefix of the staging directories of pulls into ``dest``."""
    return f".{dest.name[:40]}.mlvault-"


def materialize(
    manifest: Manifest, dest: Path, fetcher: ChunkFetcher, locate: Locate, progress: Progress | None = None
) -> tuple[Path, dict[str, bytes]]:
    """Write ``manifest`` to ``dest`` atomically; return where it landed and path → SHA-256."""
    dest = plan_destination(manifest, dest)
    prefix = staging_prefix(dest)
    leftovers.sweep(dest.parent, prefix)  # a killed pull's staging tree for this destination
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{leftovers.owner_tag()}-", dir=dest.parent))
    except OSError as exc:
        raise UsageError(f"cannot write into {dest.parent}: {exc.strerror}") from exc
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
