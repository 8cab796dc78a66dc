"""Trust policy: which keys may sign which artifacts, signed by an admin key that clients pin.

A policy is a list of rules ``{namespace glob, trusted keys, threshold}``. It is stored as a signed
document, never as bare rows, so that whoever can write the catalog cannot add a trusted key: each
client pins the admin key's fingerprint and ``verify_policy`` refuses a document that is unsigned,
signed by another key, or whose signature does not verify.

**Matching.** A rule's ``namespace`` is a pattern of the one grammar of
:mod:`vault.access.patterns` (``+`` one segment, ``*`` only last, meaning one or more further
segments), matched against the full artifact name ``namespace/name``; when several rules match,
HashiCorp Vault's precedence picks one (first wildcard later, no trailing ``*``, fewer ``+``,
longer, then code-point order), so two matching rules never tie. No matching rule means deny.

Policies signed before this grammar used ``fnmatch`` globs. A stored rule the grammar refuses
(``*`` inside or in the middle, ``?``, ``[...]``) still loads, so the policy can be shown and the
rule removed; but an artifact that such a rule's old glob matches is refused
(``ConfigurationError``, naming the rule and its replacement) instead of silently losing the
signature requirement it carried.

**Threshold.** A rule trusts a set of keys and needs ``threshold`` *distinct* trusted keys with a
valid signature over the same content (default 1). Signatures by keys outside the winning rule do
not count, even if another rule trusts them.

**Documents.** The policy payload is canonical JSON (sorted keys, no whitespace, UTF-8)::

    {"type": "mlvault/trust-policy", "version": 1, "serial": 7, "vault": "<vault id hex>",
     "rules": [{"namespace": "team/vision/*", "threshold": 1,
                "keys": [{"fingerprint": "<sha256 of DER SPKI>", "publicKey": "<PEM>"}]}]}

``serial`` should grow with each edit so that a client can refuse a rollback to an older policy it
has already seen. The signed document wraps it as::

    {"mediaType": "application/vnd.mlvault.signed-trust-policy.v1+json",
     "payload": "<base64 policy JSON>", "adminKey": "<PEM>", "signature": "<base64 DER ECDSA>"}

The signature is over the DSSE PAE with payload type ``application/vnd.mlvault.trust-policy.v1+json``,
so a policy signature can never be replayed as a model signature or the other way round.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Collection, Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from vault.access.patterns import best_match, check_pattern
from vault.errors import (
    ConfigurationError,
    MalformedSignatureError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import keys
from vault.signing.envelope import Envelope, exact_object
from vault.signing.oms import Bundle, canonical_json, strict_json
from vault.signing.signers import Signer
from vault.signing.verify import VerifiedStatement, verify_bundle

POLICY_TYPE = "mlvault/trust-policy"
POLICY_VERSION = 1
POLICY_PAYLOAD_TYPE = "application/vnd.mlvault.trust-policy.v1+json"
SIGNED_POLICY_MEDIA_TYPE = "application/vnd.mlvault.signed-trust-policy.v1+json"
MAX_POLICY_BYTES = 4 * 1024 * 1024
ENVELOPE = Envelope(
    SIGNED_POLICY_MEDIA_TYPE, POLICY_PAYLOAD_TYPE, "adminKey", MAX_POLICY_BYTES, "trust policy"
)


@dataclasses.dataclass(frozen=True)
class TrustedKey:
    """A public key a rule trusts, with its fingerprint."""

    fingerprint: str
    public_key_pem: bytes

    @classmethod
    def from_public_key(cls, key: ec.EllipticCurvePublicKey) -> TrustedKey:
        """Build from a public key."""
        return cls(keys.fingerprint(key), keys.public_key_pem(key))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """Load the key itself."""
        return keys.load_public_key_pem(self.public_key_pem, f"trusted key {self.fingerprint[:16]}")


@dataclasses.dataclass(frozen=True)
class TrustRule:
    """Keys trusted to sign artifacts whose name matches ``namespace``."""

    namespace: str
    keys: tuple[TrustedKey, ...]
    threshold: int = 1


@dataclasses.dataclass(frozen=True)
class TrustPolicy:
    """An ordered set of trust rules with a serial number."""

    rules: tuple[TrustRule, ...]
    serial: int = 1
    # The vault this policy governs: a policy copied from another vault signed by the same
    # admin key must not be accepted here.
    vault_id: str = ""

    def public_keys(self) -> list[ec.EllipticCurvePublicKey]:
        """Every distinct key any rule trusts."""
        seen: dict[str, ec.EllipticCurvePublicKey] = {}
        for rule in self.rules:
            for key in rule.keys:
                seen.setdefault(key.fingerprint, key.public_key())
        return list(seen.values())


@dataclasses.dataclass(frozen=True)
class TrustDecision:
    """Why an artifact's signatures were accepted."""

    artifact_name: str
    rule: TrustRule
    trusted_signers: tuple[str, ...]


