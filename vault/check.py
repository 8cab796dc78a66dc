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
from typing import TYPE_CHECKING

import zstandard

from vault.errors import (
    ConfigurationError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
)
from vault.formats import chunk as chunk_format
from vault.packs import pack_key, read_trailer

if TYPE_CHECKING:
    from vault.service import CheckReport, Vault


def run_check(vault: Vault, *, read_data: bool, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Check ``vault``; see the module docstring."""
    from vault.service import CheckReport, manifest_key

    report = CheckReport()
    damaged_chunks: set[tuple[str, bytes]] = set()
    for pack in vault.catalog.all_packs():
        report.packs_checked += 1
        key = pack_key(pack.id)
        try:
            size = vault.backend.size(key)
        except NotFoundError:
            report.problems.append(f"pack {pack.id} is missing from storage")
            damaged_chunks.update((pack.ring_id, cid) for cid, _, _ in vault.catalog.pack_chunks(pack.id))
            continue
        if size != pack.size:
            report.problems.append(f"pack {pack.id} is {size} bytes, the catalog recorded {pack.size}")
        if not read_data:
            continue
        keyring = vault._keyring(pack.ring_id)
        indexed = vault.catalog.pack_chunks(pack.id)
        try:
            trailer = {
                (e.chunk_id, e.offset, e.length) for e in read_trailer(vault.backend, pack.id, keyring)
            }
            if not set(indexed) <= trailer:
                report.problems.append(
                    f"pack {pack.id}: the trailer does not list chunks the catalog places there"
                )
        except StorageUnavailableError:
            raise  # an outage is not damage: the check cannot finish, so it fails
        except MlvaultError as exc:
            report.problems.append(f"pack {pack.id}: trailer damaged ({exc})")
        decompressor = zstandard.ZstdDecompressor()
        bad = 0
        for cid, offset, length in indexed:
            report.chunks_checked += 1
            try:
                record = vault.backend.get_range(key, offset, length)
                chunk_format.decode(record, keyring, cid, decompressor)
            except (IntegrityError, ConfigurationError):  # a flipped version or suite byte is damage too
                bad += 1
                damaged_chunks.add((pack.ring_id, cid))
            if progress:
                progress(length)
        if bad:
            report.problems.append(f"pack {pack.id}: {bad} of {len(indexed)} chunks are damaged")
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
