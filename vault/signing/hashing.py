"""File hashing for OMS signatures: what a signature covers and how it is computed.

A signature covers a *model path*: either a directory or a single regular file. This module turns a
model path into the list of ``(relative POSIX path, SHA-256)`` pairs that the OMS ``files``
serialization signs, and does it exactly the way PyPI ``model-signing`` does, so that bundles verify
in both tools:

* **Directory**: every regular file below it, at any depth, named by its path relative to the
  directory with ``/`` separators. Directories themselves and empty directories are not listed.
* **Single file**: one entry named ``"."`` (``model-signing`` names the file relative to itself).
* **Ignored paths**: entries relative to the model root; an ignored directory hides everything
  below it. ``.git``, ``.gitattributes``, ``.github`` and ``.gitignore`` at the top level are
  always ignored (``model-signing``'s default), and a signature file inside the directory is
  ignored by its callers.
* **Order**: by path *components* (``PurePosixPath`` ordering), not by the raw string, so
  ``a/b`` sorts before ``a.b``; the subject digest depends on this order.
* **Symlinks** are refused unless the caller allows them (a bundle made with ``allow_symlinks``);
  then file symlinks are followed and directory symlinks are skipped, as ``model-signing`` does.
  Sockets, FIFOs and devices are always refused and never opened.

Hashing is parallel per file (a thread pool: ``hashlib`` releases the GIL on large buffers) and
memory-bounded: each worker streams its file through one reusable buffer of ``block_size`` bytes,
so peak memory is ``workers * block_size`` whatever the model size.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import os
import stat
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path, PurePosixPath

from vault.errors import NotFoundError, UsageError

GIT_IGNORE_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
"""Top-level paths that ``model-signing`` ignores by default; mlvault ignores them too."""

SINGLE_FILE_NAME = "."
"""The resource name ``model-signing`` gives to a model that is one file."""

DEFAULT_BLOCK_SIZE = 1024 * 1024
MAX_BLOCK_SIZE = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class FileDigest:
    """One signed file: relative POSIX path (or ``"."`` for a single-file model) and its SHA-256."""

    path: str
    sha256: bytes
    size: int | None = None

    def __post_init__(self) -> None:
        if len(self.sha256) != 32:
            raise UsageError(f"SHA-256 digest of {self.path!r} must be 32 bytes, got {len(self.sha256)}")
        check_resource_name(self.path)


def check_resource_name(name: str) -> None:
    """Refuse a resource name that is not ``"."`` or a clean relative POSIX path."""
    if name == SINGLE_FILE_NAME:
        return
    problem = name_problem(name)
    if problem:
        raise UsageError(f"invalid file name {name!r} in signature: {problem}")


def name_problem(name: str) -> str | None:
    """Say what is wrong with a relative POSIX path name, or ``None`` if it is clean."""
    if not name:
        return "empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith("/"):
        return "absolute path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "empty, '.' or '..' path component"
    return None


def path_sort_key(name: str) -> tuple[str, ...]:
    """Sort key that orders resource names as ``model-signing`` does (by path components)."""
    return PurePosixPath(name).parts


def sorted_digests(files: Iterable[FileDigest]) -> list[FileDigest]:
    """Return ``files`` in canonical order, refusing duplicate names."""
    ordered = sorted(files, key=lambda f: path_sort_key(f.path))
    for before, after in itertools.pairwise(ordered):
        if before.path == after.path:
            raise UsageError(f"file {before.path!r} is listed twice")
    if len(ordered) > 1 and any(f.path == SINGLE_FILE_NAME for f in ordered):
        raise UsageError("a single-file entry '.' cannot be combined with other files")
    return ordered


def list_files(
    model_path: Path,
    ignore_paths: Collection[str] = GIT_IGNORE_PATHS,
    *,
    allow_symlinks: bool = False,
) -> list[str]:
    """List the resource names a signature of ``model_path`` covers, in canonical order."""
    try:
        st = os.lstat(model_path)
    except FileNotFoundError as exc:
        raise NotFoundError(f"model path not found: {model_path}") from exc
    if stat.S_ISLNK(st.st_mode):
        if not allow_symlinks:
            raise UsageError(f"{model_path} is a symlink: sign or verify the real path instead")
        st = os.stat(model_path)
    if stat.S_ISREG(st.st_mode):
        return [SINGLE_FILE_NAME]
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{model_path} is neither a regular file nor a directory")
    ignored = {PurePosixPath(p).parts for p in ignore_paths}
    names: list[str] = []
    _walk(model_path, (), ignored, allow_symlinks, names)
    names.sort(key=path_sort_key)
    return names


def _walk(
    directory: Path,
    prefix: tuple[str, ...],
    ignored: set[tuple[str, ...]],
    allow_symlinks: bool,
    out: list[str],
) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            parts = (*prefix, entry.name)
            if any(parts[: len(ig)] == ig for ig in ignored):
                continue
            name = "/".join(parts)
            if entry.is_symlink():
                if not allow_symlinks:
                    raise UsageError(f"{name!r} is a symlink; mlvault signs regular files only")
                if entry.is_file(follow_symlinks=True):
                    out.append(_checked_name(name))
                continue
            if entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), parts, ignored, allow_symlinks, out)
            elif entry.is_file(follow_symlinks=False):
                out.append(_checked_name(name))
            else:
                raise UsageError(f"{name!r} is not a regular file (socket, FIFO or device)")


def _checked_name(name: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"file name {name!r} is not valid UTF-8; rename it before signing") from exc
    return name


def hash_file(path: Path, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[bytes, int]:
    """Return ``(sha256, size)`` of one regular file, streaming ``block_size`` bytes at a time."""
    if not 0 < block_size <= MAX_BLOCK_SIZE:
        raise UsageError(f"block size must be between 1 and {MAX_BLOCK_SIZE} bytes")
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UsageError(f"{path} is not a regular file")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        buffer = bytearray(block_size)
        view = memoryview(buffer)
        while True:
            n = fh.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return digest.digest(), size


def hash_files(
    model_path: Path,
    names: Sequence[str],
    *,
    max_workers: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> list[FileDigest]:
    """Hash the named files of ``model_path`` in parallel; results keep the order of ``names``."""

    def one(name: str) -> FileDigest:
        target = model_path if name == SINGLE_FILE_NAME else model_path.joinpath(*name.split("/"))
        try:
            sha, size = hash_file(target, block_size)
        except FileNotFoundError as exc:
            raise NotFoundError(f"file {name!r} disappeared while hashing") from exc
        return FileDigest(name, sha, size)

    if len(names) <= 1:
        return [one(n) for n in names]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers)
    try:
        futures = [pool.submit(one, n) for n in names]
        return [f.result() for f in futures]
    finally:
        # on the first failure, drop queued files instead of hashing the rest of the model
        pool.shutdown(wait=True, cancel_futures=True)


def hash_directory(
    path: Path | str,
    ignore_paths: Collection[str] = GIT_IGNORE_PATHS,
    *,
    allow_symlinks: bool = False,
    max_workers: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> list[FileDigest]:
    """Hash a model directory (or single file) into canonical-order ``FileDigest`` entries."""
    model_path = Path(path)
    names = list_files(model_path, ignore_paths, allow_symlinks=allow_symlinks)
    return hash_files(model_path, names, max_workers=max_workers, block_size=block_size)