def legacy_rules(policy: TrustPolicy) -> tuple[TrustRule, ...]:
    """The rules whose ``namespace`` the pattern grammar refuses (written as old ``fnmatch`` globs)."""
    found = []
    for rule in policy.rules:
        try:
            check_pattern(rule.namespace)
        except UsageError:
            found.append(rule)
    return tuple(found)


def legacy_hint(glob: str) -> str:
    """How to rewrite an old ``fnmatch`` glob in the pattern grammar (best effort, for messages)."""
    segments = glob.split("/")
    out = [s if s in ("*", "+") or not any(c in s for c in "*?[") else "+" for s in segments]
    if out[-1] == "+" and "*" in segments[-1]:
        out[-1] = "*"
    return "/".join("+" if s == "*" and i < len(out) - 1 else s for i, s in enumerate(out))


def select_rule(policy: TrustPolicy, artifact_name: str) -> TrustRule:
    """Return the most specific rule matching ``artifact_name``; ``UntrustedSignerError`` if none."""
    legacy = legacy_rules(policy)
    for rule in legacy:
        if fnmatch.fnmatchcase(artifact_name, rule.namespace):
            hint = legacy_hint(rule.namespace)
            raise ConfigurationError(
                f"trust rule {rule.namespace!r} (which covers {artifact_name}) uses the old glob syntax: "
                f"'+' is one segment and '*' may only end a pattern; replace it, e.g. `mlvault trust "
                f"remove '{rule.namespace}' --admin-key ADMIN` and `mlvault trust add '{hint}' --key KEY.pub "
                "--admin-key ADMIN` for each of its keys"
            )
    by_pattern = {r.namespace: r for r in policy.rules if r not in legacy}
    best = best_match(by_pattern, artifact_name)
    if best is None:
        raise UntrustedSignerError(f"no trust rule covers {artifact_name!r}; add one to the trust policy")
    return by_pattern[best]


def evaluate(
    policy: TrustPolicy, artifact_name: str, verified_signer_fingerprints: Collection[str]
) -> TrustDecision:
    """Decide whether verified signers satisfy the policy for ``artifact_name``."""
    rule = select_rule(policy, artifact_name)
    rule_keys = {k.fingerprint for k in rule.keys}
    trusted = tuple(sorted(set(verified_signer_fingerprints) & rule_keys))
    if not trusted:
        elsewhere = sorted(
            {
                r.namespace
                for r in policy.rules
                if r is not rule and {k.fingerprint for k in r.keys} & set(verified_signer_fingerprints)
            }
        )
        hint = f"; the signing key is trusted only for {', '.join(elsewhere)}" if elsewhere else ""
        raise UntrustedSignerError(
            f"signer not trusted for namespace {rule.namespace!r} ({artifact_name}){hint}"
        )
    if len(trusted) < rule.threshold:
        raise UntrustedSignerError(
            f"threshold {rule.threshold} not met: {len(trusted)} valid trusted signature"
            f"{'s' if len(trusted) != 1 else ''} for {artifact_name!r} (rule {rule.namespace!r})"
        )
    return TrustDecision(artifact_name, rule, trusted)


def verify_trusted(
    bundles: Sequence[Bundle], policy: TrustPolicy, artifact_name: str
) -> tuple[VerifiedStatement, TrustDecision]:
    """Verify every bundle against the policy's keys and apply the policy for ``artifact_name``.

    A bundle whose key hint names no key in the policy does not count; a bundle that names a
    policy key but does not verify is tampering and fails the whole check. All verified bundles
    must sign the same content.
    """
    if not bundles:
        raise UntrustedSignerError(f"{artifact_name!r} has no signature")
    policy_keys = policy.public_keys()
    known_hints = {keys.key_hint(k) for k in policy_keys}
    statements: list[VerifiedStatement] = []
    unknown_hints: list[str] = []
    for bundle in bundles:
        if bundle.key_hint is not None and bundle.key_hint not in known_hints:
            unknown_hints.append(bundle.key_hint)
            continue
        if not policy_keys:
            break
        statements.append(verify_bundle(bundle, policy_keys))
    if not statements:
        raise UntrustedSignerError(
            f"{artifact_name!r} is signed only by keys that are not in the trust policy "
            f"(hints {', '.join(h[:16] for h in unknown_hints)})"
        )
    first = statements[0]
    if any(s.root_digest != first.root_digest for s in statements[1:]):
        raise MalformedSignatureError(f"the signatures of {artifact_name!r} cover different content")
    decision = evaluate(policy, artifact_name, [s.signer_fingerprint for s in statements])
    return first, decision


