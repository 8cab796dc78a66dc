"""Signatures of vault versions and the vault's trust policy: the service-level composition.

``vault.signing`` knows bundles, keys and policies but nothing about vaults; the catalog
stores bytes but vouches for nothing. This module joins them, and is where the threat model's
"a catalog writer cannot make a verifier accept a version a trusted key did not sign" is kept:

* **What is signed** is the version's *authenticated manifest* (decrypted with the keyring,
  cross-checked against the catalog), never the catalog's file list. A directory version signs
  each file under its relative path; a single-file version signs one entry named ``"."``, as
  ``model-signing`` does, so ``mlvault verify FILE --signature`` and ``model_signing verify``
  accept a pulled file. The bundle's ``mlvault`` predicate names the vault id, artifact,
  version number, version id and signer name.
* **Verifying a version** checks every stored bundle against the keys of the trust policy,
  then that the signed statement names *this* version (vault id, artifact, number, version id:
  a bundle copied from another version does not count) and that its files equal the manifest's
  (path → SHA-256, nothing missing, nothing extra), and finally the policy's rule for the
  artifact (most specific glob, threshold of distinct keys). Bundles by keys outside the policy
  are ignored; a bundle that claims a policy key but fails is reported, and is the error raised
  when the policy is not met.
* **The trust policy** is the newest admin-signed document in the catalog. The admin key is
  pinned per vault in a small client-side file (:class:`PinStore`): on first use (trust on
  first use) the document's admin key is pinned; afterwards a document signed by any other key
  is refused. The pin file also remembers the highest policy serial this client has seen, so a
  catalog rolled back to an older policy — or stripped of its policy altogether — is refused.
* **On pull**, :meth:`SignatureService.verify_for_pull` runs the same check before a byte is
  written. Pull already compares every file's SHA-256 with the manifest while writing it, so
  comparing the signed digests with the manifest's costs no second read. Verification is
  *required only where a policy rule applies*: with no policy at all, or no rule matching the
  artifact, it returns ``None`` and the pull goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.catalog import VersionRow
from vault.catalog.signatures import SignatureCatalog
from vault.errors import (
    ConfigurationError,
    ContentMismatchError,
    IntegrityError,
    MalformedSignatureError,
    NotFoundError,
    UntrustedSignerError,
    UsageError,
    VerificationError,
)
from vault.formats.manifest import Manifest
from vault.signing import keys
from vault.signing.hashing import GIT_IGNORE_PATHS, SINGLE_FILE_NAME, FileDigest
from vault.signing.oms import ExtraValue, parse_bundle, sign_files, strict_json
from vault.signing.policy import (
    MAX_POLICY_BYTES,
    TrustedKey,
    TrustPolicy,
    TrustRule,
    evaluate,
    select_rule,
    sign_policy,
    verify_policy,
)
from vault.signing.signers import Signer
from vault.signing.verify import compare_files, verify_bundle

if TYPE_CHECKING:
    from vault.service import Vault

MAX_PIN_FILE_BYTES = 1024 * 1024
MAX_GLOB_CHARS = 256
_FINGERPRINT_CHARS = frozenset("0123456789abcdef")


# -- results ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PolicyView:
    """The vault's current, verified trust policy."""

    vault_id: str
    serial: int
    admin_fingerprint: str
    rules: tuple[TrustRule, ...]
    admin_pinned_now: str | None = None


@dataclass(frozen=True)
class _PolicyState:
    policy: TrustPolicy
    admin_fingerprint: str
    pinned_now: str | None


# -- client-side pins ------------------------------------------------------------------------


