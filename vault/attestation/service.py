"""Sign vault versions and verify them against the vault's trust policy.

``vault.signing`` knows bundles, keys and policies but nothing about vaults; the catalog stores
bytes but vouches for nothing. :class:`SignatureService` joins them, and is where the threat
model's "a catalog writer cannot make a verifier accept a version a trusted key did not sign" is
kept. It receives narrow collaborators — the versions (resolve a ref, load its authenticated
manifest), the catalog's signature store and this client's trust pins — never the facade's
internals.

* **Verifying a version** checks every stored bundle against the keys of the trust policy, then
  that the signed statement names *this* version (:mod:`vault.attestation.claims`) and that its
  files equal the manifest's (path → SHA-256, nothing missing, nothing extra), and finally the
  policy's rule for the artifact (most specific glob, threshold of distinct keys). Bundles by keys
  outside the policy are ignored; a bundle that claims a policy key but fails is reported, and is
  the error raised when the policy is not met.
* **Failures are audited.** With an audit log (:class:`FailureLog`, the vault's
  :class:`~vault.audit.service.AuditService`), :meth:`SignatureService.verify` leaves exactly one
  ``failed`` row per failed verification (``verify`` for a bad or missing signature, a tampered or
  rolled-back policy, a ref that names nothing; ``unlock`` when the manifest's key does not open),
  as a failed unlock does. On pull the same check runs inside pull's own failure recording.
* **On pull**, :meth:`SignatureService.verify_for_pull` runs the same check before a byte is
  written. Pull already compares every file's SHA-256 with the manifest while writing it, so
  comparing the signed digests with the manifest's costs no second read. Verification is
  *required only where a policy rule applies*: with no policy at all, or no rule matching the
  artifact, it returns ``None`` and the pull goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from vault.attestation.claims import check_claims, manifest_digests, signed_files, version_claims
from vault.attestation.trust import AcceptedPolicy, PolicyView, VaultTrustPolicy
from vault.audit.events import Action
from vault.catalog import VersionRow
from vault.catalog.signatures import SignatureCatalog
from vault.clientstate.pins import TrustPins
from vault.errors import (
    MalformedSignatureError,
    NotFoundError,
    UntrustedSignerError,
    UsageError,
    VerificationError,
)
from vault.formats.manifest import Manifest
from vault.signing import keys
from vault.signing.oms import parse_bundle, sign_files
from vault.signing.policy import evaluate, select_rule
from vault.signing.signers import Signer
from vault.signing.verify import compare_files, verify_bundle


class Versions(Protocol):
    """What the service needs of a vault: find a version, read its authenticated manifest."""

    def resolve(self, ref: str) -> VersionRow:
        """The version ``ref`` names."""
        ...

    def load_manifest(self, version: VersionRow) -> Manifest:
        """The version's manifest, decrypted and cross-checked against the catalog."""
        ...


class FailureLog(Protocol):
    """Where failed verifications are recorded (a :class:`vault.audit.service.AuditService` is one)."""

    def failures(self, action: str, target: str) -> AbstractContextManager[None]:
        """Record one failed row if the body raises an MlvaultError (re-raised unchanged)."""
        ...


@dataclass(frozen=True)
class SignResult:
    """A signature stored for a version."""

    artifact: str
    number: int
    version_id: str
    signature_id: int
    signer_fingerprint: str
    signer_name: str
    files: int


@dataclass(frozen=True)
class VerifyReport:
    """Why a version's signatures were accepted."""

    artifact: str
    number: int
    version_id: str
    rule: str
    threshold: int
    trusted_signers: tuple[str, ...]
    ignored: tuple[str, ...]
    policy_serial: int
    admin_pinned_now: str | None = None


class PullVerifier:
    """The hook ``Vault.pull`` calls before writing; keeps the report for the caller to show."""

    def __init__(self, service: SignatureService) -> None:
        self._service = service
        self.report: VerifyReport | None = None
        self.ran = False

    def __call__(self, version: VersionRow, manifest: Manifest) -> None:
        """Verify ``version`` per the trust policy; raises a ``VerificationError`` to stop the pull."""
        self.report = self._service.verify_for_pull(version, manifest)
        self.ran = True


