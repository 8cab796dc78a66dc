"""Provenance records in storage: written by pushes and tag moves, checked by every reader.

**The rule** (no record time is trusted): a record is valid under the current verified access policy
iff its signature verifies under the key it carries (:mod:`vault.access.provenance`), it is of this
vault, and either

- it names a principal of the policy whose signing key that is, and that principal is live and
  holds the capability on the artifact (``push`` for a push record, ``tag`` for a tag record,
  ``admin`` for an attest record) under the current policy, or
- it names no principal and its key is a pinned admin key of this vault (the owner signing as
  root admin), or
- its digest is one the policy keeps (``AccessPolicy.kept``).

When a policy change takes a capability from a principal (revoke, deny, principal rm),
:meth:`ProvenanceRecords.kept_after` lists that principal's records valid before the change and not
after it, and the new policy keeps them: earlier records stay valid, any later record from that
principal is refused whatever serial it names. The first policy lists every version and tag that
existed before it (:meth:`ProvenanceRecords.legacy`); those are accepted without a record.

**Versions.** ``records/v/<version id>/<record sha256>``: content-addressed, so a retried commit or
an ``attest`` adds a record beside the others; a reader lists the version's prefix, and accepts the
version if one record there names it exactly (vault, artifact, number, version id, manifest digest)
and is valid. A push writes its record while the catalog transaction that allocates the number is
open and before the version row is inserted, so a crash never leaves a visible version without one.

**Tags.** ``records/t/<tag id>/<seq>`` (tag id: SHA-256 of vault id, artifact and tag): each move is
record ``seq`` = newest + 1, and write-once storage lets only one mover take a number. A reader takes
the newest record of the tag; the version the catalog's tag points at must be the one it names and
it must be valid, so a tag moved by SQL, or rolled back to an earlier record's version, is refused.
The record is written before the catalog row moves: a crash in between leaves the tag refused until
``mlvault tag`` is run again.

Every refusal is :class:`~vault.errors.ProvenanceRefusedError` (exit 13), naming why.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from vault import layout
from vault.access.patterns import Capability, decide
from vault.access.policy import AccessPolicy
from vault.access.provenance import (
    ATTEST,
    MAX_RECORD_BYTES,
    MAX_SEQ,
    PUSH,
    TAG,
    Record,
    SignedRecord,
    sign_record,
    verify_record,
)
from vault.catalog.provenance import RecordIndexRow
from vault.catalog.rows import NewVersion, VersionRow
from vault.errors import ConflictError, IntegrityError, MlvaultError, NotFoundError, ProvenanceRefusedError
from vault.signing.signers import Signer
from vault.storage import Backend
from vault.storage.base import ObjectExistsError

Clock = Callable[[], dt.datetime]
_TAG_ATTEMPTS = 8
_NEEDS = {PUSH: Capability.PUSH, TAG: Capability.TAG, ATTEST: Capability.ADMIN}


class RecordIndex(Protocol):
    """What the records need from the catalog: the index, and what exists before the first policy."""

    def index_record(self, row: RecordIndexRow) -> None:
        """Index a stored record."""
        ...

    def records_by_principals(self, principal_ids: Collection[str]) -> list[RecordIndexRow]:
        """Indexed records naming one of these principals."""
        ...

    def all_versions(self) -> list[VersionRow]:
        """Every version, with its tags."""
        ...


@dataclass(frozen=True)
class RecordSigner:
    """Who signs a record: a signing key, and the principal it belongs to (None: the root admin)."""

    signer: Signer
    principal_id: str | None


def tag_id(vault_id: str, artifact: str, tag: str) -> str:
    """The storage name of a tag's record prefix: SHA-256 of vault, artifact and tag (32 hex)."""
    data = b"\0".join([b"mlvault/tag-id/v1", vault_id.encode(), artifact.encode(), tag.encode()])
    return hashlib.sha256(data).hexdigest()[:32]


