"""``rekey NS --reencrypt``: every chunk and manifest of a namespace rewritten under its newest epoch.

The steps, each safe to kill and re-run:

1. **Epoch.** A new epoch is started (:mod:`vault.keys.rekey`) unless the newest one is still
   clean: it is not epoch 0 and no slot of the keyring or of the owner ring was removed since the
   keyring's last rekey. So ``rekey NS`` then ``rekey NS --reencrypt`` rewrites to the epoch the
   first made, a re-run after an interruption continues toward the same epoch, and a removal since
   then always gets a fresh one.
2. **Chunks.** For each pack of the keyring that index rows still point at, the authenticated
   trailer says which epoch it was sealed under (pushes seal a pack's records and trailer under
   one epoch); a pack under an older epoch is read in ranged runs through the pull path
   (:class:`ChunkFetcher`: decrypted, keyed id recomputed), each chunk re-encrypted with the SAME
   chunk id (ids are keyed by the id key, which an epoch rotation keeps) and packed by a
   :class:`PackWriter` whose catalog moves the chunks' index rows to the new pack in the same
   transaction that records it (:mod:`vault.catalog.relocation`). So what is done is known without
   reading data twice: rows that moved point at packs of the newest epoch, and a re-run reads only
   the trailers of those. At most ``workers + 2`` runs (≤ 4 MiB each) are in flight: memory is
   flat whatever the size of the namespace. Passes repeat until one finds nothing to move (a push
   that started before the rekey may still add packs under the older epoch), at most
   :data:`MAX_PASSES`.
3. **Manifests.** Each version's newest manifest that is sealed under an older epoch is written
   again as ``manifests/<id>.e<N>`` (write-once names; readers take the newest).
4. **Vacated packs** are dropped from the catalog's pack table; their objects stay in storage for
   garbage collection.
5. **Retire.** Only now, with nothing left under an older epoch, the keyring's older DEKs are
   replaced by random bytes nobody ever used (:func:`vault.keys.rekey.retired`) and every slot is
   rewritten once more: no new slot carries an old key. The id key is unchanged (see
   :mod:`vault.keys.rekey` for what that leaves a revoked reader).

Do not run it while pushes that started before the rekey are still running on the namespace: a
push that commits after the last pass can leave chunks under a retired epoch. The passes catch any
that finished before.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zstandard

from vault import layout
from vault.catalog import ChunkLocation
from vault.catalog.relocation import RelocatingCatalog, relocating
from vault.crypto.keyring import Keyring
from vault.errors import ConflictError
from vault.formats import chunk as chunk_format
from vault.formats import pack as pack_format
from vault.formats import sealed
from vault.keys import rekey as rekeying
from vault.keys.rekey import RekeyResult, SlotRewrite
from vault.repository import Repository
from vault.repository.fetch import ChunkFetcher, Run, group_runs
from vault.repository.manifests import load_manifest_with_epoch, newest_manifest_key, reseal_manifest
from vault.repository.packs import PackWriter, read_trailer

Progress = Callable[[int], None]
MAX_PASSES = 4


@dataclass(frozen=True)
class ReencryptStats:
    """What a re-encryption rewrote, and how long it took."""

    epoch: int
    chunks: int
    bytes_read: int  # stored bytes of the old records
    bytes_written: int  # bytes of the new packs
    packs_written: int
    manifests: int
    packs_vacated: int
    seconds: float


@dataclass(frozen=True)
class RekeyReport:
    """``rekey NS`` (``reencrypted`` and ``retired`` are None) or ``rekey NS --reencrypt``."""

    rekey: RekeyResult
    reencrypted: ReencryptStats | None = None
    retired: SlotRewrite | None = None


def rekey_and_reencrypt(
    repo: Repository,
    namespace: str,
    *,
    drop_unrewrappable: bool = False,
    progress: Progress | None = None,
) -> RekeyReport:
    """Rotate (unless the newest epoch is clean), re-encrypt, then retire older epochs."""
    keys, backend, catalog = repo.keys, repo.backend, repo.catalog
    keys.owner_key()
    ring = rekeying.ring_of(catalog, namespace)
    current = rekeying.current_keyring(keys, backend, ring)
    clean = current.epoch > 0 and not rekeying.removed_since_rekey(catalog.key_events(), ring)
    result, keyring = rekeying.rekey_namespace(
        keys, backend, catalog, namespace, new_epoch=not clean, drop_unrewrappable=drop_unrewrappable
    )
    stats = reencrypt(repo, keyring, progress=progress)
    retired = rekeying.rewrite_slots(
        keys,
        backend,
        catalog,
        rekeying.retired(keyring),
        namespace=namespace,
        drop_unrewrappable=drop_unrewrappable,
    )
    return RekeyReport(result, stats, retired)


def reencrypt(repo: Repository, keyring: Keyring, *, progress: Progress | None = None) -> ReencryptStats:
    """Rewrite every chunk and manifest of ``keyring``'s namespace under its newest epoch."""
    started = time.monotonic()
    index = relocating(repo.catalog)
    totals = _Totals()
    for _ in range(MAX_PASSES):
        moved = _one_pass(repo, index, keyring, totals, progress)
        if not moved:
            break
    else:
        raise ConflictError(
            f"keyring {keyring.ring_id.hex()}: packs under an older epoch keep appearing (pushes that "
            "started before the rekey are still running); run the re-encryption again when they end"
        )
    manifests = _reseal_manifests(repo, keyring)
    vacated = index.drop_vacated_packs(keyring.ring_id.hex())
    return ReencryptStats(
        keyring.epoch,
        totals.chunks,
        totals.bytes_read,
        totals.bytes_written,
        totals.packs,
        manifests,
        vacated,
        round(time.monotonic() - started, 3),
    )