class SignatureService:
    """Sign versions, verify them against the trust policy, and edit that policy."""

    def __init__(
        self,
        versions: Versions,
        store: SignatureCatalog,
        pins: TrustPins,
        *,
        vault_id: str,
        principal: str,
        audit: FailureLog | None = None,
    ) -> None:
        self._versions = versions
        self._audit = audit
        self._store = store
        self._vault_id = vault_id
        self._principal = principal
        self.trust = VaultTrustPolicy(store, pins, vault_id=vault_id, principal=principal)

    # -- signing -----------------------------------------------------------------------

    def sign(self, ref: str, signer: Signer, signer_name: str | None = None) -> SignResult:
        """Sign the version ``ref`` names and store the bundle (one more row per signature)."""
        version = self._versions.resolve(ref)
        files = signed_files(self._versions.load_manifest(version))
        name = signer_name or self._principal
        extra = {**version_claims(self._vault_id, version), "signer": name}
        bundle = sign_files(files, signer, extra, model_name=version.artifact)
        row_id = self._store.add_signature(version.id, signer.fingerprint(), bundle, self._principal)
        return SignResult(
            version.artifact, version.number, version.id, row_id, signer.fingerprint(), name, len(files)
        )

    def export_signature(self, ref: str, signer_fingerprint: str | None = None) -> bytes:
        """The bundle of one signature of ``ref`` (the newest by ``signer_fingerprint`` if given)."""
        version = self._versions.resolve(ref)
        what = f"{version.artifact}@v{version.number}"
        rows = [r for r in self._store.signatures_for(version.id) if r.bundle is not None]
        if signer_fingerprint is not None:
            wanted = signer_fingerprint.lower()
            if len(wanted) < 8:
                raise UsageError("give at least 8 hex digits of the signer fingerprint")
            rows = [r for r in rows if r.signer_fingerprint.startswith(wanted)]
        if not rows:
            by = f" by key {signer_fingerprint}" if signer_fingerprint else ""
            raise NotFoundError(
                f"{what} has no signature{by} (sign it with `mlvault sign {what} --key NAME`)"
            )
        signers = sorted({r.signer_fingerprint for r in rows})
        if len(signers) > 1:
            raise UsageError(
                f"{what} is signed by {len(signers)} keys ({', '.join(s[:16] for s in signers)}); "
                "choose one with --signer FINGERPRINT"
            )
        bundle = rows[-1].bundle
        assert bundle is not None
        parse_bundle(bundle)  # refuse to hand out something that is not even a bundle
        return bundle

    # -- verification ------------------------------------------------------------------

    def verify(self, ref: str) -> VerifyReport:
        """Verify the version ``ref`` names against the vault's trust policy (a failure is audited)."""
        with self._failures(ref):
            version = self._versions.resolve(ref)
        with self._failures(f"{version.artifact}@v{version.number}"):
            manifest = self._versions.load_manifest(version)
            state = self.trust.current()
            if state is None:
                raise UntrustedSignerError(
                    f"the vault has no trust policy, so no key is trusted to sign {version.artifact}; "
                    f"add one with `mlvault trust add 'PATTERN' --key KEY.pub --admin-key ADMIN`"
                )
            return self._check(version, manifest, state)

    @contextlib.contextmanager
    def _failures(self, target: str) -> Iterator[None]:
        if self._audit is None:
            yield
            return
        with self._audit.failures(Action.VERIFY, target):
            yield

    def verify_for_pull(self, version: VersionRow, manifest: Manifest) -> VerifyReport | None:
        """The pull-time check; ``None`` when no policy rule applies to the artifact."""
        state = self.trust.current()
        if state is None:
            return None
        try:
            select_rule(state.policy, version.artifact)
        except UntrustedSignerError:
            return None  # no rule covers this namespace: the policy does not require signatures here
        return self._check(version, manifest, state)

    def pull_verifier(self) -> PullVerifier:
        """A ``Vault.pull`` hook bound to this service."""
        return PullVerifier(self)

    def _check(self, version: VersionRow, manifest: Manifest, state: AcceptedPolicy) -> VerifyReport:
        policy = state.policy
        what = f"{version.artifact}@v{version.number}"
        rule = select_rule(policy, version.artifact)
        policy_keys = policy.public_keys()
        known_hints = {keys.key_hint(k) for k in policy_keys}
        expected = manifest_digests(manifest)
        valid: list[str] = []
        ignored: list[str] = []
        failures: list[VerificationError] = []
        rows = self._store.signatures_for(version.id)
        for row in rows:
            label = f"signature #{row.id}"
            if row.bundle is None:
                failures.append(MalformedSignatureError(f"{label} is {row.size} bytes, over the size limit"))
                continue
            try:
                bundle = parse_bundle(row.bundle)
                if bundle.key_hint is not None and bundle.key_hint not in known_hints:
                    ignored.append(f"{label}: key {bundle.key_hint[:16]} is not in the trust policy")
                    continue
                statement = verify_bundle(bundle, policy_keys)
                check_claims(statement.extra, self._vault_id, version)
                compare_files(statement, expected)
            except VerificationError as exc:
                failures.append(type(exc)(f"{label} of {what}: {exc}"))
                continue
            valid.append(statement.signer_fingerprint)
        try:
            decision = evaluate(policy, version.artifact, valid)
        except UntrustedSignerError as exc:
            if failures:
                raise failures[0] from exc
            if not rows:
                raise UntrustedSignerError(
                    f"{what} has no signature, and the trust policy requires one (rule {rule.namespace!r}); "
                    f"sign it with `mlvault sign {what} --key NAME`"
                ) from exc
            if not valid:
                raise UntrustedSignerError(
                    f"{what} is signed only by keys outside the trust policy ({'; '.join(ignored)})"
                ) from exc
            raise
        return VerifyReport(
            version.artifact,
            version.number,
            version.id,
            decision.rule.namespace,
            decision.rule.threshold,
            decision.trusted_signers,
            tuple(ignored + [str(f) for f in failures]),
            policy.serial,
            state.pinned_now,
        )

    # -- the trust policy (see :class:`VaultTrustPolicy`) ------------------------------

    def trust_show(self) -> PolicyView | None:
        """The current verified policy, or ``None`` if the vault has none."""
        return self.trust.show()

    def trust_add(
        self, namespace: str, public_key_pem: bytes, admin: Signer, threshold: int | None = None
    ) -> PolicyView:
        """Trust a key for artifacts matching ``namespace`` (a glob), optionally setting the threshold."""
        return self.trust.add(namespace, public_key_pem, admin, threshold)

    def trust_remove(self, namespace: str, admin: Signer, fingerprint: str | None = None) -> PolicyView:
        """Remove the rule for ``namespace``, or only one key (by fingerprint) from it."""
        return self.trust.remove(namespace, admin, fingerprint)

    def pin_admin(self, fingerprint: str, *, replace: bool = False) -> None:
        """Pin an admin key fingerprint for this vault explicitly (instead of trusting it on first use)."""
        self.trust.pin_admin(fingerprint, replace=replace)
