"""``mlvault check``: is every object the catalog relies on present and intact?

Without ``read_data`` only the catalog and object sizes are consulted (no key needed):
every pack the index uses exists with its recorded size, every version's manifest exists.
With ``read_data`` every pack's trailer is authenticated and compared with the index,
every indexed chunk is decrypted and its keyed id recomputed, every manifest is opened
and cross-checked, and each damaged chunk is traced to the files (``artifact@vN:path``)
that need it. A store that cannot be reached ends the check with StorageUnavailableError:
only what was read and found wrong is reported as damage.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zstandard

from vault.catalog import ChunkLocation, PackRow
from vault.errors import (
    ConfigurationError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
)
from vault.formats import chunk as chunk_format
from vault.packs import pack_key, read_trailer
from vault.pull import group_runs

if TYPE_CHECKING:
    from vault.service import CheckReport, Vault


@dataclass
class _PackOutcome:
    problems: list[str] = field(default_factory=list)
    damaged: set[tuple[str, bytes]] = field(default_factory=set)
    chunks: int = 0


def _check_pack(
    vault: Vault, pack: PackRow, read_data: bool, progress: Callable[[int], None] | None
) -> _PackOutcome:
    """Check one pack: presence and size; with ``read_data`` its trailer and every record."""
    outcome = _PackOutcome()
    key = pack_key(pack.id)
    try:
        size = vault.backend.size(key)
    except NotFoundError:
        outcome.problems.append(f"pack {pack.id} is missing from storage")
        outcome.damaged.update((pack.ring_id, cid) for cid, _, _ in vault.catalog.pack_chunks(pack.id))
        return outcome
    if size != pack.size:
        outcome.problems.append(f"pack {pack.id} is {size} bytes, the catalog recorded {pack.size}")
    if not read_data:
        return outcome
    keyring = vault._keyring(pack.ring_id)
    indexed = sorted(vault.catalog.pack_chunks(pack.id), key=lambda row: row[1])
    oversized = [row for row in indexed if row[2] > chunk_format.HEADER_SIZE + chunk_format.MAX_CIPHERTEXT]
    if oversized:  # an index row no chunk record could have: never read that much
        outcome.damaged.update((pack.ring_id, cid) for cid, _, _ in oversized)
        outcome.problems.append(f"pack {pack.id}: {len(oversized)} index rows claim impossible lengths")
        indexed = [row for row in indexed if row not in oversized]
    try:
        trailer = {(e.chunk_id, e.offset, e.length) for e in read_trailer(vault.backend, pack.id, keyring)}
        if not set(indexed) <= trailer:
            outcome.problems.append(
                f"pack {pack.id}: the trailer does not list chunks the catalog places there"
            )
    except StorageUnavailableError:
        raise  # an outage is not damage: the check cannot finish, so it fails
    except MlvaultError as exc:
        outcome.problems.append(f"pack {pack.id}: trailer damaged ({exc})")
    decompressor = zstandard.ZstdDecompressor()
    bad = 0
    located = [(cid, ChunkLocation(pack.id, offset, length)) for cid, offset, length in indexed]
    for run in group_runs(located):
        start = run[0][1].offset
        blob = vault.backend.get_range(key, start, run[-1][1].offset + run[-1][1].length - start)
        for cid, where in run:
            outcome.chunks += 1
            try:
                record = blob[where.offset - start : where.offset - start + where.length]
                chunk_format.decode(record, keyring, cid, decompressor)
            except (IntegrityError, ConfigurationError):  # a flipped version or suite byte is damage too
                bad += 1
                outcome.damaged.add((pack.ring_id, cid))
            if progress:
                progress(where.length)
    if bad:
        outcome.problems.append(f"pack {pack.id}: {bad} of {len(indexed)} chunks are damaged")
    return outcome


def run_check(vault: Vault, *, read_data: bool, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Check ``vault``; see the module docstring."""
    from vault.service import CheckReport, manifest_key

    report = CheckReport()
    damaged_chunks: set[tuple[str, bytes]] = set()
    packs = vault.catalog.all_packs()
    if read_data:
        for ring_id in {pack.ring_id for pack in packs}:
            vault._keyring(ring_id)  # open each keyring once, before the workers need it
    # Packs are independent: read and verify several at once (I/O and crypto release the GIL).
    with ThreadPoolExecutor(max_workers=max(4, vault._workers * 2), thread_name_prefix="check") as pool:
        outcomes = pool.map(lambda pack: _check_pack(vault, pack, read_data, progress), packs)
        for outcome in outcomes:
            report.packs_checked += 1
            report.chunks_checked += outcome.chunks
            report.problems.extend(outcome.problems)
            damaged_chunks.update(outcome.damaged)
    for version in vault.catalog.all_versions():
        report.versions_checked += 1
        name = f"{version.artifact}@v{version.number}"
        if not vault.backend.exists(manifest_key(version.id)):
            report.problems.append(f"{name}: manifest is missing from storage")
            report.damaged_files.append(f"{name}: (all files)")
            continue
        if not read_data:
            continue
        try:
            manifest = vault.load_manifest(version)
        except StorageUnavailableError:
            raise
        except MlvaultError as exc:
            report.problems.append(f"{name}: manifest damaged ({exc})")
            report.damaged_files.append(f"{name}: (all files)")
            continue
        for entry in manifest.files:
            ids = [cid for cid, _ in entry.chunks]
            located = vault.catalog.lookup_chunks(version.ring_id, ids)
            if any(cid not in located or (version.ring_id, cid) in damaged_chunks for cid in ids):
                report.damaged_files.append(f"{name}:{entry.path}")
    if report.damaged_files and not any("damaged files" in p for p in report.problems):
        report.problems.append(f"{len(report.damaged_files)} damaged files")
    return report
