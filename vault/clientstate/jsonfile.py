"""One small JSON document owned by this client: read with a size cap, updated under a lock.

Every piece of client-side state (catalog pins, trust-policy pins, the key slot that last
opened a vault) is a :class:`JsonFile`. Reads never load more than ``max_bytes``; an update is
read-modify-write under an exclusive ``flock`` on a sibling ``.lock`` file, written to a temp
file in the same directory, fsynced, renamed over the old file with ``os.replace`` and the
directory fsynced — so concurrent clients never lose each other's entries and a crash leaves
either the old document or the new one, never half of one.

What a document must look like is the caller's: ``validate`` turns the parsed JSON into the
dict the caller works on, or raises ``ConfigurationError`` (it receives the file's path so the
message can name it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vault.errors import ConfigurationError

MAX_STATE_FILE_BYTES = 1024 * 1024

Document = dict[str, Any]


class JsonFile:
    """A JSON document at ``path``; ``empty()`` is its value before the file exists."""

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        empty: Callable[[], Document],
        validate: Callable[[Any, Path], Document],
        max_bytes: int = MAX_STATE_FILE_BYTES,
        indent: int = 2,
    ) -> None:
        self.path = path
        self.what = what
        self._empty = empty
        self._validate = validate
        self._max_bytes = max_bytes
        self._indent = indent

    def read(self) -> Document:
        """The current document (``empty()`` if there is no file yet)."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(self._max_bytes + 1)
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the {self.what} {self.path}: {exc.strerror}") from exc
        if len(data) > self._max_bytes:
            raise ConfigurationError(f"the {self.what} {self.path} is over {self._max_bytes} bytes")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ConfigurationError(
                f"the {self.what} {self.path} is not valid JSON; fix or remove it"
            ) from exc
        return self._validate(doc, self.path)

    @contextlib.contextmanager
    def update(self) -> Iterator[Document]:
        """Yield the document under the lock; what the caller leaves in it is written back atomically."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the {self.what} {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            doc = self.read()
            yield doc
            self._replace(json.dumps(doc, indent=self._indent, sort_keys=True) + "\n")
        except OSError as exc:
            raise ConfigurationError(f"cannot write the {self.what} {self.path}: {exc.strerror}") from exc
        finally:
            os.close(lock_fd)

    def _replace(self, text: str) -> None:
        data = text.encode()
        if len(data) > self._max_bytes:
            raise ConfigurationError(f"the {self.what} {self.path} would grow over {self._max_bytes} bytes")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
