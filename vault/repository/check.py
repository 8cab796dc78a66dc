"""``mlvault check``: can every version a user can pull really be pulled?

The walk starts where a user starts — the versions — not at the pack table, because the
catalog is an index an attacker with database access can edit:

* without ``read_data`` (no key needed): every version's manifest is stored, every pack the
  catalog indexes is stored with its recorded size, and every stored pack is indexed;
* with ``read_data``: every version's manifest is opened and cross-checked with its catalog
  row and its file rows (the ones ``show`` prints); every chunk it names is located through
  the index; every pack that holds one is read, its trailer authenticated and compared with
  the index, and every record decrypted with its keyed id recomputed. Each damaged chunk is
  traced to the files (``artifact@vN:path``) that need it.

A bad value read from the catalog is reported against the version or pack it belongs to and
the check carries on: a malformed version or pack row is skipped (its error names the row)
while every other row is still walked. A store that cannot be reached ends the check with
StorageUnavailableError: only what was read and found wrong is reported as damage. Stored
packs the catalog does not index (left by an interrupted push, or replaced by
``rekey --reencrypt``) are reported as notes, not damage: nothing refers to them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat

import zstandard

from vault import layout
from vault.catalog import ChunkLocation, PackChunk, PackRow, VersionRow
from vault.errors import IntegrityError, MlvaultError, NotFoundError, StorageUnavailableError
from vault.formats import chunk as chunk_format
from vault.formats.manifest import Manifest
from vault.repository import Repository
from vault.repository.fetch import group_runs
from vault.repository.manifests import load_manifest
from vault.repository.packs import read_trailer

Progress = Callable[[int], None]
MAX_RECORD = chunk_format.HEADER_SIZE + chunk_format.MAX_CIPHERTEXT


@dataclass
class CheckReport:
    """Problems found by ``check``; empty ``problems`` means the vault is healthy."""

    packs_checked: int = 0
    chunks_checked: int = 0
    versions_checked: int = 0
    problems: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


@dataclass
class _PackWork:
    """One stored pack to check: what the catalog says about it and what versions need from it."""

    pack_id: str
    ring_id: str
    row: PackRow | None = None
    records: set[PackChunk] = field(default_factory=set)


@dataclass
class _PackOutcome:
    problems: list[str] = field(default_factory=list)
    damaged: set[tuple[str, bytes]] = field(default_factory=set)
    chunks: int = 0


def _guard(problems: list[str], what: str, step: Callable[[], object]) -> bool:
    """Run ``step``; a non-outage error becomes a problem about ``what``. True if it succeeded."""
    try:
        step()
    except StorageUnavailableError:
        raise  # an outage is not damage: the check cannot finish, so it fails
    except MlvaultError as exc:
        problems.append(f"{what}: {exc}")
        return False
    return True


def _check_pack(
    repo: Repository, work: _PackWork, read_data: bool, progress: Progress | None
) -> _PackOutcome:
    """Presence and size of one pack; with ``read_data`` its trailer and every record anyone needs."""
    outcome = _PackOutcome()
    key = layout.pack_key(work.pack_id)
    all_records = {(work.ring_id, r.chunk_id) for r in work.records}
    try:
        size = repo.backend.size(key)
    except NotFoundError:
        outcome.problems.append(f"pack {work.pack_id} is missing from storage")
        outcome.damaged.update(all_records)
        return outcome
    except IntegrityError as exc:  # not a regular file, or otherwise not ours
        outcome.problems.append(f"pack {work.pack_id}: {exc}")
        outcome.damaged.update(all_records)
        return outcome
    if work.row is not None and size != work.row.size:
        outcome.problems.append(f"pack {work.pack_id} is {size} bytes, the catalog recorded {work.row.size}")
    if not read_data:
        return outcome
    keyring = repo.keys.keyring(work.ring_id)
    impossible = {
        r
        for r in work.records
        if r.offset < 0 or not 0 < r.length <= MAX_RECORD or r.offset + r.length > size
    }
    if impossible:  # an index row no stored record could have: never read it
        outcome.damaged.update((work.ring_id, r.chunk_id) for r in impossible)
        outcome.problems.append(
            f"pack {work.pack_id}: {len(impossible)} index rows point outside the pack "
            "or claim impossible lengths"
        )
    records = sorted(work.records - impossible, key=lambda r: r.offset)
    try:
        trailer = {
            PackChunk(e.chunk_id, e.offset, e.length)
            for e in read_trailer(repo.backend, work.pack_id, keyring)
        }
        if not set(records) <= trailer:
            outcome.problems.append(
                f"pack {work.pack_id}: the trailer does not list chunks the catalog places there"
            )
    except StorageUnavailableError:
        raise
    except MlvaultError as exc:
        outcome.problems.append(f"pack {work.pack_id}: trailer damaged ({exc})")
    decompressor = zstandard.ZstdDecompressor()
    bad = 0
    located = [(r.chunk_id, ChunkLocation(work.pack_id, r.offset, r.length)) for r in records]
    for run in group_runs(located):
        start = run[0][1].offset
        blob = repo.backend.get_range(key, start, run[-1][1].offset + run[-1][1].length - start)
        for cid, where in run:
            outcome.chunks += 1
            try:
                record = blob[where.offset - start : where.offset - start + where.length]
                chunk_format.decode(record, keyring, cid, decompressor)
            except IntegrityError:
                bad += 1
                outcome.damaged.add((work.ring_id, cid))
            if progress:
                progress(where.length)
    if bad:
        outcome.problems.append(f"pack {work.pack_id}: {bad} of {len(records)} chunks are damaged")
    return outcome


def _file_rows_agree(repo: Repository, version: VersionRow, manifest: Manifest) -> list[str]:
    """Files whose catalog row (what ``show`` prints) disagrees with the authenticated manifest."""
    rows = {f.path: (f.size, f.mode, f.sha256) for f in repo.catalog.version_details(version.id).files}
    truth = {f.path: (f.size, f.mode, f.sha256.hex()) for f in manifest.files}
    return sorted(path for path in rows.keys() | truth.keys() if rows.get(path) != truth.get(path))


class _Walk:
    """State of one check: the report, and what the versions need from which pack."""

    def __init__(self, repo: Repository, read_data: bool) -> None:
        self.repo = repo
        self.read_data = read_data
        self.report = CheckReport()
        self.packs: dict[str, _PackWork] = {}
        self.needs: list[tuple[str, str, list[tuple[str, list[bytes]]]]] = []  # name, ring, files

    def _catalog_problems(self, bad_rows: list[IntegrityError]) -> None:
        # Each error names its row (version or pack); the other rows are still walked.
        self.report.problems.extend(f"catalog: {exc}" for exc in bad_rows)

    def versions(self) -> None:
        versions: list[VersionRow] = []
        bad_rows: list[IntegrityError] = []
        if not _guard(
            self.report.problems, "catalog", lambda: versions.extend(self.repo.catalog.all_versions(bad_rows))
        ):
            return
        self._catalog_problems(bad_rows)
        for version in versions:
            self.report.versions_checked += 1
            name = f"{version.artifact}@v{version.number}"
            try:
                self._version(version, name)
            except StorageUnavailableError:
                raise
            except MlvaultError as exc:
                self.report.problems.append(f"{name}: {exc}")
                self.report.damaged_files.append(f"{name}: (all files)")

    def _version(self, version: VersionRow, name: str) -> None:
        if not self.repo.backend.exists(layout.manifest_key(version.id)):
            raise IntegrityError("manifest is missing from storage")
        if not self.read_data:
            return
        keyring = self.repo.keys.keyring(version.ring_id)
        try:
            manifest = load_manifest(self.repo.backend, keyring, self.repo.vault_id, version)
        except IntegrityError as exc:
            raise IntegrityError(f"manifest damaged ({exc})") from exc
        for path in _file_rows_agree(self.repo, version, manifest):
            self.report.problems.append(f"{name}:{path}: the catalog's file row disagrees with the manifest")
        files = [(entry.path, [cid for cid, _ in entry.chunks]) for entry in manifest.files]
        located = self.repo.catalog.lookup_chunks(version.ring_id, [cid for _, ids in files for cid in ids])
        for cid, where in located.items():
            if not layout.is_id(where.pack_id):
                raise IntegrityError(f"the chunk index names a pack {where.pack_id!r} that cannot exist")
            work = self.packs.setdefault(where.pack_id, _PackWork(where.pack_id, version.ring_id))
            work.records.add(PackChunk(cid, where.offset, where.length))
        missing = {cid for _, ids in files for cid in ids if cid not in located}
        if missing:
            self.report.problems.append(f"{name}: {len(missing)} chunks are missing from the chunk index")
        self.needs.append((name, version.ring_id, files))

    def indexed_packs(self) -> None:
        rows: list[PackRow] = []
        bad_rows: list[IntegrityError] = []
        if not _guard(
            self.report.problems, "catalog", lambda: rows.extend(self.repo.catalog.all_packs(bad_rows))
        ):
            return
        self._catalog_problems(bad_rows)
        for row in rows:
            work = self.packs.setdefault(row.id, _PackWork(row.id, row.ring_id))
            work.row = row
            if self.read_data:
                _guard(self.report.problems, f"pack {row.id}", partial(self._indexed_records, work))
        for work in self.packs.values():
            if work.row is None:
                self.report.problems.append(
                    f"pack {work.pack_id} holds chunks of versions but the catalog does not list it"
                )

    def _indexed_records(self, work: _PackWork) -> None:
        work.records.update(self.repo.catalog.pack_chunks(work.pack_id))

    def stored_packs(self) -> None:
        for key in self.repo.backend.list(layout.PACKS_PREFIX):
            pack_id = layout.parse_pack_key(key)
            if pack_id is None:
                self.report.notes.append(f"{key} is not a pack mlvault writes")
            elif pack_id not in self.packs:
                self.report.notes.append(
                    f"stored pack {pack_id} is not indexed by the catalog (left by an interrupted push "
                    "or replaced by rekey --reencrypt; nothing refers to it)"
                )

    def read_packs(self, progress: Progress | None) -> set[tuple[str, bytes]]:
        damaged: set[tuple[str, bytes]] = set()
        if self.read_data:
            for ring_id in {work.ring_id for work in self.packs.values()}:
                self.repo.keys.keyring(ring_id)  # open each keyring once, before the workers need it
        works = sorted(self.packs.values(), key=lambda w: w.pack_id)
        # Packs are independent: read and verify several at once (I/O and crypto release the GIL).
        with ThreadPoolExecutor(
            max_workers=max(4, self.repo.workers * 2), thread_name_prefix="check"
        ) as pool:
            outcomes = pool.map(
                _check_pack, repeat(self.repo), works, repeat(self.read_data), repeat(progress)
            )
            for outcome in outcomes:
                self.report.packs_checked += 1
                self.report.chunks_checked += outcome.chunks
                self.report.problems.extend(outcome.problems)
                damaged.update(outcome.damaged)
        return damaged

    def trace(self, damaged: set[tuple[str, bytes]], located: set[tuple[str, bytes]]) -> None:
        for name, ring_id, files in self.needs:
            for path, ids in files:
                if any((ring_id, cid) in damaged or (ring_id, cid) not in located for cid in ids):
                    self.report.damaged_files.append(f"{name}:{path}")


def run_check(repo: Repository, *, read_data: bool, progress: Progress | None = None) -> CheckReport:
    """Check the vault ``repo`` holds; see the module docstring."""
    walk = _Walk(repo, read_data)
    walk.versions()
    walk.indexed_packs()
    walk.stored_packs()
    damaged = walk.read_packs(progress)
    located = {(work.ring_id, r.chunk_id) for work in walk.packs.values() for r in work.records}
    walk.trace(damaged, located)
    report = walk.report
    if report.damaged_files:
        report.problems.append(f"{len(report.damaged_files)} damaged files")
    return report
