"""The Vault facade: every operation a user can ask for, delegated to the subsystem that owns it.

A :class:`Vault` holds the parts of one open vault — backend, catalog (and its
``signature_store``, which :mod:`vault.attestation` works on), config and the
:class:`vault.keycache.KeyCache` — and owns no global state. It validates what the user
typed, then hands narrow parts to the operation: push, pull and check live in
:mod:`vault.repository`, creating and opening a vault in :mod:`vault.bootstrap`. The CLI
calls exactly one method per command.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from vault.access.gate import CallerSource, Gate, PolicyReader
from vault.access.patterns import Capability
from vault.audit.events import Action
from vault.audit.service import AuditedSignatures, AuditService, audit_details, pinned_roots
from vault.catalog import ArtifactRow, Catalog, FileRow, VersionRow
from vault.catalog.signatures import SignatureCatalog
from vault.crypto.kdf import RFC9106_LOW_MEMORY, KdfParams
from vault.errors import ConflictError, UsageError
from vault.formats.config import VaultConfig
from vault.formats.manifest import Manifest
from vault.keycache import KeyCache, utc_now
from vault.keys import admin
from vault.keys.admin import SlotInfo
from vault.keys.rekey import rekey_namespace
from vault.refs import Ref, check_artifact_name, check_tag, parse_ref
from vault.repository import Repository
from vault.repository.check import CheckReport, run_check
from vault.repository.manifests import load_manifest
from vault.repository.pull import PullResult, Verifier, pull_version
from vault.repository.push import PushRequest, PushResult, push_version
from vault.repository.reencrypt import RekeyReport, rekey_and_reencrypt
from vault.storage import Backend

Progress = Callable[[int], None]
KINDS = ("model", "dataset")

if TYPE_CHECKING:  # and imported where used: the backup stack loads prometheus_client (start-up)
    from vault.access.policy import AccessPolicy
    from vault.access.provenance_gate import VaultProvenance
    from vault.access.service import AccessControl
    from vault.backup.run import BackupRunner
    from vault.backup.schedules import BackupSchedules, Clock
    from vault.clientstate import ClientState
    from vault.clientstate.identities import Identity, PublicIdentity
    from vault.signing.signers import Signer

__all__ = ["CheckReport", "PullResult", "PushResult", "RekeyReport", "SlotInfo", "Vault", "VersionDetails"]


def default_principal() -> str:
    """user@host of the current process, the creator recorded on versions."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def default_workers() -> int:
    """Worker threads for hashing and crypto: one per core, at least two."""
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class VersionDetails:
    """A version with its files, metadata and lineage."""

    version: VersionRow
    files: list[FileRow]
    metadata: dict[str, str]
    parents: list[str]


