"""Reading chunks back: runs of neighbouring records, fetched, decrypted and verified ahead.

A version's chunks are located through the catalog, grouped into runs that one ranged read
can serve, and fetched on a thread pool ahead of the writer. Every record is authenticated
and its keyed id recomputed (:func:`vault.formats.chunk.decode`) before its plaintext is
handed out, so nothing downstream ever sees unverified bytes.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import zstandard

from vault import layout
from vault.catalog import ChunkLocation
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, NotFoundError
from vault.formats import chunk as chunk_format
from vault.formats.manifest import FileEntry
from vault.storage import Backend

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
            blob = self._backend.get_range(layout.pack_key(pack_id), start, end - start)
        except NotFoundError as exc:
            raise IntegrityError(f"pack {pack_id} is missing from storage") from exc
        decompressor = zstandard.ZstdDecompressor()
        plaintexts = []
        for chunk_id, where in run:
            record = blob[where.offset - start : where.offset - start + where.length]
            plaintexts.append(chunk_format.decode(record, self._keyring, chunk_id, decompressor))
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
