"""``backup verify``: check a backup target end to end without restoring it.

Without a key (what cron can run):

- the target's marker names this vault; each snapshot checked (``--snapshot ID`` or all of them)
  has an object list of this vault and a well-formed envelope that names the same vault and
  snapshot, signed over both parts by a signer the vault accepts
  (:func:`vault.backup.snapshot.read_signed_listing`);
- every object those lists reference is present with the listed size (one HEAD or ``stat`` each).

With the recovery identity, the envelope is also opened and the payload must pin the SHA-256 of the
object list (what makes the list trustworthy); without it the report says that this was not checked.

With ``read_data`` (a key that reads the vault's namespaces, as ``pull`` uses), every referenced
manifest is authenticated, and every referenced pack's trailer is authenticated and each chunk
record in it decrypted and its keyed id recomputed, as ``mlvault check --read-data`` does for the
vault (the same pack and chunk formats: :func:`vault.repository.packs.read_trailer`,
:func:`vault.formats.chunk.decode`, ranged reads grouped by
:func:`vault.repository.fetch.group_runs`). Which keyring a pack belongs to comes from the vault's
chunk index, else from the first record's header (authenticated by the trailer right after). A
``read_fraction`` below 1 reads a deterministic sample: the packs whose SHA-256(seed ‖ pack id)
sorts first, the seed being the newest snapshot checked, so repeating a verify reads the same packs.
Packs of a keyring the key cannot open are listed as not checked, not as damage.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zstandard

from vault import layout
from vault.backup import snapshot
from vault.backup.definition import Target
from vault.backup.signature import Acceptance
from vault.catalog import Catalog, ChunkLocation
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrityError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
    UsageError,
)
from vault.formats import ALTERED, sealed
from vault.formats import chunk as chunk_format
from vault.formats import pack as pack_format
from vault.repository.fetch import group_runs
from vault.repository.manifests import MAX_MANIFEST_OBJECT
from vault.repository.packs import read_trailer
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.clientstate.identities import Identity
    from vault.keycache import KeyCache

MAX_NAMED = 20  # problems named in the one-line error; the report has them all


@dataclass
class VerifyReport:
    """What a verify checked and found."""

    target: str
    snapshots: list[str] = field(default_factory=list)
    objects_checked: int = 0
    bytes_listed: int = 0
    manifests_read: int = 0
    packs_read: int = 0
    packs_total: int = 0
    chunks_checked: int = 0
    problems: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    signed_by: dict[str, str] = field(default_factory=dict)  # snapshot id → signer

    @property
    def ok(self) -> bool:
        """No damage found."""
        return not self.problems

    def raise_for_damage(self) -> None:
        """IntegrityError (exit 5) naming the damaged objects."""
        if self.problems:
            more = len(self.problems) - MAX_NAMED
            named = "; ".join(self.problems[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")
            raise IntegrityError(f"the backup target {self.target} is damaged: {named}")


def _snapshot_checks(
    target: Backend,
    vault_id: str,
    snapshot_id: str,
    identity: Identity | None,
    acceptance: Acceptance,
    report: VerifyReport,
) -> snapshot.ObjectList | None:
    """The object list of one snapshot after the envelope checks; None (and problems) when damaged."""
    try:
        listing, report.signed_by[snapshot_id] = snapshot.read_signed_listing(
            target, vault_id, snapshot_id, acceptance
        )
        if identity is not None:
            raw = target.get(layout.snapshot_objects_key(snapshot_id), max_size=snapshot.MAX_OBJECT_LIST)
            data = target.get(layout.snapshot_key(snapshot_id), max_size=snapshot.MAX_ENVELOPE)
            envelope = snapshot.parse_envelope(data)
            payload = snapshot.decompress_json(
                snapshot.open_snapshot(data, identity, envelope.vault_id, envelope.snapshot_id),
                snapshot.MAX_PAYLOAD,
                f"snapshot {snapshot_id}",
            )
            if payload.get("objects_sha256") != snapshot.sha256_hex(raw):
                raise IntegrityError(f"its object list is not the one the sealed snapshot pins{ALTERED}")
    except AuthenticationError as exc:
        report.not_checked.append(f"snapshot {snapshot_id}: authenticity ({exc})")
        return listing
    except StorageUnavailableError:
        raise
    except (NotFoundError, IntegrityError) as exc:
        report.problems.append(f"snapshot {snapshot_id}: {exc}")
        return None
    return listing


def _sizes(target: Backend, wanted: dict[str, tuple[int, str]], report: VerifyReport) -> None:
    def size(key: str) -> int | None:
        try:
            return target.size(key)
        except NotFoundError:
            return None

    keys = sorted(wanted)
    with ThreadPoolExecutor(8, thread_name_prefix="backup-verify") as pool:
        for key, found in zip(keys, pool.map(size, keys), strict=True):
            listed, needed_by = wanted[key]
            report.objects_checked += 1
            if found is None:
                report.problems.append(f"object {key} (needed by snapshot {needed_by}) is missing")
            elif found != listed:
                report.problems.append(f"object {key} is {found} bytes, its snapshot lists {listed}")


def _ring_of(target: Backend, pack_id: str, hint: str | None) -> str:
    if hint is not None:
        return hint
    key = layout.pack_key(pack_id)
    head = target.get_range(key, pack_format.HEADER_SIZE, chunk_format.HEADER_SIZE)
    return chunk_format.parse_unauthenticated_header(head).ring_id.hex()


def _read_pack(target: Backend, keys: KeyCache, pack_id: str, hint: str | None) -> tuple[int, str | None]:
    """(chunks decrypted, problem or None); AuthenticationError when the keyring cannot be opened."""
    try:
        keyring = keys.keyring(_ring_of(target, pack_id, hint))
        entries = read_trailer(target, pack_id, keyring)
    except (AuthenticationError, StorageUnavailableError):
        raise
    except MlvaultError as exc:
        return 0, f"pack {pack_id}: trailer damaged ({exc})"
    decompressor, bad, done = zstandard.ZstdDecompressor(), 0, 0
    located = [(e.chunk_id, ChunkLocation(pack_id, e.offset, e.length)) for e in entries]
    for run in group_runs(located):
        start = run[0][1].offset
        blob = target.get_range(
            layout.pack_key(pack_id), start, run[-1][1].offset + run[-1][1].length - start
        )
        for chunk_id, where in run:
            done += 1
            try:
                record = blob[where.offset - start : where.offset - start + where.length]
                chunk_format.decode(record, keyring, chunk_id, decompressor)
            except IntegrityError:
                bad += 1
    return done, (f"pack {pack_id}: {bad} of {len(entries)} chunks are damaged" if bad else None)


def _read_manifest(target: Backend, keys: KeyCache, key: str) -> str | None:
    parsed = layout.parse_resealed_manifest_key(key)
    version_id = parsed[0] if parsed else layout.parse_manifest_key(key)
    if version_id is None:
        return None
    raw = target.get(key, max_size=MAX_MANIFEST_OBJECT)
    header = sealed.parse_unauthenticated_header(sealed.MANIFEST, raw)
    keyring = keys.keyring(header.ring_id.hex())
    sealed.open_object(
        sealed.MANIFEST, raw, keyring.dek(header.epoch), keyring.ring_id, bytes.fromhex(version_id)
    )
    return version_id


def sample(pack_ids: list[str], fraction: float, seed: str) -> list[str]:
    """A deterministic ``fraction`` of ``pack_ids`` (at least one when there is any)."""
    if fraction >= 1:
        return sorted(pack_ids)
    count = min(len(pack_ids), max(1, math.ceil(len(pack_ids) * fraction))) if pack_ids else 0
    ranked = sorted(pack_ids, key=lambda p: hashlib.sha256(f"{seed}/{p}".encode()).digest())
    return sorted(ranked[:count])


def _read_data(
    target: Backend,
    keys: KeyCache,
    wanted: dict[str, tuple[int, str]],
    fraction: float,
    rings: dict[str, str],
    report: VerifyReport,
) -> None:
    for key in sorted(k for k in wanted if k.startswith(layout.MANIFESTS_PREFIX)):
        try:
            if _read_manifest(target, keys, key) is not None:
                report.manifests_read += 1
        except AuthenticationError as exc:
            report.not_checked.append(f"{key}: {exc}")
        except (NotFoundError, IntegrityError) as exc:
            report.problems.append(f"{key}: manifest damaged ({exc})")
    packs = [p for p in (layout.parse_pack_key(k) for k in wanted) if p is not None]
    chosen = sample(packs, fraction, report.snapshots[-1] if report.snapshots else "")
    report.packs_total = len(packs)

    def one(pack_id: str) -> tuple[str, int, str | None, str | None]:
        try:
            return pack_id, *_read_pack(target, keys, pack_id, rings.get(pack_id)), None
        except AuthenticationError as exc:
            return pack_id, 0, None, str(exc)
        except NotFoundError as exc:
            return pack_id, 0, f"pack {pack_id}: {exc}", None

    with ThreadPoolExecutor(4, thread_name_prefix="backup-verify-read") as pool:
        for pack_id, chunks, problem, unreadable in pool.map(one, chosen):
            report.chunks_checked += chunks
            if unreadable is not None:
                report.not_checked.append(f"pack {pack_id}: {unreadable}")
                continue
            report.packs_read += 1
            if problem is not None:
                report.problems.append(problem)


def verify_target(
    target: Backend,
    vault_id: str,
    *,
    snapshot_id: str | None = None,
    identity: Identity | None = None,
    keys: KeyCache | None = None,
    read_fraction: float | None = None,
    rings: dict[str, str] | None = None,
    acceptance: Acceptance | None = None,
) -> VerifyReport:
    """Check ``target`` as the module docstring says; ``rings`` maps pack id → ring id (a hint);
    ``acceptance`` defaults to accepting unsigned snapshots only."""
    owner = snapshot.read_marker(target)
    if owner is None:
        raise NotFoundError(f"{target.url} is not a backup target (no backup/target marker)")
    if owner != vault_id:
        raise ConfigurationError(f"the backup target {target.url} belongs to vault {owner}, not {vault_id}")
    ids = snapshot.snapshot_ids(target)
    if snapshot_id is not None:
        if snapshot_id not in ids:
            raise NotFoundError(f"no snapshot {snapshot_id!r} on {target.url} (see `mlvault backup ls`)")
        ids = [snapshot_id]
    report = VerifyReport(target.url, ids)
    if identity is None:
        report.not_checked.append(
            "the sealed parts themselves and the object lists' SHA-256 they pin "
            "(needs the recovery identity: --recovery-key; the signatures were checked)"
        )
    wanted: dict[str, tuple[int, str]] = {}
    for sid in ids:
        listing = _snapshot_checks(
            target, vault_id, sid, identity, acceptance or Acceptance(frozenset()), report
        )
        for key, size in ({} if listing is None else listing.objects).items():
            if key in wanted and wanted[key][0] != size:
                report.problems.append(
                    f"object {key}: snapshots list it as {wanted[key][0]} and {size} bytes"
                )
            wanted.setdefault(key, (size, sid))
    report.bytes_listed = sum(size for size, _ in wanted.values())
    _sizes(target, wanted, report)
    if read_fraction is not None:
        if keys is None:
            raise ValueError("read_data needs the vault's keys")
        _read_data(target, keys, wanted, read_fraction, rings or {}, report)
    else:
        report.not_checked.append("the data itself (add --read-data or --read-data-subset)")
    return report


def parse_fraction(text: str) -> float:
    """``5%`` or ``0.5%`` → 0.05 / 0.005; refuses anything outside (0, 100] %."""
    number = text.removesuffix("%")
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not text.endswith("%") or not 0 < value <= 100:
        raise UsageError(f"invalid --read-data-subset {text!r}: expected a percentage such as 5%")
    return value / 100


def verify_schedule(
    catalog: Catalog,
    vault_id: str,
    name: str,
    *,
    open_target: Callable[[Target], Backend],
    snapshot_id: str | None = None,
    identity: Identity | None = None,
    keys: KeyCache | None = None,
    read_fraction: float | None = None,
    acceptance: Acceptance | None = None,
) -> VerifyReport:
    """``backup verify NAME``: :func:`verify_target` on the schedule's target."""
    target = open_target(catalog.backup_schedule(name).definition.target)
    try:
        rings = None if read_fraction is None else {p.id: p.ring_id for p in catalog.all_packs()}
        return verify_target(
            target,
            vault_id,
            snapshot_id=snapshot_id,
            identity=identity,
            keys=keys,
            read_fraction=read_fraction,
            rings=rings,
            acceptance=acceptance,
        )
    finally:
        target.close()