class Vault:
    """An open vault."""

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        config: VaultConfig,
        keys: KeyCache,
        *,
        principal: str | None = None,
        workers: int | None = None,
        client_state: ClientState | None = None,
        caller: CallerSource | None = None,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.signature_store: SignatureCatalog = AuditedSignatures(catalog, lambda: self.audit)
        self.config = config
        self.keys = keys
        self.principal = principal or default_principal()
        self.repository = Repository(backend, catalog, keys, config, workers or default_workers())
        self.client_state = client_state
        if caller is None and keys.sources.identity is not None:
            caller = self._identity_public
        state = client_state
        self._policy_reader = PolicyReader(
            catalog, config.vault_id, lambda: self.access(state) if state is not None else None
        )
        self.gate = Gate(self._access_policy, caller, keys.clock)

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the catalog and the backend."""
        self.catalog.close()
        self.backend.close()

    @property
    def vault_id(self) -> bytes:
        """The vault's 16-byte id."""
        return bytes.fromhex(self.config.vault_id)

    @functools.cached_property
    def provenance(self) -> VaultProvenance:
        """Provenance records of pushes and tag moves under the access policy (vault.access.records)."""
        from vault.access.provenance_gate import provenance_for

        state = self.client_state
        return provenance_for(
            self.backend,
            self.catalog,
            self.keys,
            self.config.vault_id,
            self._access_policy,
            lambda: self.access(state) if state is not None else None,
        )

    @functools.cached_property
    def audit(self) -> AuditService:
        """The vault's audit log (vault.audit.service); rows name the identity when one is given."""
        return AuditService(
            self.catalog,
            self.backend,
            self.vault_id,
            principal=self.principal,
            identity=self.keys.identity,
            clock=self.keys.clock,
            principals=lambda: policy.principals if (policy := self._access_policy()) else (),
            roots=lambda: pinned_roots(self.client_state, self.config.vault_id),
        )

    # -- capability checks (vault.access.gate), asked before any work --------------------------

    def require(self, capability: str | Capability, *targets: str, action: str | None = None) -> None:
        """``PermissionDeniedError`` (exit 15) unless the caller holds ``capability`` on each target
        (an artifact name or a reference); the policy is read afresh."""
        paths = [parse_ref(t).artifact for t in targets]
        self.gate.require(capability, *paths, action=action)

    def _identity_public(self) -> PublicIdentity:
        identity = self.keys.identity()
        assert identity is not None  # only used when an identity source was given
        return identity.public

    def _access_policy(self) -> AccessPolicy | None:
        return self._policy_reader()

    def unlock(self, *, owner: bool = False) -> None:
        """Fail fast: load the identity given, else (or with ``owner``) open the owner key."""
        with self.audit.failures(Action.UNLOCK, "vault"):
            if owner:
                self.keys.owner_key()
            else:
                self.keys.unlock()

    def push(
        self,
        path: str | os.PathLike[str],
        artifact: str,
        *,
        kind: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
        parents: list[str] | tuple[str, ...] = (),
        progress: Progress | None = None,
        allow_unsafe: bool = False,
    ) -> PushResult:
        """Store ``path`` as the next version of ``artifact`` (dangerous pickles refused unless allowed)."""
        check_artifact_name(artifact)
        self.require(Capability.PUSH, artifact, action="push")
        if tags:
            self.require(Capability.TAG, artifact, action="tag")
        if parents:  # lineage names its parents: the caller must be allowed to see them
            self.require(Capability.LIST, *parents, action="log")
        existing_kind = self.catalog.artifact_kind(artifact)
        kind = kind or existing_kind or "model"
        if kind not in KINDS:
            raise UsageError(f"invalid kind {kind!r}: use model or dataset")
        if existing_kind and existing_kind != kind:
            raise ConflictError(f"{artifact} is a {existing_kind}, not a {kind}; drop --kind or fix it")
        metadata = dict(metadata or {})
        for key in metadata:
            if not key or len(key) > 255:
                raise UsageError(f"invalid metadata key {key!r}")
        request = PushRequest(
            path=Path(path),
            artifact=artifact,
            kind=kind,
            tags=tuple(check_tag(t) for t in tags),
            metadata=metadata,
            parents=tuple(self.resolve(p) for p in parents),
            principal=self.principal,
            seal=self.provenance.sealer(),  # under an access policy: the signed record, before any work
            allow_unsafe=allow_unsafe,
        )
        with self.audit.failures(Action.PUSH, artifact):
            result = push_version(request, self.repository, progress=progress)
        self.audit.changed(Action.PUSH, f"{artifact}@v{result.number}", audit_details(result))
        return result

    def resolve(self, ref: str | Ref) -> VersionRow:
        """The version a reference names."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        version = self.catalog.resolve(
            parsed.artifact, number=parsed.number, tag=parsed.tag, digest_prefix=parsed.digest_prefix
        )
        with self.audit.failures(Action.VERIFY, f"{version.artifact}@v{version.number}"):
            self.provenance.check(version, parsed.tag)  # exit 13 without a valid provenance record
        return version

    def load_manifest(self, version: VersionRow) -> Manifest:
        """Read, authenticate and cross-check a version's manifest from storage."""
        keyring = self.keys.keyring(version.ring_id)
        return load_manifest(self.backend, keyring, self.config.vault_id, version)

    def pull(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        verifier: Verifier | None = None,
    ) -> PullResult:
        """Write the version ``ref`` names to ``dest`` (verified, atomic).

        ``verifier`` (e.g. the trust policy's pull verifier) sees the version and its
        authenticated manifest before anything is written; it raises to refuse the pull.
        """
        self.require(Capability.READ, ref, action="pull")
        version = self.resolve(ref)
        target = f"{version.artifact}@v{version.number}"
        with self.audit.failures(Action.PULL, target):
            hook = self.audit.before_read(Action.PULL, target, version, verifier)
            return pull_version(version, Path(dest), self.repository, progress=progress, verifier=hook)

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts under ``prefix`` that the caller may ``list`` (filtered inside the query)."""
        caller = self.gate.require_listing("ls")
        if caller.unrestricted:
            return self.catalog.list_artifacts(prefix)
        ids = self.catalog.artifact_ids(prefix)
        shown = self.gate.visible(ids, caller) or set()
        return self.catalog.list_artifacts(prefix, only_ids=[ids[name] for name in shown])

    def log(self, artifact: str) -> list[VersionRow]:
        """Versions of ``artifact``, newest first (``list`` on it needed)."""
        self.require(Capability.LIST, check_artifact_name(artifact), action="log")
        return self.catalog.list_versions(artifact)

    def show(self, ref: str) -> VersionDetails:
        """A version with files, metadata and lineage (from the catalog; no key needed); parents the
        caller may not ``list`` are left out."""
        self.require(Capability.READ, ref, action="show")
        version = self.resolve(ref)
        contents = self.catalog.version_details(version.id)
        shown = self.gate.visible(p.split("@", 1)[0] for p in contents.parents)
        parents = [p for p in contents.parents if shown is None or p.split("@", 1)[0] in shown]
        self.audit.record(
            Action.SHOW, f"{version.artifact}@v{version.number}", details={"files": len(contents.files)}
        )
        return VersionDetails(version, contents.files, contents.metadata, parents)

    def tag(self, ref: str, tag: str) -> tuple[VersionRow, str | None]:
        """Point ``tag`` at the version ``ref`` names; returns it and the previous version id."""
        self.require(Capability.TAG, ref, action="tag")
        version = self.resolve(ref)
        self.provenance.record_tag(version, check_tag(tag))  # signed before the catalog row moves
        previous = self.catalog.set_tag(version, check_tag(tag), self.principal)
        details = {"version": f"v{version.number}", "previous": previous}
        self.audit.changed(Action.TAG, f"{version.artifact}@{tag}", details)
        return version, previous

    def attest(self, ref: str, signer: Signer | None = None) -> tuple[VersionRow, str]:
        """Sign a provenance record for the version ``ref`` names (needs admin on it); returns the
        version and the record's digest (vault.access.provenance_gate)."""
        self.require(Capability.ADMIN, ref, action="attest")
        version, digest = self.provenance.attest(ref, signer)
        self.audit.changed(Action.ATTEST, f"{version.artifact}@v{version.number}", {"record": digest})
        return version, digest

    def check(self, *, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
        """Verify structure; with ``read_data`` decrypt and verify every chunk and manifest (admin)."""
        self.gate.require_admin("check")
        return run_check(self.repository, read_data=read_data, progress=progress)

    def access(self, state: ClientState, clock: Clock = utc_now) -> AccessControl:
        """The signed access policy (vault.access.service), with ``state``'s admin pins; this vault
        adds and removes key slots for read grants."""
        from vault.access.service import AccessControl, access_pins

        return AccessControl(
            self.catalog,
            access_pins(state),
            state.trust_pins,
            self,
            vault_id=self.config.vault_id,
            actor=self.principal,
            clock=clock,
            records=self.provenance.records,  # the first policy lists what exists; revokes keep records
            audit=self.audit.changed,  # one audit row per policy change
        )

    def backup_schedules(self, clock: Clock = utc_now) -> BackupSchedules:
        """Backup schedules, their history and status (vault.backup.schedules); opens no key (admin)."""
        self.gate.require_admin("manage backups")
        from vault.backup.schedules import BackupSchedules

        return BackupSchedules(self.catalog, principal=self.principal, clock=clock)

    def backup_runner(
        self, *, clock: Clock = utc_now, lease_ttl: timedelta | None = None, allow_insecure_http: bool = False
    ) -> BackupRunner:
        """Runs backup schedules (vault.backup.run): storage, catalog, recovery public keys (admin)."""
        self.gate.require_admin("run backups")
        from vault.backup.run import DEFAULT_LEASE_TTL, BackupRunner, target_opener

        return BackupRunner(
            self.backend,
            self.catalog,
            self.config.vault_id,
            clock=clock,
            lease_ttl=lease_ttl or DEFAULT_LEASE_TTL,
            open_target=target_opener(allow_insecure_http),
        )

    # -- key slots (vault.keys.admin) -------------------------------------------------------------

    def key_slots(self) -> list[SlotInfo]:
        """Every key slot, owner ring first, with its catalog record; damaged ones as ``damaged``."""
        self.gate.require_admin("list key slots")
        return admin.list_slots(self.backend, self.vault_id, self.catalog)

    def add_passphrase_slot(
        self,
        passphrase: bytes,
        kdf: KdfParams = RFC9106_LOW_MEMORY,
        *,
        label: str | None = None,
        allow_slow_kdf: bool = False,
    ) -> str:
        """Another passphrase on the owner key; returns the new slot id."""
        self.gate.require_admin("add key slots")
        return self.audit.keys_changed(
            admin.add_passphrase(
                self.keys,
                self.backend,
                self.catalog,
                passphrase,
                kdf,
                label=label,
                allow_slow_kdf=allow_slow_kdf,
            )
        )

    def add_kms_slot(self, key_id: str, *, label: str | None = None) -> str:
        """The owner key wrapped by an AWS KMS data key under ``key_id``; returns the new slot id."""
        self.gate.require_admin("add key slots")
        return self.audit.keys_changed(
            admin.add_kms(self.keys, self.backend, self.catalog, key_id, label=label)
        )

    def add_recipient(self, public: PublicIdentity, namespace: str, *, label: str | None = None) -> str:
        """Wrap ``namespace``'s keyring to ``public`` (it can then read and push there)."""
        _check_namespace(namespace)
        self.gate.require_admin("add key slots")
        return self.audit.keys_changed(
            admin.add_recipient(self.keys, self.backend, self.catalog, public, namespace, label=label)
        )

    def add_recovery(self, public: PublicIdentity | None, *, label: str | None = None) -> str:
        """Wrap the owner key to ``public`` (its private key opens and restores everything), or with
        None to a recovery identity generated here and kept sealed under the owner key."""
        self.gate.require_admin("add key slots")
        return self.audit.keys_changed(
            admin.add_recovery(self.keys, self.backend, self.catalog, public, label=label)
            if public is not None
            else admin.add_generated_recovery(self.keys, self.backend, self.catalog, label=label)[0]
        )

    def kept_recovery(self, slot_id: str | None = None) -> tuple[str, Identity]:
        """The recovery identity this vault keeps (for ``slot_id``, or its only one); needs the owner key."""
        self.gate.require_admin("export the recovery identity")
        return admin.kept_recovery(self.keys, self.backend, slot_id)

    def remove_slot(self, slot_id: str) -> SlotInfo:
        """Delete a key slot (never the last one that opens the owner key)."""
        self.gate.require_admin("remove key slots")
        return self.audit.keys_changed(admin.remove_slot(self.keys, self.backend, self.catalog, slot_id))

    def rekey(
        self,
        namespace: str,
        *,
        reencrypt: bool = False,
        drop_unrewrappable: bool = False,
        progress: Progress | None = None,
    ) -> RekeyReport:
        """A new data-key epoch for ``namespace``; with ``reencrypt`` every chunk and manifest
        rewritten under the newest epoch, then the older epochs retired."""
        _check_namespace(namespace)
        self.gate.require_admin("rekey")
        if reencrypt:
            return self.audit.keys_changed(
                rekey_and_reencrypt(
                    self.repository, namespace, drop_unrewrappable=drop_unrewrappable, progress=progress
                )
            )
        result, _ = rekey_namespace(
            self.keys, self.backend, self.catalog, namespace, drop_unrewrappable=drop_unrewrappable
        )
        return self.audit.keys_changed(RekeyReport(result))


def _check_namespace(namespace: str) -> None:
    # A deeper namespace (team/secret) qualifies only with a keyring of its own (vault.keys.subtrees).
    check_artifact_name(f"{namespace}/x")
