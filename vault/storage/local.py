"""Local-directory backend (``file://`` or a plain path).

Writes are atomic and durable: the bytes go to a temporary file in the spool directory
(:data:`vault.layout.SPOOL_DIR`) of the same tree, are fsynced, then hard-linked to the
final name (``link`` fails if the name exists, which gives write-once for free), and the
parent directory is fsynced. A crash leaves at most a stray file in the spool, never a
half-written object.

The directory is as writable by an attacker as an S3 bucket, and a filesystem can hold
more than bytes: FIFOs, directories, symbolic links, devices. So every object is reached
by walking its key one segment at a time from the root with ``O_NOFOLLOW`` (each parent
must be a real directory, each object a regular file, checked with ``fstat`` on the open
descriptor), and an object is opened ``O_NONBLOCK`` so a FIFO cannot block the open.
Anything else in place of an object is an :class:`IntegrityError` naming the object.

Nothing is created before it is needed: opening an existing directory creates nothing,
reads never create anything, and the spool directory appears on the first write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vault import layout
from vault.errors import IntegrityError, NotFoundError, StorageUnavailableError, UsageError
from vault.storage.base import Backend, ObjectExistsError, check_size, validate_key

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_OBJECT_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | _CLOEXEC


class LocalBackend(Backend):
    """Objects as files under ``root``; the spool directory holds in-flight writes."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise UsageError(f"cannot create a vault at {root}: it is not a directory") from None
            except OSError as exc:
                raise StorageUnavailableError(f"cannot create {root}: {exc.strerror}") from exc
        elif not self.root.is_dir():
            raise NotFoundError(
                f"no vault at {root}: the directory does not exist (run `mlvault init {root}`)"
            )

    # -- walking keys safely -----------------------------------------------------------------

    def _not_a_file(self, key: str, what: str) -> IntegrityError:
        return IntegrityError(f"object {key} in {self.url} is {what}, not a regular file")

    @contextlib.contextmanager
    def _parent(self, key: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of the key's parent directory, last segment); no link is followed."""
        *dirs, name = validate_key(key).split("/")
        fd = self._open_root()
        try:
            for depth, segment in enumerate(dirs):
                if create:
                    try:
                        os.mkdir(segment, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise StorageUnavailableError(
                            f"cannot write {self.url}/{key}: {exc.strerror}"
                        ) from exc
                try:
                    child = os.open(segment, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise NotFoundError(f"object {key} not found in {self.url}") from None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise StorageUnavailableError(
                            f"cannot read {self.url}/{key}: {exc.strerror}"
                        ) from exc
                    where = "/".join(dirs[: depth + 1])
                    raise IntegrityError(f"object {key} in {self.url}: {where} is not a directory") from None
                os.close(fd)
                fd = child
            yield fd, name
        finally:
            os.close(fd)

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot open {self.root}: {exc.strerror}") from exc

    def _open_object(self, key: str) -> BinaryIO:
        with self._parent(key) as (parent, name):
            try:
                fd = os.open(name, _OBJECT_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                raise NotFoundError(f"object {key} not found in {self.url}") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._not_a_file(key, "a symbolic link") from None
                if exc.errno in (errno.ENXIO, errno.ENODEV):
                    raise self._not_a_file(key, "a socket or device") from None
                raise StorageUnavailableError(f"cannot read {self.url}/{key}: {exc.strerror}") from exc
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise self._not_a_file(key, _kind(mode))
        return os.fdopen(fd, "rb")

    def _lstat(self, parent: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    # -- the spool ------------------------------------------------------------------------

    def spool_dir(self) -> Path:
        """The spool directory, created on first use; a planted link or file there is refused."""
        spool = self.root / layout.SPOOL_DIR
        try:
            spool.mkdir(exist_ok=True)
            mode = spool.lstat().st_mode
        except FileExistsError:
            mode = spool.lstat().st_mode
        except OSError as exc:
            raise StorageUnavailableError(f"cannot create {spool}: {exc.strerror}") from exc
        if not stat.S_ISDIR(mode):
            raise IntegrityError(f"the spool directory {spool} is {_kind(mode)}, not a directory")
        return spool

    def _check_source(self, path: Path) -> os.stat_result:
        """fstat of a file ``put_file`` is asked to consume; it must be a regular file."""
        try:
            fd = os.open(path, _OBJECT_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IntegrityError(f"spool file {path} is a symbolic link, not a regular file") from None
            raise StorageUnavailableError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise IntegrityError(f"spool file {path} is {_kind(info.st_mode)}, not a regular file")
            os.fsync(fd)
            return info
        finally:
            os.close(fd)

    # -- the Backend interface --------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        fd, tmp_name = tempfile.mkstemp(dir=self.spool_dir(), prefix="put-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise StorageUnavailableError(f"cannot write {self.url}/{key}: {exc.strerror}") from exc
        self._publish(Path(tmp_name), key)

    def put_file(self, key: str, path: Path) -> None:
        validate_key(key)
        try:
            self._check_source(path)
            spool = self.spool_dir()
            if path.parent.resolve() != spool:
                # Not on our volume: copy into the spool first so the publish is still atomic.
                fd, name = tempfile.mkstemp(dir=spool, prefix="put-")
                with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                    while block := src.read(8 << 20):
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
                path.unlink()
                path = Path(name)
        except OSError as exc:
            _remove(path)
            raise StorageUnavailableError(f"cannot write {self.url}/{key}: {exc.strerror}") from exc
        except BaseException:
            _remove(path)
            raise
        self._publish(path, key)

    def _publish(self, tmp: Path, key: str) -> None:
        try:
            with self._parent(key, create=True) as (parent, name):
                try:
                    os.link(tmp, name, dst_dir_fd=parent, follow_symlinks=False)
                except FileExistsError:
                    info = self._lstat(parent, name)
                    if info is not None and not stat.S_ISREG(info.st_mode):
                        raise self._not_a_file(key, _kind(info.st_mode)) from None
                    raise ObjectExistsError(f"object {key} already exists") from None
                except OSError as exc:
                    raise StorageUnavailableError(f"cannot write {self.url}/{key}: {exc.strerror}") from exc
                _fsync(parent)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str, max_size: int | None = None) -> bytes:
        with self._open_object(key) as handle:
            check_size(key, os.fstat(handle.fileno()).st_size, max_size)
            try:
                return handle.read()
            except OSError as exc:
                raise StorageUnavailableError(f"cannot read {key}: {exc.strerror}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise UsageError(f"invalid byte range (offset {offset}, length {length})")
        with self._open_object(key) as handle:
            # Never allocate more than the object holds, whatever length was asked for.
            length = min(length, max(0, os.fstat(handle.fileno()).st_size - offset))
            if length == 0:
                return b""
            try:
                return os.pread(handle.fileno(), length, offset)
            except OSError as exc:
                raise StorageUnavailableError(f"cannot read {key}: {exc.strerror}") from exc

    def size(self, key: str) -> int:
        with self._open_object(key) as handle:
            return os.fstat(handle.fileno()).st_size

    def exists(self, key: str) -> bool:
        try:
            with self._parent(key) as (parent, name):
                info = self._lstat(parent, name)
        except NotFoundError:
            return False
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise self._not_a_file(key, _kind(info.st_mode))
        return info is not None

    def delete(self, key: str) -> None:
        try:
            with self._parent(key) as (parent, name):
                os.unlink(name, dir_fd=parent)
        except (FileNotFoundError, NotFoundError):
            pass
        except IsADirectoryError:
            raise self._not_a_file(key, "a directory") from None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot delete {key}: {exc.strerror}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in layout.LOCAL_NOT_OBJECTS]
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and not key.startswith(layout.LOCAL_NOT_OBJECTS) and _is_key(key):
                    yield key


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a regular file"


def _remove(path: Path) -> None:
    # A planted directory in place of a spool file is left alone, not recursed into.
    with contextlib.suppress(IsADirectoryError, PermissionError, FileNotFoundError):
        path.unlink()


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except UsageError:
        return False
    return True


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
