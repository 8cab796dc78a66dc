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

from vault.audit.events import Action
from vault.audit.service import AuditedSignatures, AuditService, audit_details
from vault.backup.run import DEFAULT_LEASE_TTL, BackupRunner, target_opener
from vault.backup.schedules import BackupSchedules, Clock
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

if TYPE_CHECKING:
    from vault.access.service import AccessControl
    from vault.clientstate import ClientState
    from vault.clientstate.identities import PublicIdentity

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
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.signature_store: SignatureCatalog = AuditedSignatures(catalog, lambda: self.audit)
        self.config = config
        self.keys = keys
        self.principal = principal or default_principal()
        self.repository = Repository(backend, catalog, keys, config, workers or default_workers())

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
    def audit(self) -> AuditService:
        """The vault's audit log (vault.audit.service); rows name the identity when one is given."""
        return AuditService(
            self.catalog,
            self.backend,
            self.vault_id,
            principal=self.principal,
            identity=self.keys.identity,
            clock=self.keys.clock,
        )

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
    ) -> PushResult:
        """Store ``path`` as the next version of ``artifact``."""
        check_artifact_name(artifact)
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
        )
        with self.audit.failures(Action.PUSH, artifact):
            result = push_version(request, self.repository, progress=progress)
        self.audit.changed(Action.PUSH, f"{artifact}@v{result.number}", audit_details(result))
        return result

    def resolve(self, ref: str | Ref) -> VersionRow:
        """The version a reference names."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        return self.catalog.resolve(
            parsed.artifact, number=parsed.number, tag=parsed.tag, digest_prefix=parsed.digest_prefix
        )

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
        version = self.resolve(ref)
        target = f"{version.artifact}@v{version.number}"
        with self.audit.failures(Action.PULL, target):
            hook = self.audit.before_read(Action.PULL, target, version, verifier)
            return pull_version(version, Path(dest), self.repository, progress=progress, verifier=hook)

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts under ``prefix``."""
        return self.catalog.list_artifacts(prefix)

    def log(self, artifact: str) -> list[VersionRow]:
        """Versions of ``artifact``, newest first."""
        return self.catalog.list_versions(check_artifact_name(artifact))

    def show(self, ref: str) -> VersionDetails:
        """A version with files, metadata and lineage (from the catalog; no key needed)."""
        version = self.resolve(ref)
        contents = self.catalog.version_details(version.id)
        self.audit.record(
            Action.SHOW, f"{version.artifact}@v{version.number}", details={"files": len(contents.files)}
        )
        return VersionDetails(version, contents.files, contents.metadata, contents.parents)

    def tag(self, ref: str, tag: str) -> tuple[VersionRow, str | None]:
        """Point ``tag`` at the version ``ref`` names; returns it and the previous version id."""
        version = self.resolve(ref)
        previous = self.catalog.set_tag(version, check_tag(tag), self.principal)
        details = {"version": f"v{version.number}", "previous": previous}
        self.audit.changed(Action.TAG, f"{version.artifact}@{tag}", details)
        return version, previous

    def check(self, *, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
        """Verify structure; with ``read_data`` decrypt and verify every chunk and manifest."""
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
        )

    def backup_schedules(self, clock: Clock = utc_now) -> BackupSchedules:
        """Backup schedules, their history and status (vault.backup.schedules); opens no key."""
        return BackupSchedules(self.catalog, principal=self.principal, clock=clock)

    def backup_runner(
        self, *, clock: Clock = utc_now, lease_ttl: timedelta | None = None, allow_insecure_http: bool = False
    ) -> BackupRunner:
        """Runs backup schedules (vault.backup.run): storage, catalog and recovery public keys only."""
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
        return self.audit.keys_changed(
            admin.add_kms(self.keys, self.backend, self.catalog, key_id, label=label)
        )

    def add_recipient(self, public: PublicIdentity, namespace: str, *, label: str | None = None) -> str:
        """Wrap ``namespace``'s keyring to ``public`` (it can then read and push there)."""
        _check_namespace(namespace)
        return self.audit.keys_changed(
            admin.add_recipient(self.keys, self.backend, self.catalog, public, namespace, label=label)
        )

    def add_recovery(self, public: PublicIdentity, *, label: str | None = None) -> str:
        """Wrap the owner key to ``public``: its private key opens (and restores) everything."""
        return self.audit.keys_changed(
            admin.add_recovery(self.keys, self.backend, self.catalog, public, label=label)
        )

    def remove_slot(self, slot_id: str) -> SlotInfo:
        """Delete a key slot (never the last one that opens the owner key)."""
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
    if "/" in namespace:
        raise UsageError(f"invalid namespace {namespace!r}: keyrings belong to top-level namespaces")
    check_artifact_name(f"{namespace}/x")