class PinStore:
    """Pinned trust-policy admin keys and the highest policy serial seen, per vault id.

    A JSON file owned by the client (``<config dir>/pins.json``, mode 0600)::

        {"format": 1, "vaults": {"<vault id>": {"admins": ["<fingerprint>"], "policy_serial": 7}}}

    Updates are read-modify-write under an exclusive ``flock`` on a sibling lock file and
    replace the file atomically, so concurrent clients do not lose each other's pins.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def admins(self, vault_id: str) -> tuple[str, ...]:
        """Pinned admin fingerprints for ``vault_id`` (empty if none)."""
        return tuple(self._entry(self._read(), vault_id).get("admins", ()))

    def policy_serial(self, vault_id: str) -> int:
        """The highest trust-policy serial this client has accepted for ``vault_id`` (0 if none)."""
        return int(self._entry(self._read(), vault_id).get("policy_serial", 0))

    def pin(self, vault_id: str, fingerprint: str, *, replace: bool = False) -> None:
        """Pin an admin key for ``vault_id``; ``replace`` drops the keys pinned before."""
        check_fingerprint(fingerprint)
        with self._update() as doc:
            entry = doc["vaults"].setdefault(vault_id, {})
            admins = [] if replace else list(entry.get("admins", []))
            if fingerprint not in admins:
                admins.append(fingerprint)
            entry["admins"] = admins

    def record_serial(self, vault_id: str, serial: int) -> None:
        """Remember that a policy with ``serial`` was accepted (never lowers the stored value)."""
        with self._update() as doc:
            entry = doc["vaults"].setdefault(vault_id, {})
            entry["policy_serial"] = max(int(entry.get("policy_serial", 0)), serial)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(MAX_PIN_FILE_BYTES + 1)
        except FileNotFoundError:
            return {"format": 1, "vaults": {}}
        except OSError as exc:
            raise ConfigurationError(f"cannot read the pin file {self.path}: {exc.strerror}") from exc
        if len(data) > MAX_PIN_FILE_BYTES:
            raise ConfigurationError(f"the pin file {self.path} is over {MAX_PIN_FILE_BYTES} bytes")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ConfigurationError(f"the pin file {self.path} is not valid JSON; fix or remove it") from exc
        if not (isinstance(doc, dict) and doc.get("format") == 1 and isinstance(doc.get("vaults"), dict)):
            raise ConfigurationError(f"the pin file {self.path} is not an mlvault pin file; fix or remove it")
        return doc

    def _entry(self, doc: dict[str, Any], vault_id: str) -> dict[str, Any]:
        entry = doc["vaults"].get(vault_id, {})
        admins = entry.get("admins", []) if isinstance(entry, dict) else None
        serial = entry.get("policy_serial", 0) if isinstance(entry, dict) else None
        if (
            not isinstance(admins, list)
            or not all(isinstance(a, str) and is_fingerprint(a) for a in admins)
            or not isinstance(serial, int)
            or isinstance(serial, bool)
        ):
            raise ConfigurationError(f"the pin file {self.path} has a malformed entry for vault {vault_id}")
        return {"admins": admins, "policy_serial": serial}

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the pin file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            doc = self._read()
            yield doc
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the pin file {self.path}: {exc.strerror}") from exc
        finally:
            os.close(lock_fd)


def is_fingerprint(value: str) -> bool:
    """True for a full key fingerprint: 64 lowercase hex digits."""
    return len(value) == 64 and set(value) <= _FINGERPRINT_CHARS


def check_fingerprint(value: str) -> str:
    """Return ``value`` if it is a full fingerprint, else ``UsageError``."""
    if not is_fingerprint(value):
        raise UsageError(
            f"{value!r} is not a key fingerprint (64 lowercase hex digits, see `mlvault key list`)"
        )
    return value


# -- what a signature covers -----------------------------------------------------------------


def signed_files(manifest: Manifest) -> list[FileDigest]:
    """The OMS file list of a version: ``"."`` for a single file, relative paths for a directory."""
    if manifest.root == "file":
        only = manifest.files[0]
        return [FileDigest(SINGLE_FILE_NAME, only.sha256, only.size)]
    hidden = sorted({f.path for f in manifest.files if f.path.split("/", 1)[0] in GIT_IGNORE_PATHS})
    if hidden:
        raise UsageError(
            f"{manifest.artifact} contains {hidden[0]!r}: OMS verifiers always skip top-level "
            f"{', '.join(GIT_IGNORE_PATHS)}, so a signature over it could never verify on disk; "
            "push the version without those paths and sign that"
        )
    return [FileDigest(f.path, f.sha256, f.size) for f in manifest.files]


def manifest_digests(manifest: Manifest) -> dict[str, bytes]:
    """Path → SHA-256 of a version, named as a signature names them."""
    if manifest.root == "file":
        return {SINGLE_FILE_NAME: manifest.files[0].sha256}
    return {f.path: f.sha256 for f in manifest.files}


def version_claims(vault_id: str, version: VersionRow) -> dict[str, ExtraValue]:
    """The predicate fields that bind a signature to one version of one vault."""
    return {
        "vault_id": vault_id,
        "artifact": version.artifact,
        "version": version.number,
        "version_id": version.id,
    }


def check_claims(extra: Mapping[str, ExtraValue], vault_id: str, version: VersionRow) -> None:
    """``ContentMismatchError`` unless a signed statement names exactly this version."""
    for key, want in version_claims(vault_id, version).items():
        got = extra.get(key)
        if got != want or type(got) is not type(want):
            named = f"{extra.get('artifact')}@v{extra.get('version')} in vault {extra.get('vault_id')}"
            raise ContentMismatchError(
                f"the signature was made for {named}, not for {version.artifact}@v{version.number} "
                f"in vault {vault_id} ({key} differs)"
            )


def _document_admin_fingerprint(document: bytes) -> str | None:
    """The admin key fingerprint a signed policy document names, or ``None`` if it names none."""
    if len(document) > MAX_POLICY_BYTES:
        return None
    try:
        doc = strict_json(document, "signed trust policy")
    except MalformedSignatureError:
        return None
    admin = doc.get("adminKey") if isinstance(doc, dict) else None
    if not isinstance(admin, str):
        return None
    try:
        return keys.fingerprint(keys.load_public_key_pem(admin.encode("ascii"), "policy admin key"))
    except (UsageError, UnicodeEncodeError):
        return None


# -- the service -----------------------------------------------------------------------------


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

    def __init__(self, vault: Vault, pins: PinStore) -> None:
        self._vault = vault
        self._pins = pins
        self._catalog = SignatureCatalog(vault.catalog.engine)

    @property
    def _vault_id(self) -> str:
        return self._vault.config.vault_id

    # -- signing -----------------------------------------------------------------------

    def sign(self, ref: str, signer: Signer, signer_name: str | None = None) -> SignResult:
        """Sign the version ``ref`` names and store the bundle (one more row per signature)."""
        version = self._vault.resolve(ref)
        manifest = self._vault.load_manifest(version)
        files = signed_files(manifest)
        name = signer_name or self._vault.principal
        extra = {**version_claims(self._vault_id, version), "signer": name}
        bundle = sign_files(files, signer, extra, model_name=version.artifact)
        row_id = self._catalog.add_signature(version.id, signer.fingerprint(), bundle, self._vault.principal)
        return SignResult(
            version.artifact, version.number, version.id, row_id, signer.fingerprint(), name, len(files)
        )

    def export_signature(self, ref: str, signer_fingerprint: str | None = None) -> bytes:
        """The bundle of one signature of ``ref`` (the newest by ``signer_fingerprint`` if given)."""
        version = self._vault.resolve(ref)
        what = f"{version.artifact}@v{version.number}"
        rows = [r for r in self._catalog.signatures_for(version.id) if r.bundle is not None]
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
        """Verify the version ``ref`` names against the vault's trust policy."""
        version = self._vault.resolve(ref)
        manifest = self._vault.load_manifest(version)
        state = self._current_policy()
        if state is None:
            raise UntrustedSignerError(
                f"the vault has no trust policy, so no key is trusted to sign {version.artifact}; "
                f"add one with `mlvault trust add 'GLOB' --key KEY.pub --admin-key ADMIN`"
            )
        return self._check(version, manifest, state)

    def verify_for_pull(self, version: VersionRow, manifest: Manifest) -> VerifyReport | None:
        """The pull-time check; ``None`` when no policy rule applies to the artifact."""
        state = self._current_policy()
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

    def _check(self, version: VersionRow, manifest: Manifest, state: _PolicyState) -> VerifyReport:
        policy = state.policy
        what = f"{version.artifact}@v{version.number}"
        rule = select_rule(policy, version.artifact)
        policy_keys = policy.public_keys()
        known_hints = {keys.key_hint(k) for k in policy_keys}
        expected = manifest_digests(manifest)
        valid: list[str] = []
        ignored: list[str] = []
        failures: list[VerificationError] = []
        rows = self._catalog.signatures_for(version.id)
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

    # -- the trust policy --------------------------------------------------------------

    def _current_policy(self) -> _PolicyState | None:
        """The newest stored policy, verified under the pinned admin key (pinned now if first use)."""
        vault_id = self._vault_id
        row = self._catalog.latest_policy_row()
        pinned = self._pins.admins(vault_id)
        seen = self._pins.policy_serial(vault_id)
        if row is None:
            if pinned or seen:
                raise IntegrityError(
                    f"the trust policy of vault {vault_id} is missing from the catalog, but this client "
                    f"has accepted policy serial {seen} signed by a pinned admin key: the catalog was "
                    "rolled back or tampered with; restore it from a backup"
                )
            return None
        admin_fp = _document_admin_fingerprint(row.document)
        if pinned and admin_fp is not None and admin_fp not in pinned:
            raise UntrustedSignerError(
                f"trust policy is signed by an unpinned key {admin_fp[:16]} (pinned for vault {vault_id}: "
                f"{', '.join(p[:16] for p in pinned)}); if the admin key was replaced on purpose, pin the "
                "new one with `mlvault trust pin FINGERPRINT --replace`"
            )
        policy = verify_policy(row.document, pinned or ([admin_fp] if admin_fp else ["(none)"]))
        if policy.vault_id != vault_id:
            raise IntegrityError(
                f"the trust policy in this catalog was written for vault {policy.vault_id or '(none)'}, "
                f"not {vault_id}: it was copied from another vault"
            )
        if policy.serial != row.serial:
            raise IntegrityError(
                f"the trust policy stored as serial {row.serial} says it is serial {policy.serial}"
            )
        if policy.serial < seen:
            raise IntegrityError(
                f"the trust policy (serial {policy.serial}) is older than serial {seen}, which this client "
                "has already accepted: the catalog was rolled back or tampered with"
            )
        assert admin_fp is not None  # verify_policy accepted the document, so it names its admin key
        pinned_now = None
        if not pinned:
            self._pins.pin(vault_id, admin_fp)
            pinned_now = admin_fp
        if policy.serial > seen:
            self._pins.record_serial(vault_id, policy.serial)
        return _PolicyState(policy, admin_fp, pinned_now)

    def trust_show(self) -> PolicyView | None:
        """The current verified policy, or ``None`` if the vault has none."""
        state = self._current_policy()
        if state is None:
            return None
        return PolicyView(
            self._vault_id, state.policy.serial, state.admin_fingerprint, state.policy.rules, state.pinned_now
        )

    def trust_add(
        self, namespace: str, public_key_pem: bytes, admin: Signer, threshold: int | None = None
    ) -> PolicyView:
        """Trust a key for artifacts matching ``namespace`` (a glob), optionally setting the threshold."""
        check_glob(namespace)
        trusted = TrustedKey.from_public_key(keys.load_public_key_pem(public_key_pem, "the key to trust"))

        def edit(rules: list[TrustRule]) -> list[TrustRule]:
            current = next((r for r in rules if r.namespace == namespace), None)
            present = current.keys if current else ()
            new_keys = (
                present if any(k.fingerprint == trusted.fingerprint for k in present) else (*present, trusted)
            )
            new_threshold = threshold if threshold is not None else (current.threshold if current else 1)
            rule = TrustRule(namespace, new_keys, check_threshold(new_threshold, len(new_keys), namespace))
            return [rule if r is current else r for r in rules] if current else [*rules, rule]

        return self._change(admin, edit)

    def trust_remove(self, namespace: str, admin: Signer, fingerprint: str | None = None) -> PolicyView:
        """Remove the rule for ``namespace``, or only one key (by fingerprint) from it."""

        def edit(rules: list[TrustRule]) -> list[TrustRule]:
            current = next((r for r in rules if r.namespace == namespace), None)
            if current is None:
                raise NotFoundError(
                    f"the trust policy has no rule for {namespace!r} (see `mlvault trust show`)"
                )
            if fingerprint is None:
                return [r for r in rules if r is not current]
            kept = tuple(k for k in current.keys if k.fingerprint != fingerprint)
            if len(kept) == len(current.keys):
                raise NotFoundError(f"key {fingerprint[:16]} is not trusted for {namespace!r}")
            if not kept:
                return [r for r in rules if r is not current]
            if current.threshold > len(kept):
                raise UsageError(
                    f"removing the key would leave {len(kept)} key(s) for threshold {current.threshold} on "
                    f"{namespace!r}; lower the threshold first (`mlvault trust add` with --threshold)"
                )
            return [TrustRule(namespace, kept, current.threshold) if r is current else r for r in rules]

        return self._change(admin, edit)

    def pin_admin(self, fingerprint: str, *, replace: bool = False) -> None:
        """Pin an admin key fingerprint for this vault explicitly (instead of trusting it on first use)."""
        self._pins.pin(self._vault_id, check_fingerprint(fingerprint), replace=replace)

    def _change(self, admin: Signer, edit: Callable[[list[TrustRule]], list[TrustRule]]) -> PolicyView:
        state = self._current_policy()
        vault_id = self._vault_id
        admin_fp = admin.fingerprint()
        pinned = self._pins.admins(vault_id)
        if pinned and admin_fp not in pinned:
            raise UntrustedSignerError(
                f"admin key {admin_fp[:16]} is not the pinned admin key of vault {vault_id} "
                f"({', '.join(p[:16] for p in pinned)}); sign trust policy changes with that key"
            )
        base = state.policy if state else TrustPolicy((), 0, vault_id)
        new = TrustPolicy(tuple(edit(list(base.rules))), base.serial + 1, vault_id)
        document = sign_policy(new, admin)
        self._catalog.store_policy(new.serial, document, self._vault.principal)
        pinned_now = state.pinned_now if state else None
        if not pinned:
            self._pins.pin(vault_id, admin_fp)
            pinned_now = admin_fp
        self._pins.record_serial(vault_id, new.serial)
        return PolicyView(vault_id, new.serial, admin_fp, new.rules, pinned_now)


def check_glob(namespace: str) -> str:
    """Return ``namespace`` if it is a usable artifact-name glob, else ``UsageError``."""
    if not namespace or len(namespace) > MAX_GLOB_CHARS or any(c.isspace() or c == "\0" for c in namespace):
        raise UsageError(f"invalid namespace glob {namespace!r}: e.g. 'team/*' or 'team/vision/resnet'")
    return namespace


def check_threshold(threshold: int, key_count: int, namespace: str) -> int:
    """Return ``threshold`` if the rule can ever meet it, else ``UsageError``."""
    if not 1 <= threshold <= key_count:
        raise UsageError(
            f"threshold {threshold} for {namespace!r} needs between 1 and {key_count} trusted key(s); "
            "add the other keys first, then raise the threshold"
        )
    return threshold