def invalid_reason(signed: SignedRecord, policy: AccessPolicy, admins: Collection[str]) -> str | None:
    """Why ``signed`` is not valid under ``policy`` (None: it is). See the module docstring."""
    record = signed.record
    if record.vault_id != policy.vault_id:
        return f"it was written for vault {record.vault_id}"
    if signed.digest in policy.kept:
        return None
    if record.principal_id is None:
        if record.signer in set(admins):
            return None
        return f"it is signed by key {record.signer[:16]}, which is no principal and no pinned admin key"
    who = policy.by_id(record.principal_id)
    if who is None:
        return f"it names principal {record.principal_id}, who is not in the access policy"
    if who.signing_fingerprint != record.signer:
        return f"it is signed by key {record.signer[:16]}, not by {who.name}'s signing key"
    cap = _NEEDS[record.kind]
    if not who.live:
        return f"{who.name} was removed from the access policy"
    if not decide(policy.rules, who.id, record.artifact, cap).allowed:
        return (
            f"{who.name} does not hold {cap.value} on {record.artifact} under access policy "
            f"serial {policy.serial}"
        )
    return None


class ProvenanceRecords:
    """Write and check the provenance records of one vault's storage."""

    def __init__(self, backend: Backend, index: RecordIndex, *, vault_id: str, clock: Clock) -> None:
        self._backend = backend
        self._index = index
        self._vault_id = vault_id
        self._clock = clock

    # -- writing --------------------------------------------------------------------------------

    def write_version(
        self,
        who: RecordSigner,
        policy: AccessPolicy,
        new: NewVersion | VersionRow,
        number: int,
        *,
        kind: str = PUSH,
        index: bool = True,
    ) -> RecordIndexRow:
        """Sign and store the push (or attest) record of a version; returns its index row (indexed
        now unless ``index`` is false: a push's commit inserts it in its own transaction)."""
        digest = new.digest
        record = Record(
            kind,
            self._vault_id,
            new.artifact,
            new.id,
            who.principal_id,
            who.signer.fingerprint(),
            policy.serial,
            self._clock(),
            number=number,
            digest=digest,
        )
        document = sign_record(record, who.signer)
        checked = verify_record(document)
        key = layout.version_record_key(new.id, checked.digest)
        with contextlib.suppress(ObjectExistsError):  # the same bytes: content-addressed
            self._backend.put(key, document)
        return self._index_row(checked, key, None, index)

    def write_tag(
        self,
        who: RecordSigner,
        policy: AccessPolicy,
        artifact: str,
        tag: str,
        version_id: str,
        *,
        index: bool = True,
    ) -> RecordIndexRow:
        """Sign and store the next move of ``tag`` (to ``version_id``); returns its index row."""
        tid = tag_id(self._vault_id, artifact, tag)
        for _ in range(_TAG_ATTEMPTS):
            newest = self._newest_tag_record(tid)
            seq = 1 if newest is None else newest[0] + 1
            if seq > MAX_SEQ:
                raise IntegrityError(
                    f"tag {tag!r} of {artifact} has a record numbered {seq - 1}, the highest possible: "
                    "a record planted in storage?"
                )
            previous = None
            if newest is not None:
                try:
                    earlier = verify_record(newest[1]).record
                except MlvaultError:
                    earlier = None  # a damaged earlier record: this move supersedes it
                if earlier is not None and earlier.seq == newest[0]:  # not a copy under another number
                    previous = earlier.version_id
            record = Record(
                TAG,
                self._vault_id,
                artifact,
                version_id,
                who.principal_id,
                who.signer.fingerprint(),
                policy.serial,
                self._clock(),
                tag=tag,
                previous=previous,
                seq=seq,
            )
            document = sign_record(record, who.signer)
            key = layout.tag_record_key(tid, seq)
            try:
                self._backend.put(key, document)
            except ObjectExistsError:
                continue  # another mover took this number: read again
            return self._index_row(verify_record(document), key, seq, index)
        raise ConflictError(f"tag {tag!r} of {artifact} is being moved by others; run the command again")

    def _index_row(self, checked: SignedRecord, key: str, seq: int | None, index: bool) -> RecordIndexRow:
        r = checked.record
        row = RecordIndexRow(
            checked.digest, r.kind, r.artifact, r.version_id, r.tag, seq, r.principal_id, key, r.at
        )
        if index:
            self._index.index_record(row)
        return row

    # -- checking -------------------------------------------------------------------------------

    def check_version(self, version: VersionRow, policy: AccessPolicy, admins: Collection[str]) -> None:
        """``ProvenanceRefusedError`` unless a valid record vouches for ``version`` (or it is legacy)."""
        what = f"{version.artifact}@v{version.number}"
        if (version.id, version.digest) in policy.legacy_versions:
            return
        reasons = []
        for key in sorted(self._backend.list(layout.version_records_prefix(version.id))):
            parsed = layout.parse_version_record_key(key)
            if parsed is None:
                continue
            try:
                signed = self._load(key, parsed[1])
            except MlvaultError as exc:
                reasons.append(f"record {parsed[1][:12]}: {exc}")
                continue
            mismatch = _version_mismatch(signed.record, version, self._vault_id)
            why = mismatch or invalid_reason(signed, policy, admins)
            if why is None:
                return
            reasons.append(f"record {parsed[1][:12]}: {why}")
        detail = "; ".join(reasons) if reasons else "it has no provenance record (pushed outside mlvault?)"
        raise ProvenanceRefusedError(
            f"refusing {what}: no valid provenance record vouches for it ({detail}); an admin can "
            f"re-attest it with `mlvault attest {what}`"
        )

    def check_tag(
        self, artifact: str, tag: str, version: VersionRow, policy: AccessPolicy, admins: Collection[str]
    ) -> None:
        """``ProvenanceRefusedError`` unless the tag's newest valid record names ``version``."""
        what = f"tag {tag!r} of {artifact}"
        newest = self._newest_tag_record(tag_id(self._vault_id, artifact, tag))
        if newest is None:
            if (artifact, tag, version.id) in policy.legacy_tags:
                return
            raise ProvenanceRefusedError(
                f"refusing {what}: it has no provenance record (moved outside mlvault?); move it again "
                f"with `mlvault tag {artifact}@v{version.number} {tag}`"
            )
        seq, document = newest
        try:
            signed = verify_record(document)
        except MlvaultError as exc:
            raise ProvenanceRefusedError(
                f"refusing {what}: its newest record (#{seq}) is unusable: {exc}"
            ) from exc
        r = signed.record
        if r.kind != TAG or r.artifact != artifact or r.tag != tag or r.vault_id != self._vault_id:
            raise ProvenanceRefusedError(f"refusing {what}: its newest record (#{seq}) is for another tag")
        if r.seq != seq:
            raise ProvenanceRefusedError(
                f"refusing {what}: its newest record is stored as #{seq} but signed as #{r.seq}: an older "
                "move copied under a higher number (a rollback) — move the tag again with `mlvault tag`"
            )
        if r.version_id != version.id:
            raise ProvenanceRefusedError(
                f"refusing {what}: the catalog points it at v{version.number}, but its newest signed record "
                f"(#{seq}) names version {r.version_id}: the tag was moved outside a signed record"
            )
        why = invalid_reason(signed, policy, admins)
        if why is not None:
            raise ProvenanceRefusedError(f"refusing {what}: its newest record (#{seq}) is not valid: {why}")

    # -- what policies list ---------------------------------------------------------------------

    def legacy(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, str], ...]]:
        """Every (version id, manifest digest) and (artifact, tag, version id) in the catalog now."""
        versions = self._index.all_versions()
        return (
            tuple(sorted((v.id, v.digest) for v in versions)),
            tuple(sorted((v.artifact, t, v.id) for v in versions for t in v.tags)),
        )

    def with_provenance(
        self,
        current: AccessPolicy | None,
        before: AccessPolicy,
        after: AccessPolicy,
        admins: Collection[str],
    ) -> AccessPolicy:
        """``after`` as it must be signed: the first policy lists what exists; later ones keep the
        records of principals that lost a capability."""
        if current is None:
            versions, tags = self.legacy()
            return replace(after, legacy_versions=frozenset(versions), legacy_tags=frozenset(tags))
        kept = self.kept_after(before, after, admins)
        return replace(after, kept=before.kept | kept) if kept - before.kept else after

    def kept_after(
        self, before: AccessPolicy, after: AccessPolicy, admins: Collection[str]
    ) -> frozenset[str]:
        """Digests of records valid under ``before`` and not under ``after`` (to be kept valid)."""
        changed = {
            p.id
            for p in before.principals
            if p.live and (set(before.rules_of(p.id)) != set(after.rules_of(p.id)) or not _live(after, p.id))
        }
        kept = set()
        for row in self._index.records_by_principals(changed):
            try:
                signed = self._load(row.storage_key, row.digest)
            except MlvaultError:
                continue  # a damaged or missing record is not kept (it was not valid either)
            if signed.record.principal_id not in changed:
                continue
            if invalid_reason(signed, before, admins) is None and invalid_reason(signed, after, admins):
                kept.add(signed.digest)
        return frozenset(kept)

    # -- storage --------------------------------------------------------------------------------

    def _load(self, key: str, digest: str) -> SignedRecord:
        if layout.parse_version_record_key(key) is None and layout.parse_tag_record_key(key) is None:
            raise ProvenanceRefusedError(f"{key!r} is not a provenance record key")
        try:
            document = self._backend.get(key, max_size=MAX_RECORD_BYTES)
        except NotFoundError as exc:
            raise ProvenanceRefusedError("its record object is missing from storage") from exc
        signed = verify_record(document)
        if layout.parse_version_record_key(key) is not None and signed.digest != digest:
            raise ProvenanceRefusedError("the record stored there is not the one its name says")
        return signed

    def _newest_tag_record(self, tid: str) -> tuple[int, bytes] | None:
        seqs = (layout.parse_tag_record_key(k) for k in self._backend.list(layout.tag_records_prefix(tid)))
        numbers = sorted((s[1] for s in seqs if s is not None and s[0] == tid), reverse=True)
        for seq in numbers:
            try:
                return seq, self._backend.get(layout.tag_record_key(tid, seq), max_size=MAX_RECORD_BYTES)
            except NotFoundError:
                continue  # listed, then gone: take the next
        return None


