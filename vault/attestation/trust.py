"""The trust policy of one vault as this client accepts it: verified, pinned, never rolled back.

The policy is the newest admin-signed document in the catalog. The admin key is pinned per vault
in the client state (:class:`~vault.clientstate.pins.TrustPins`): on first use (trust on first
use) the document's admin key is pinned; afterwards a document signed by any other key is
refused. The pins also remember the highest policy serial this client has seen, so a catalog
rolled back to an older policy — or stripped of its policy altogether — is refused.

Editing the policy signs a new document with serial + 1 under the (pinned) admin key; two admins
editing at once get a ``ConflictError`` from the catalog and retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vault.access.patterns import check_pattern
from vault.catalog.signatures import SignatureCatalog
from vault.clientstate.pins import TrustPins, check_fingerprint
from vault.errors import (
    IntegrityError,
    MalformedSignatureError,
    NotFoundError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import keys
from vault.signing.oms import strict_json
from vault.signing.policy import (
    MAX_POLICY_BYTES,
    TrustedKey,
    TrustPolicy,
    TrustRule,
    legacy_rules,
    sign_policy,
    verify_policy,
)
from vault.signing.signers import Signer

MAX_GLOB_CHARS = 256


@dataclass(frozen=True)
class PolicyView:
    """The vault's current, verified trust policy."""

    vault_id: str
    serial: int
    admin_fingerprint: str
    rules: tuple[TrustRule, ...]
    admin_pinned_now: str | None = None

    @property
    def legacy(self) -> tuple[str, ...]:
        """Rules written in the old glob syntax: they refuse what they cover until replaced."""
        return tuple(r.namespace for r in legacy_rules(TrustPolicy(self.rules)))


@dataclass(frozen=True)
class AcceptedPolicy:
    """A policy verified under the pinned admin key; ``pinned_now`` if this call pinned that key."""

    policy: TrustPolicy
    admin_fingerprint: str
    pinned_now: str | None


class VaultTrustPolicy:
    """Read, verify and edit one vault's trust policy, with this client's pins."""

    def __init__(self, store: SignatureCatalog, pins: TrustPins, *, vault_id: str, principal: str) -> None:
        self._store = store
        self._pins = pins
        self._vault_id = vault_id
        self._principal = principal

    def current(self) -> AcceptedPolicy | None:
        """The newest stored policy, verified under the pinned admin key (pinned now if first use)."""
        vault_id = self._vault_id
        row = self._store.latest_policy_row()
        pinned = self._pins.admins(vault_id)
        seen = self._pins.policy_serial(vault_id)
        if row is None:
            if seen:  # an admin pinned with no policy accepted yet (init pins the owner) proves none existed
                raise IntegrityError(
                    f"the trust policy of vault {vault_id} is missing from the catalog, but this client "
                    f"has accepted policy serial {seen} signed by a pinned admin key: the catalog was "
                    "rolled back or tampered with; restore it from a backup"
                )
            return None
        admin_fp = document_admin_fingerprint(row.document)
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
        return AcceptedPolicy(policy, admin_fp, pinned_now)

    def show(self) -> PolicyView | None:
        """The current verified policy, or ``None`` if the vault has none."""
        state = self.current()
        if state is None:
            return None
        return PolicyView(
            self._vault_id, state.policy.serial, state.admin_fingerprint, state.policy.rules, state.pinned_now
        )

    def add(
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

    def remove(self, namespace: str, admin: Signer, fingerprint: str | None = None) -> PolicyView:
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
        state = self.current()
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
        self._store.store_policy(new.serial, document, self._principal)
        pinned_now = state.pinned_now if state else None
        if not pinned:
            self._pins.pin(vault_id, admin_fp)
            pinned_now = admin_fp
        self._pins.record_serial(vault_id, new.serial)
        return PolicyView(vault_id, new.serial, admin_fp, new.rules, pinned_now)


def document_admin_fingerprint(document: bytes) -> str | None:
    """The admin key fingerprint a signed policy document names, or ``None`` if it names none.

    Read before the document is verified, only to choose which pinned key to verify it with.
    """
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


def check_glob(namespace: str) -> str:
    """Return ``namespace`` if it is a pattern of :mod:`vault.access.patterns`, else ``UsageError``.

    Trust rules use the grammar and precedence of grants: ``team/*``, ``team/+/resnet``,
    ``team/vision/resnet``; old ``fnmatch`` globs (``team/*/x``, ``model-?``) are refused here.
    """
    if len(namespace) > MAX_GLOB_CHARS:
        raise UsageError(f"invalid pattern {namespace[:32]!r}…: over {MAX_GLOB_CHARS} characters")
    check_pattern(namespace)
    return namespace


def check_threshold(threshold: int, key_count: int, namespace: str) -> int:
    """Return ``threshold`` if the rule can ever meet it, else ``UsageError``."""
    if not 1 <= threshold <= key_count:
        raise UsageError(
            f"threshold {threshold} for {namespace!r} needs between 1 and {key_count} trusted key(s); "
            "add the other keys first, then raise the threshold"
        )
    return threshold
