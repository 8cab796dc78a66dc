"""In-memory backend: the test double for every storage consumer, and ``memory://``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from vault.errors import NotFoundError, UsageError
from vault.storage.base import Backend, ObjectExistsError, check_size, validate_key


class MemoryBackend(Backend):
    """A dict behind a lock. ``memory://name`` URLs share one store per process only
    through the registry's explicit store argument, never through globals."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        with self._lock:
            if key in self._objects:
                raise ObjectExistsError(f"object {key} already exists")
            self._objects[key] = bytes(data)

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.put(key, path.read_bytes())
        finally:
            path.unlink(missing_ok=True)

    def get(self, key: str, max_size: int | None = None) -> bytes:
        validate_key(key)
        with self._lock:
            try:
                data = self._objects[key]
            except KeyError:
                raise NotFoundError(f"object {key} not found in {self.url}") from None
        check_size(key, len(data), max_size)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise UsageError(f"invalid byte range (offset {offset}, length {length})")
        return self.get(key)[offset : offset + length]

    def size(self, key: str) -> int:
        return len(self.get(key))

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            keys = [k for k in self._objects if k.startswith(prefix)]
        yield from keys