def policy_to_json(policy: TrustPolicy) -> bytes:
    """Canonical JSON of a policy (the bytes the admin signs)."""
    return canonical_json(
        {
            "type": POLICY_TYPE,
            "version": POLICY_VERSION,
            "serial": policy.serial,
            "vault": policy.vault_id,
            "rules": [
                {
                    "namespace": rule.namespace,
                    "threshold": rule.threshold,
                    "keys": [
                        {"fingerprint": k.fingerprint, "publicKey": k.public_key_pem.decode("ascii")}
                        for k in rule.keys
                    ],
                }
                for rule in policy.rules
            ],
        }
    )


def policy_from_json(data: bytes) -> TrustPolicy:
    """Parse and check policy JSON; ``MalformedSignatureError`` on any problem."""
    doc = exact_object(
        strict_json(data, "trust policy"), "trust policy", {"type", "version", "serial", "vault", "rules"}
    )
    if doc["type"] != POLICY_TYPE or doc["version"] != POLICY_VERSION:
        raise MalformedSignatureError(f"not a version {POLICY_VERSION} mlvault trust policy")
    if not _is_int(doc["serial"]) or doc["serial"] < 0:
        raise MalformedSignatureError("trust policy serial must be a non-negative integer")
    if not isinstance(doc["vault"], str):
        raise MalformedSignatureError("trust policy vault must be a string")
    if not isinstance(doc["rules"], list):
        raise MalformedSignatureError("trust policy rules must be a list")
    rules = tuple(_parse_rule(r) for r in doc["rules"])
    globs = [r.namespace for r in rules]
    if len(set(globs)) != len(globs):
        raise MalformedSignatureError("trust policy lists the same namespace glob twice")
    return TrustPolicy(rules, doc["serial"], doc["vault"])


def _parse_rule(value: object) -> TrustRule:
    rule = exact_object(value, "trust rule", {"namespace", "threshold", "keys"})
    namespace, threshold, key_list = rule["namespace"], rule["threshold"], rule["keys"]
    if not isinstance(namespace, str) or not 0 < len(namespace) <= 256:
        raise MalformedSignatureError("trust rule namespace must be a non-empty glob")
    if not isinstance(key_list, list) or not key_list:
        raise MalformedSignatureError(f"trust rule {namespace!r} must list at least one key")
    trusted = []
    for entry in key_list:
        item = exact_object(entry, "trusted key", {"fingerprint", "publicKey"})
        if not isinstance(item["publicKey"], str):
            raise MalformedSignatureError("trusted key publicKey must be a PEM string")
        try:
            key = keys.load_public_key_pem(item["publicKey"].encode("ascii"))
        except (UsageError, UnicodeEncodeError) as exc:
            raise MalformedSignatureError(f"trust rule {namespace!r} holds an unusable key") from exc
        if keys.fingerprint(key) != item["fingerprint"]:
            raise MalformedSignatureError(f"trust rule {namespace!r}: fingerprint does not match its key")
        trusted.append(TrustedKey.from_public_key(key))
    if len({k.fingerprint for k in trusted}) != len(trusted):
        raise MalformedSignatureError(f"trust rule {namespace!r} lists a key twice")
    if not _is_int(threshold) or not 1 <= threshold <= len(trusted):
        raise MalformedSignatureError(
            f"trust rule {namespace!r}: threshold must be between 1 and {len(trusted)}"
        )
    return TrustRule(namespace, tuple(trusted), threshold)


def sign_policy(policy: TrustPolicy, admin: Signer) -> bytes:
    """Sign a policy with the admin key; returns the signed document."""
    return ENVELOPE.seal(policy_to_json(policy_from_json(policy_to_json(policy))), admin)  # validated


def verify_policy(data: bytes, pinned_admin_fingerprints: Collection[str]) -> TrustPolicy:
    """Return the policy in a signed document if a pinned admin key signed it."""
    if not pinned_admin_fingerprints:
        raise UsageError("no admin key is pinned: pin the admin key fingerprint before trusting a policy")
    if len(data) > MAX_POLICY_BYTES:
        raise MalformedSignatureError(f"trust policy is over the {MAX_POLICY_BYTES}-byte limit")
    raw = strict_json(data, "signed trust policy")
    if isinstance(raw, dict) and "rules" in raw:
        raise MalformedSignatureError("trust policy is not signed: sign it with the admin key")
    admin_key, payload, signature = ENVELOPE.open_parsed(raw)
    admin_fp = keys.fingerprint(admin_key)
    if admin_fp not in set(pinned_admin_fingerprints):
        raise UntrustedSignerError(
            f"trust policy is signed by key {admin_fp[:16]}, which is not the pinned admin key"
        )
    ENVELOPE.check(admin_key, payload, signature)
    return policy_from_json(payload)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