@dataclass
class _Totals:
    chunks: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    packs: int = 0


def pack_epoch(repo: Repository, pack_id: str, keyring: Keyring) -> int:
    """The epoch pack ``pack_id`` was sealed under, from its trailer (authenticated)."""
    key = layout.pack_key(pack_id)
    size = repo.backend.size(key)
    footer = repo.backend.get_range(key, size - pack_format.FOOTER_SIZE, pack_format.FOOTER_SIZE)
    trailer_len = pack_format.decode_footer(footer, size)
    head = repo.backend.get_range(key, size - pack_format.FOOTER_SIZE - trailer_len, sealed.HEADER_SIZE)
    epoch = sealed.parse_unauthenticated_header(sealed.TRAILER, head).epoch
    read_trailer(repo.backend, pack_id, keyring)  # the epoch above is only trusted once this opens
    return epoch


def _one_pass(
    repo: Repository, index: RelocatingCatalog, keyring: Keyring, totals: _Totals, progress: Progress | None
) -> int:
    """Move every chunk still in a pack of an older epoch; returns how many moved."""
    ring = keyring.ring_id.hex()
    writer = PackWriter(
        repo.backend, index, keyring, repo.config.pack_size, uploads=repo.backend.upload_concurrency
    )
    pool = ThreadPoolExecutor(max_workers=repo.workers, thread_name_prefix="reencrypt")
    fetcher = ChunkFetcher(repo.backend, keyring, pool)
    compress = repo.config.compression == "zstd"
    in_flight: deque[Future[tuple[int, int]]] = deque()
    moved = 0

    def settle(limit: int) -> None:
        nonlocal moved
        while len(in_flight) > limit:
            chunks, read = in_flight.popleft().result()
            moved += chunks
            totals.chunks += chunks
            totals.bytes_read += read
            if progress:
                progress(read)

    try:
        for pack in repo.catalog.all_packs():
            if pack.ring_id != ring:
                continue
            rows = repo.catalog.pack_chunks(pack.id)
            if not rows or pack_epoch(repo, pack.id, keyring) == keyring.epoch:
                continue
            located = [(r.chunk_id, ChunkLocation(pack.id, r.offset, r.length)) for r in rows]
            for run in group_runs(sorted(located, key=lambda item: item[1].offset)):
                in_flight.append(pool.submit(_rewrite_run, fetcher, writer, keyring, run, compress))
                settle(repo.workers + 2)
        settle(0)
        writer.finish()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    totals.bytes_written += writer.stored_bytes
    totals.packs += writer.packs_written
    return moved


def _rewrite_run(
    fetcher: ChunkFetcher, writer: PackWriter, keyring: Keyring, run: Run, compress: bool
) -> tuple[int, int]:
    """Read, verify and re-encrypt one run under the newest epoch; returns (chunks, bytes read)."""
    compressor = zstandard.ZstdCompressor(level=3) if compress else None
    for (chunk_id, _), data in zip(run, fetcher.fetch_run(run), strict=True):
        stored, flags = chunk_format.compress(data, compressor) if compressor else (data, 0)
        writer.add(chunk_id, chunk_format.encode(keyring, chunk_id, stored, flags))
    return len(run), sum(where.length for _, where in run)


def _reseal_manifests(repo: Repository, keyring: Keyring) -> int:
    """Re-seal every manifest of the namespace whose newest copy is under an older epoch."""
    ring = keyring.ring_id.hex()
    count = 0
    for version in repo.catalog.all_versions():
        if version.ring_id != ring:
            continue
        _, named = newest_manifest_key(repo.backend, version.id, keyring.epoch)
        if named == keyring.epoch:
            continue
        manifest, epoch = load_manifest_with_epoch(repo.backend, keyring, repo.vault_id, version)
        if epoch != keyring.epoch and reseal_manifest(repo.backend, keyring, manifest):
            count += 1
    return count
