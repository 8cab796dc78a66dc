"""The audit log of one open vault: record operations, checkpoint the chain, verify it, read it.

:class:`AuditService` joins the pure chain (:mod:`vault.audit.chain`), the catalog's appender
(:mod:`vault.catalog.audit`) and checkpoint storage (:mod:`vault.audit.log`). It receives the
narrow parts it needs — the catalog's audit table, the backend, the vault id, and callables for
the acting principal, the signing key and the time — never the facade.

**Recording.** :meth:`record` appends one row or fails the operation (``AuditUnavailableError``,
exit 7). Reads record *before* the data is handed over (``show`` before returning, ``pull`` from
the pre-write hook), so nothing is read unaudited; writes record after the catalog commit, and a
failure then says the operation happened but could not be recorded. :meth:`failures` records a
failed operation: an ``AuthenticationError`` as a failed ``unlock``, a ``VerificationError`` or
``IntegrityError`` as a failed ``verify``, anything else as the operation itself, ``failed``.

**Checkpoints** (:meth:`checkpoint`) are written by commands that change the vault (through
:meth:`changed`) and by ``audit verify``, never by read-only commands: they pin the head row and
every multiple of :data:`CHECKPOINT_EVERY` not yet pinned in storage, so "every 1,000 rows" holds
as soon as a command that may write storage runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import RowMapping

from vault import layout
from vault.audit import chain
from vault.audit.anomalies import Anomaly, find_anomalies
from vault.audit.attribution import DETAIL_IDENTITY, PolicyPrincipal
from vault.audit.chain import AuditRow, StoredRow, VerifyReport
from vault.audit.events import Action, Outcome, artifact_of
from vault.audit.log import (
    CheckpointKeyVerifier,
    CheckpointSigner,
    TrustedCheckpointSigners,
    load_checkpoints,
    make_checkpoint,
    signer_fingerprint,
    store_checkpoint,
)
from vault.catalog import VersionRow
from vault.catalog.audit import PendingRow
from vault.catalog.signatures import SignatureCatalog
from vault.errors import (
    AuditUnavailableError,
    AuthenticationError,
    IntegrityError,
    MlvaultError,
    VerificationError,
)
from vault.storage import Backend

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.clientstate import ClientState
    from vault.clientstate.identities import Identity
    from vault.formats.manifest import Manifest

CHECKPOINT_EVERY = 1000
_RECORDED = "_mlvault_audit_recorded"  # set on an exception once a failed row names it
Clock = Callable[[], dt.datetime]
ReadHook = Callable[[VersionRow, "Manifest"], object]
T = TypeVar("T")


class PushedVersion(Protocol):
    """What a push row records (a :class:`vault.repository.push.PushResult` is one)."""

    @property
    def version_id(self) -> str: ...  # noqa: D102
    @property
    def size(self) -> int: ...  # noqa: D102
    @property
    def files(self) -> int: ...  # noqa: D102
    @property
    def tags(self) -> tuple[str, ...]: ...  # noqa: D102


def audit_details(pushed: PushedVersion) -> dict[str, Any]:
    """The details of a push row."""
    return {
        "version": pushed.version_id,
        "bytes": pushed.size,
        "files": pushed.files,
        "tags": list(pushed.tags),
    }


class AuditStore(Protocol):
    """What the service needs of the catalog (a :class:`vault.catalog.Catalog` is one)."""

    def append_audit(
        self,
        link: Callable[[StoredRow | None, AuditRow], StoredRow],
        rows: Sequence[PendingRow],
        *,
        key_event_row: Callable[[RowMapping], PendingRow] | None = None,
    ) -> list[StoredRow]:
        """Append rows under the append lock."""
        ...

    def audit_head(self) -> StoredRow | None:
        """The newest row."""
        ...

    def audit_stored_rows(self, after: int = 0, batch: int = ...) -> Iterator[StoredRow]:
        """Rows in seq order."""
        ...

    def audit_rows_at(self, seqs: Sequence[int]) -> dict[int, StoredRow]:
        """Rows by seq."""
        ...

    def audit_events(
        self, *, since: dt.datetime | None = None, principal: str | None = None, action: str | None = None
    ) -> list[AuditRow]:
        """Rows matching the filters."""
        ...


@dataclass(frozen=True)
class AuditVerification:
    """What ``audit verify`` found, and the checkpoint it wrote (if the chain was intact)."""

    report: VerifyReport
    signers: tuple[str, ...]
    written: tuple[int, ...]


class AuditService:
    """Records, checkpoints, verifies and reads the audit log of one vault."""

    def __init__(
        self,
        store: AuditStore,
        backend: Backend,
        vault_id: bytes,
        *,
        principal: str,
        identity: Callable[[], Identity | None],
        clock: Clock,
        every: int = CHECKPOINT_EVERY,
        principals: Callable[[], Iterable[PolicyPrincipal]] | None = None,
        roots: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self._store = store
        self._backend = backend
        self._vault_id = vault_id
        self._default_principal = principal
        self._identity = identity
        self._clock = clock
        self._every = every
        self._principals = principals
        self._roots = roots

    def _acting(self) -> Identity | None:
        try:
            return self._identity()
        except MlvaultError:  # an identity that does not load: its failure is recorded elsewhere
            return None

    def principal(self) -> str:
        """Who rows name: the identity's name with ``--identity``, else the vault's principal."""
        identity = self._acting()
        return self._default_principal if identity is None else identity.name

    def _signer(self) -> CheckpointSigner | None:
        identity = self._acting()
        return None if identity is None else CheckpointSigner(identity.ecdsa_private)

    def _link(self, previous: StoredRow | None, row: AuditRow) -> StoredRow:
        return chain.append(previous, row, self._vault_id)

    def record(
        self,
        action: str,
        target: str,
        outcome: str = Outcome.OK,
        details: Mapping[str, Any] | None = None,
    ) -> StoredRow:
        """Append one row (and any key events not yet in the log); AuditUnavailableError if it fails.

        With an identity, the row names it and records its fingerprint (``details["identity"]``),
        which is how rows are matched to the access policy's principals.
        """
        identity = self._acting()
        row_details = dict(details or {})
        if identity is not None:
            row_details[DETAIL_IDENTITY] = identity.public.fingerprint
        name = self._default_principal if identity is None else identity.name
        pending = PendingRow(self._clock(), name, action, target, outcome, row_details)
        return self._store.append_audit(self._link, [pending], key_event_row=_key_event_row)[-1]

    def changed(self, action: str, target: str, details: Mapping[str, Any] | None = None) -> StoredRow:
        """Record a successful change to the vault, then checkpoint the chain in storage."""
        stored = self.record(action, target, Outcome.OK, details)
        self.checkpoint()
        return stored

    def keys_changed(self, value: T) -> T:
        """Import the key events just written into the log, checkpoint it, and return ``value``."""
        self._store.append_audit(self._link, [], key_event_row=_key_event_row)
        self.checkpoint()
        return value

    def before_read(
        self, action: str, target: str, version: VersionRow, verifier: ReadHook | None
    ) -> Callable[[VersionRow, Manifest], None]:
        """A pull hook: ``verifier`` first, then the row, before the first byte is written."""

        def hook(checked: VersionRow, manifest: Manifest) -> None:
            if verifier is not None:
                verifier(checked, manifest)
            self.record(action, target, details={"bytes": version.size, "files": version.file_count})

        return hook

    @contextlib.contextmanager
    def failures(self, action: str, target: str) -> Iterator[None]:
        """Record a failed row when the body raises an MlvaultError (re-raised unchanged).

        Contexts may nest (``verify`` around a ``resolve`` that checks provenance): an error is
        recorded once, by the innermost context it passes through.
        """
        try:
            yield
        except AuditUnavailableError:
            raise
        except MlvaultError as exc:
            if getattr(exc, _RECORDED, False):
                raise
            setattr(exc, _RECORDED, True)
            during = {"during": action, "error": type(exc).__name__}
            if isinstance(exc, AuthenticationError):
                self.record(Action.UNLOCK, target, Outcome.FAILED, during)
            elif isinstance(exc, VerificationError | IntegrityError):
                self.record(Action.VERIFY, target, Outcome.FAILED, during)
            else:
                self.record(action, target, Outcome.FAILED, {"error": type(exc).__name__})
            raise

    # -- checkpoints -------------------------------------------------------------------------------

    def checkpoint(self) -> tuple[int, ...]:
        """Pin the head and every multiple of N since the last one pinned; returns the rows newly pinned.

        Walks back from the head over multiples of N until one is found in storage, so a vault
        with many checkpoints costs one existence check per command, not a listing.
        """
        head = self._store.audit_head()
        if head is None:
            return ()
        missing = []
        seq = head.row.seq - 1 - (head.row.seq - 1) % self._every
        while seq > 0 and not self._backend.exists(layout.audit_checkpoint_key(seq)):
            missing.append(seq)
            seq -= self._every
        rows = self._store.audit_rows_at(missing) if missing else {}
        rows[head.row.seq] = head
        signer = self._signer()
        written = []
        for seq in sorted(rows):
            cp = make_checkpoint(self._vault_id, chain.checkpoint_after(rows[seq]), self._clock(), signer)
            if store_checkpoint(self._backend, cp):
                written.append(seq)
        return tuple(written)

    # -- verification ------------------------------------------------------------------------------

    def verify(self) -> AuditVerification:
        """Check the chain against storage's checkpoints; pin the head when it is intact.

        A bad chain is recorded (a failed ``verify`` of ``audit``) and raised as IntegrityError
        naming the first bad row.
        """
        report, signers = self.check()
        if not report.ok:
            self.record(Action.VERIFY, "audit", Outcome.FAILED, {"first_bad_seq": report.first_bad_seq})
            at = "" if report.first_bad_seq is None else f" (first bad row: {report.first_bad_seq})"
            raise IntegrityError(f"audit log verification failed{at}: {report.reason}")
        return AuditVerification(report, signers, self.checkpoint())

    def checkpoint_signers(self) -> CheckpointKeyVerifier:
        """Who may sign checkpoints: the pinned root admin keys and the policy's principals, as the
        callables given at construction return them (unsigned checkpoints pass). A service given
        neither (a bare Python-API caller) knows no anchor and accepts any valid signature."""
        if self._roots is None and self._principals is None:
            return CheckpointKeyVerifier()
        roots = () if self._roots is None else self._roots()
        principals = () if self._principals is None else self._principals()
        return TrustedCheckpointSigners(roots, principals)

    def check(self) -> tuple[VerifyReport, tuple[str, ...]]:
        """The verification report and the checkpoint signers, writing nothing."""
        try:
            checkpoints = load_checkpoints(self._backend)
        except IntegrityError as exc:
            return VerifyReport(False, None, str(exc)), ()
        report = chain.verify(
            self._store.audit_stored_rows(),
            checkpoints,
            vault_id=self._vault_id,
            verifier=self.checkpoint_signers(),
        )
        signers = set()
        for cp in checkpoints:
            with contextlib.suppress(ValueError):
                signers.add(signer_fingerprint(cp))
        return report, tuple(sorted(signers))

    # -- reading -----------------------------------------------------------------------------------

    def rows(
        self,
        *,
        since: dt.timedelta | None = None,
        principal: str | None = None,
        artifact: str | None = None,
        action: str | None = None,
    ) -> list[AuditRow]:
        """Rows matching every filter given, oldest first."""
        start = None if since is None else self._clock() - since
        rows = self._store.audit_events(since=start, principal=principal, action=action)
        if artifact is not None:
            rows = [r for r in rows if artifact_of(r.target) == artifact]
        return rows

    def anomalies(
        self, window: dt.timedelta, k: float = 5.0, *, principals: Iterable[PolicyPrincipal] | None = None
    ) -> tuple[list[Anomaly], VerifyReport]:
        """Anomalies over ``window`` (each principal against its own baseline) and the chain check.

        ``principals`` (removed ones included) default to those of the verified access policy, as
        the ``principals`` callable given at construction returns them.
        """
        if principals is None:
            principals = () if self._principals is None else self._principals()
        report, _ = self.check()
        now = self._clock()
        events = self._store.audit_events(since=now - window)
        return find_anomalies(events, now, window, k, chain=report, principals=principals), report


def pinned_roots(state: ClientState | None, vault_id: str) -> tuple[str, ...]:
    """The root admin keys this client pinned for the vault (trust- and access-policy admin pins)."""
    if state is None:
        return ()
    from vault.access.service import access_pins

    return tuple(sorted({*state.trust_pins.admins(vault_id), *access_pins(state).admins(vault_id)}))


def _key_event_row(event: RowMapping) -> PendingRow:
    """A ``key_events`` row as an audit row: action ``key``, target ``ring/slot``."""
    at = event["at"]
    if isinstance(at, dt.datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    details = {"event": str(event["action"]), "kind": str(event["kind"]), "key_event": int(event["id"])}
    target = f"{event['ring']}/{event['slot_id']}"
    return PendingRow(at, str(event["actor"]), Action.KEY, target, Outcome.OK, details)


class AuditedSignatures(SignatureCatalog):
    """The catalog's signature store, recording a ``sign`` row (and a checkpoint) per stored signature."""

    def __init__(self, catalog: Catalog, audit: Callable[[], AuditService]) -> None:
        super().__init__(catalog.engine)
        self._catalog = catalog
        self._audit = audit

    def add_signature(self, version_id: str, signer_fingerprint: str, bundle: bytes, created_by: str) -> int:
        """Store the bundle, then record it (fail closed: the command fails if the row cannot be written)."""
        row_id = super().add_signature(version_id, signer_fingerprint, bundle, created_by)
        target = self._catalog.audit_version_ref(version_id) or version_id
        self._audit().changed(Action.SIGN, target, {"signer": signer_fingerprint, "signature": row_id})
        return row_id
