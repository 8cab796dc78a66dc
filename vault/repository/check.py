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

import zstandard

from vault import layout
from vault.catalog import ChunkLocation, PackRow
from vault.errors import (
    ConfigurationError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
)
from vault.formats import chunk as chunk_format
from vault.repository import Repository
from vault.repository.fetch import group_runs
from vault.repository.manifests import load_manifest
from vault.repository.packs import read_trailer

Progress = Callable[[int], None]


@dataclass
class CheckReport:
    """Problems found by ``check``; empty lists mean the vault is healthy."""

    packs_checked: int = 0
    chunks_checked: int = 0
    versions_checked: int = 0
    problems: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


@dataclass
class _PackOutcome:
    problems: list[str] = field(default_factory=list)
    damaged: set[tuple[str, bytes]] = field(default_factory=set)
    chunks: int = 0


def _check_pack(repo: Repository, pack: PackRow, read_data: bool, progress: Progress | None) -> _PackOutcome:
    """Check one pack: presence and size; with ``read_data`` its trailer and every record."""
    outcome = _PackOutcome()
    key = layout.pack_key(pack.id)
    try:
        size = repo.backend.size(key)
    except NotFoundError:
        outcome.problems.append(f"pack {pack.id} is missing from storage")
        outcome.damaged.update((pack.ring_id, cid) for cid, _, _ in repo.catalog.pack_chunks(pack.id))
        return outcome
    if size != pack.size:
        outcome.problems.append(f"pack {pack.id} is {size} bytes, the catalog recorded {pack.size}")
    if not read_data:
        return outcome
    keyring = repo.keys.keyring(pack.ring_id)
    indexed = sorted(repo.catalog.pack_chunks(pack.id), key=lambda row: row[1])
    oversized = [row for row in indexed if row[2] > chunk_format.HEADER_SIZE + chunk_format.MAX_CIPHERTEXT]
    if oversized:  # an index row no chunk record could have: never read that much
        outcome.damaged.update((pack.ring_id, cid) for cid, _, _ in oversized)
        outcome.problems.append(f"pack {pack.id}: {len(oversized)} index rows claim impossible lengths")
        indexed = [row for row in indexed if row not in oversized]
    try:
        trailer = {(e.chunk_id, e.offset, e.length) for e in read_trailer(repo.backend, pack.id, keyring)}
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
        blob = repo.backend.get_range(key, start, run[-1][1].offset + run[-1][1].length - start)
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


def run_check(repo: Repository, *, read_data: bool, progress: Progress | None = None) -> CheckReport:
    """Check the vault ``repo`` holds; see the module docstring."""
    report = CheckReport()
    damaged_chunks: set[tuple[str, bytes]] = set()
    packs = repo.catalog.all_packs()
    if read_data:
        for ring_id in {pack.ring_id for pack in packs}:
            repo.keys.keyring(ring_id)  # open each keyring once, before the workers need it
    # Packs are independent: read and verify several at once (I/O and crypto release the GIL).
    with ThreadPoolExecutor(max_workers=max(4, repo.workers * 2), thread_name_prefix="check") as pool:
        outcomes = pool.map(lambda pack: _check_pack(repo, pack, read_data, progress), packs)
        for outcome in outcomes:
            report.packs_checked += 1
            report.chunks_checked += outcome.chunks
            report.problems.extend(outcome.problems)
            damaged_chunks.update(outcome.damaged)
    for version in repo.catalog.all_versions():
        report.versions_checked += 1
        name = f"{version.artifact}@v{version.number}"
        if not repo.backend.exists(layout.manifest_key(version.id)):
            report.problems.append(f"{name}: manifest is missing from storage")
            report.damaged_files.append(f"{name}: (all files)")
            continue
        if not read_data:
            continue
        try:
            manifest = load_manifest(repo.backend, repo.keys.keyring(version.ring_id), repo.vault_id, version)
        except StorageUnavailableError:
            raise
        except MlvaultError as exc:
            report.problems.append(f"{name}: manifest damaged ({exc})")
            report.damaged_files.append(f"{name}: (all files)")
            continue
        for entry in manifest.files:
            ids = [cid for cid, _ in entry.chunks]
            located = repo.catalog.lookup_chunks(version.ring_id, ids)
            if any(cid not in located or (version.ring_id, cid) in damaged_chunks for cid in ids):
                report.damaged_files.append(f"{name}:{entry.path}")
    if report.damaged_files and not any("damaged files" in p for p in report.problems):
        report.problems.append(f"{len(report.damaged_files)} damaged files")
    return report
