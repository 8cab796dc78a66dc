"""Local-directory backend (``file://`` or a plain path).

Writes are atomic and durable: the bytes go to a temporary file under ``tmp/`` in the
same directory tree, are fsynced, then hard-linked to the final name (``link`` fails if
the name exists, which gives write-once for free), and the parent directory is fsynced.
A crash leaves at most a stray file under ``tmp/``, never a half-written object.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vault.errors import IntegrityError, NotFoundError, StorageUnavailableError, UsageError
from vault.storage.base import Backend, ObjectExistsError, check_size, validate_key

_TMP = "tmp"
# Files that live in a local vault directory but are not storage objects.
_NOT_OBJECTS = (_TMP, "catalog.sqlite")


class LocalBackend(Backend):
    """Objects as files under ``root``; ``root/tmp`` holds in-flight writes."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        if create:
            (self.root / _TMP).mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise NotFoundError(
                f"no vault at {root}: the directory does not exist (run `mlvault init {root}`)"
            )
        else:
            (self.root / _TMP).mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def spool_dir(self) -> Path:
        return self.root / _TMP

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / _TMP, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise StorageUnavailableError(f"cannot write {path}: {exc.strerror}") from exc
        self._publish(Path(tmp_name), path, key)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        try:
            if path.parent.resolve() != (self.root / _TMP):
                # Not on our volume: copy into tmp/ first so the publish is still atomic.
                data_path = Path(tempfile.mkstemp(dir=self.root / _TMP, prefix="put-")[1])
                with path.open("rb") as src, data_path.open("wb") as dst:
                    while block := src.read(8 << 20):
                        dst.write(block)
                path.unlink()
                path = data_path
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise StorageUnavailableError(f"cannot write {target}: {exc.strerror}") from exc
        self._publish(path, target, key)

    def _publish(self, tmp: Path, target: Path, key: str) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(tmp, target)
        except FileExistsError:
            raise ObjectExistsError(f"object {key} already exists") from None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot write {target}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    def _open_object(self, key: str) -> BinaryIO:
        # Objects are regular files we wrote; a symlink or device planted in the directory
        # (e.g. to /dev/zero) is refused rather than followed.
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFoundError(f"object {key} not found in {self.url}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IntegrityError(f"object {key} in {self.url} is a symbolic link, not an object") from exc
            raise StorageUnavailableError(f"cannot read {path}: {exc.strerror}") from exc
        handle = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            raise IntegrityError(f"object {key} in {self.url} is not a regular file")
        return handle

    def get(self, key: str, max_size: int | None = None) -> bytes:
        with self._open_object(key) as handle:
            check_size(key, os.fstat(handle.fileno()).st_size, max_size)
            try:
                return handle.read()
            except OSError as exc:
                raise StorageUnavailableError(f"cannot read {key}: {exc.strerror}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._open_object(key) as handle:
            try:
                handle.seek(offset)
                return handle.read(length)
            except OSError as exc:
                raise StorageUnavailableError(f"cannot read {key}: {exc.strerror}") from exc

    def size(self, key: str) -> int:
        with self._open_object(key) as handle:
            return os.fstat(handle.fileno()).st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageUnavailableError(f"cannot delete {key}: {exc.strerror}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in _NOT_OBJECTS]
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and not key.startswith(_NOT_OBJECTS) and _is_key(key):
                    yield key


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except UsageError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
