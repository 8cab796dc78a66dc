"""Turning the files of a push into chunk records in packs, with bounded memory.

The main thread cuts chunks (FastCDC) and feeds them into a small window. For each chunk
a worker computes the keyed BLAKE3 id while a single ordered thread folds it into the
file's SHA-256. When the window is full the ids are checked against this push's own set
and, in one query, the catalog's chunk index; only new chunks are compressed and
encrypted, again on workers, in order of completion (pack order does not matter; the
manifest keeps file order). At most
``window`` chunks wait to be hashed and ``window`` to be encrypted, so resident memory is
a few dozen MiB whatever the size of the input. Workers append their records to the pack
writer themselves (under its lock), which keeps file writes off the main thread. hashlib,
blake3, zstd and AES-GCM all release the GIL, so both cores work.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import zstandard

from vault.catalog import Catalog
from vault.chunking import Chunker
from vault.crypto.keyring import Keyring
from vault.errors import UsageError
from vault.formats import chunk as chunk_format
from vault.formats.manifest import FileEntry
from vault.repository.packs import PackWriter
from vault.repository.source import SourceFile

Progress = Callable[[int], None]


class ChunkStore:
    """Stores new chunks of one keyring during one push; dedups against the catalog."""

    def __init__(
        self,
        catalog: Catalog,
        keyring: Keyring,
        writer: PackWriter,
        pool: ThreadPoolExecutor,
        *,
        compression: bool,
        window: int = 8,
    ) -> None:
        self._catalog = catalog
        self._keyring = keyring
        self._writer = writer
        self._pool = pool
        self._compression = compression
        self._window = window
        self._seen: set[bytes] = set()
        self._encrypting: deque[Future[None]] = deque()
        self.new_chunks = 0
        self.reused_chunks = 0

    def _encrypt(self, chunk_id: bytes, data: bytes) -> None:
        flags = 0
        stored = data
        if self._compression:
            stored, flags = chunk_format.compress(data, zstandard.ZstdCompressor(level=3))
        self._writer.add(chunk_id, chunk_format.encode(self._keyring, chunk_id, stored, flags))

    def admit(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Queue the chunks of ``batch`` (id, plaintext) that are not stored yet."""
        unknown = [cid for cid, _ in batch if cid not in self._seen]
        known = self._catalog.lookup_chunks(self._keyring.ring_id.hex(), unknown) if unknown else {}
        for cid, data in batch:
            if cid in self._seen or cid in known:
                self.reused_chunks += 1
                self._seen.add(cid)
                continue
            self._seen.add(cid)
            self.new_chunks += 1
            self._encrypting.append(self._pool.submit(self._encrypt, cid, data))
        while len(self._encrypting) > self._window:
            self._encrypting.popleft().result()

    def drain(self) -> None:
        """Wait until every queued chunk is in the pack writer."""
        while self._encrypting:
            self._encrypting.popleft().result()


def push_file(
    src: SourceFile,
    chunker: Chunker,
    store: ChunkStore,
    keyring: Keyring,
    pool: ThreadPoolExecutor,
    hasher_pool: ThreadPoolExecutor,
    progress: Progress | None,
    window: int = 32,
    window_bytes: int = 32 * 1024 * 1024,
) -> FileEntry:
    """Chunk, hash and store one file; return its manifest entry.

    When ``window`` chunks or ``window_bytes`` are pending, only the older half is settled
    (waited for and admitted), so the workers always have the newer half to hash while
    this thread cuts on; the byte bound keeps memory flat for max-size chunks.
    """
    sha = hashlib.sha256()
    chunk_list: list[tuple[bytes, int]] = []
    pending: deque[tuple[Future[bytes], Future[None], bytes]] = deque()
    size = 0
    pending_bytes = 0

    def flush(count: int) -> None:
        nonlocal pending_bytes
        batch = []
        for _ in range(min(count, len(pending))):
            id_future, sha_future, data = pending.popleft()
            pending_bytes -= len(data)
            sha_future.result()
            batch.append((id_future.result(), data))
        store.admit(batch)
        chunk_list.extend((cid, len(data)) for cid, data in batch)
        if progress:
            progress(sum(len(d) for _, d in batch))

    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {src.path}: {exc.strerror}") from exc
    with handle:
        for data in chunker.chunks(handle):
            size += len(data)
            pending_bytes += len(data)
            pending.append((pool.submit(keyring.chunk_id, data), hasher_pool.submit(sha.update, data), data))
            if len(pending) >= window or pending_bytes >= window_bytes:
                flush(max(1, len(pending) // 2))
        flush(len(pending))
    if size != src.size:
        raise UsageError(f"{src.path} changed while it was being pushed; push again")
    return FileEntry(src.name, size, src.mode, sha.digest(), tuple(chunk_list))
