"""Writing and reading packs.

:class:`PackWriter` appends encrypted chunk records to a spool file (never to memory), and
when the file passes the target size seals it — encrypted trailer, footer — and hands it to
a small upload pool. Only after the backend has durably stored a pack is it recorded in
the catalog's chunk index, so the index never points at bytes that are not stored, and a
push interrupted at any instant can be re-run: the chunks of every pack that made it are
already indexed and are not stored again.
"""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from vault import layout, leftovers
from vault.catalog import Catalog, PackRow
from vault.crypto.keyring import Keyring, new_id
from vault.errors import IntegrityError
from vault.formats import pack as pack_format
from vault.formats import sealed
from vault.storage import Backend

SPOOL_PREFIX = "mlvault-pack-"


class PackWriter:
    """Accumulates chunk records into packs of about ``target_size`` bytes."""

    def __init__(
        self, backend: Backend, catalog: Catalog, keyring: Keyring, target_size: int, *, uploads: int = 2
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._keyring = keyring
        self._target = target_size
        self._spool = backend.spool_dir()
        # Spool files of pushes that were killed (S3 vaults spool to the system temp dir).
        leftovers.sweep(self._spool or Path(tempfile.gettempdir()), SPOOL_PREFIX)
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="pack-upload")
        self._slots = threading.BoundedSemaphore(uploads + 1)
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._pack_id = b""
        self._entries: list[pack_format.TrailerEntry] = []
        self._offset = 0
        self.stored_bytes = 0
        self.packs_written = 0

    def add(self, chunk_id: bytes, record: bytes) -> None:
        """Append one encrypted chunk record (thread-safe; workers call it directly)."""
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(record)
            self._entries.append(pack_format.TrailerEntry(chunk_id, self._offset, len(record)))
            self._offset += len(record)
            if self._offset >= self._target or len(self._entries) >= pack_format.MAX_ENTRIES:
                self._seal()

    def _open(self) -> None:
        self._pack_id = new_id()
        fd, name = tempfile.mkstemp(dir=self._spool, prefix=f"{SPOOL_PREFIX}{leftovers.owner_tag()}-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._file.write(pack_format.encode_header(self._pack_id))
        self._offset = pack_format.HEADER_SIZE
        self._entries = []

    def _seal(self) -> None:
        assert self._file is not None and self._path is not None
        # While the pack is still self._file/_path: if an upload failed, abort() removes it.
        self._raise_failed()
        keyring = self._keyring
        trailer = sealed.seal(
            sealed.TRAILER,
            keyring.dek(keyring.epoch),
            keyring.ring_id,
            keyring.epoch,
            self._pack_id,
            pack_format.encode_entries(self._entries),
        )
        self._file.write(trailer)
        self._file.write(pack_format.encode_footer(len(trailer)))
        size = self._offset + len(trailer) + pack_format.FOOTER_SIZE
        self._file.close()
        row = PackRow(self._pack_id.hex(), keyring.ring_id.hex(), size, len(self._entries))
        entries = [(e.chunk_id, e.offset, e.length) for e in self._entries]
        path = self._path
        self._file = self._path = None
        self._slots.acquire()
        self._pending.append(self._pool.submit(self._store, row, entries, path))
        self.stored_bytes += size
        self.packs_written += 1

    def _store(self, row: PackRow, entries: list[tuple[bytes, int, int]], path: Path) -> None:
        try:
            self._backend.put_file(layout.pack_key(row.id), path)
            self._catalog.add_pack(row, entries)
        finally:
            self._slots.release()

    def _raise_failed(self) -> None:
        still = []
        for fut in self._pending:
            if fut.done():
                fut.result()
            else:
                still.append(fut)
        self._pending = still

    def finish(self) -> None:
        """Seal the open pack and wait until every pack is stored and indexed."""
        try:
            with self._lock:
                if self._file is not None:
                    self._seal()
            for fut in self._pending:
                fut.result()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the open pack (if any) and stop the upload pool after in-flight uploads."""
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._file = self._path = None
        self._pool.shutdown(wait=True)


def read_trailer(backend: Backend, pack_id: str, keyring: Keyring) -> list[pack_format.TrailerEntry]:
    """Authenticate and parse a stored pack's trailer."""
    key = layout.pack_key(pack_id)
    size = backend.size(key)
    if size < pack_format.HEADER_SIZE + pack_format.FOOTER_SIZE + sealed.HEADER_SIZE:
        raise IntegrityError(f"pack {pack_id} is truncated")
    pack_format.decode_header(backend.get_range(key, 0, pack_format.HEADER_SIZE), bytes.fromhex(pack_id))
    trailer_len = pack_format.decode_footer(
        backend.get_range(key, size - pack_format.FOOTER_SIZE, pack_format.FOOTER_SIZE), size
    )
    if trailer_len > sealed.HEADER_SIZE + sealed.TRAILER.max_plaintext + 16:
        raise IntegrityError(f"pack {pack_id} trailer length out of range")
    raw = backend.get_range(key, size - pack_format.FOOTER_SIZE - trailer_len, trailer_len)
    header = sealed.parse_unauthenticated_header(sealed.TRAILER, raw)
    plaintext = sealed.open_object(
        sealed.TRAILER, raw, keyring.dek(header.epoch), keyring.ring_id, bytes.fromhex(pack_id)
    )
    entries = pack_format.decode_entries(plaintext)
    end = size - pack_format.FOOTER_SIZE - trailer_len
    position = pack_format.HEADER_SIZE
    for entry in entries:
        if entry.offset != position or entry.offset + entry.length > end:
            raise IntegrityError(f"pack {pack_id} trailer does not describe its records")
        position += entry.length
    if position != end:
        raise IntegrityError(f"pack {pack_id} has bytes its trailer does not account for")
    return entries