def _version_mismatch(record: Record, version: VersionRow, vault_id: str) -> str | None:
    if record.kind not in (PUSH, ATTEST):
        return f"it is a {record.kind} record"
    claims = (record.vault_id, record.artifact, record.version_id, record.number, record.digest)
    actual = (vault_id, version.artifact, version.id, version.number, version.digest)
    if claims != actual:
        return (
            f"it names {record.artifact}@v{record.number} (version {record.version_id}, manifest "
            f"{(record.digest or '')[:12]}), not this version"
        )
    return None


def _live(policy: AccessPolicy, principal_id: str) -> bool:
    p = policy.by_id(principal_id)
    return p is not None and p.live


def principal_for(policy: AccessPolicy, signing_fingerprint: str) -> str | None:
    """The id of the live principal whose signing key has this fingerprint, if any."""
    for p in policy.principals:
        if p.live and p.signing_fingerprint == signing_fingerprint:
            return p.id
    return None


def record_signer(
    policy: AccessPolicy, candidates: Iterable[Signer], admins: Collection[str]
) -> RecordSigner | None:
    """The first candidate key that is a live principal's signing key or a pinned admin key."""
    for signer in candidates:
        fp = signer.fingerprint()
        pid = principal_for(policy, fp)
        if pid is not None:
            return RecordSigner(signer, pid)
        if fp in set(admins):
            return RecordSigner(signer, None)
    return None
