"""The access policy: principals and their grants and denies, as one admin-signed document.

**Why a document.** Whoever can write the catalog must not be able to grant themselves anything
that other clients honour, so the policy is not rows: it is a document signed by an admin key that
each client pins (:mod:`vault.access.service`), with the vault id and a serial, and a client refuses
a serial lower than one it has accepted. Rows the catalog keeps beside it are an index for SQL
joins and are never read to decide anything.

**Separate from the trust policy**, with the same envelope: trust rules (which keys may sign which
artifacts) change when a release signer changes; grants change whenever someone joins a team. One
merged document would make every grant bump the trust policy's serial and rewrite a format that
deploy hosts already verify, and would tie the two rollback counters together for no gain. They
share the signing machinery (DSSE PAE over canonical JSON, ECDSA P-256, the pinned admin key) and
differ in payload type, so a signature over one can never be replayed as the other.

The payload is canonical JSON (sorted keys, no whitespace, UTF-8)::

    {"type": "mlvault/access-policy", "version": 1, "serial": 7, "vault": "<vault id hex>",
     "principals": [<see vault.access.principals>],
     "rules": [{"principal": "<id>", "pattern": "team/*", "capabilities": ["push", "read"],
                "deny": false}],
     "provenance": {"versions": [["<version id>", "<manifest sha256>"]],
                    "tags": [["team/resnet", "prod", "<version id>"]], "kept": ["<record sha256>"]}}

``provenance`` (:mod:`vault.access.records`) lists what readers accept without a valid provenance
record: the versions and tags that existed when the first policy was signed, and the records kept
valid after their signer lost the capability. A document written before provenance records has no
``provenance`` field and lists nothing.

and the signed document is ``{"mediaType": SIGNED_MEDIA_TYPE, "payload": b64, "adminKey": PEM,
"signature": b64 DER}`` with the signature over ``PAE(PAYLOAD_TYPE, payload)``.

**Edits are pure**: each returns a new :class:`AccessPolicy` with serial + 1 and refuses what the
policy must never become — two live principals with one name or one identity, a rule for a
removed principal, or no principal left holding ``admin`` on ``*`` once one did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from vault.access.patterns import STAR, Capability, Rule, as_capability, check_path, decide
from vault.access.principals import Principal
from vault.access.provenance_lists import parse_provenance, provenance_to_json
from vault.errors import (
    ConflictError,
    MalformedSignatureError,
    NotFoundError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import keys
from vault.signing.envelope import Envelope, exact_object
from vault.signing.oms import canonical_json, strict_json
from vault.signing.signers import Signer

POLICY_TYPE = "mlvault/access-policy"
POLICY_VERSION = 1
PAYLOAD_TYPE = "application/vnd.mlvault.access-policy.v1+json"
SIGNED_MEDIA_TYPE = "application/vnd.mlvault.signed-access-policy.v1+json"
MAX_POLICY_BYTES = 4 * 1024 * 1024
_DOC_FIELDS = {"type", "version", "serial", "vault", "principals", "rules"}
_RULE_FIELDS = {"principal", "pattern", "capabilities", "deny"}
ENVELOPE = Envelope(SIGNED_MEDIA_TYPE, PAYLOAD_TYPE, "adminKey", MAX_POLICY_BYTES, "access policy")


@dataclass(frozen=True)
class AccessPolicy:
    """Every principal ever added (removed ones marked) and the live ones' rules, at one serial."""

    vault_id: str
    serial: int = 0
    principals: tuple[Principal, ...] = ()
    rules: tuple[Rule, ...] = ()
    legacy_versions: frozenset[tuple[str, str]] = frozenset()  # (version id, manifest digest)
    legacy_tags: frozenset[tuple[str, str, str]] = frozenset()  # (artifact, tag, version id)
    kept: frozenset[str] = frozenset()  # provenance record digests kept valid

    # -- reading --------------------------------------------------------------------------------

    def named(self, name: str) -> Principal:
        """The live principal called ``name``; ``NotFoundError`` if there is none."""
        for p in self.principals:
            if p.live and p.name == name:
                return p
        raise NotFoundError(f"no principal named {name!r} (see `mlvault principal ls`)")

    def by_id(self, principal_id: str) -> Principal | None:
        """The principal (live or removed) with this id."""
        return next((p for p in self.principals if p.id == principal_id), None)

    def live(self) -> list[Principal]:
        """The principals not removed, by name."""
        return sorted((p for p in self.principals if p.live), key=lambda p: p.name)

    def rules_of(self, principal_id: str) -> list[Rule]:
        """The rules of one principal."""
        return [r for r in self.rules if r.principal_id == principal_id]

    def admins(self) -> set[str]:
        """Ids of the live principals holding ``admin`` on ``*`` with no deny on ``*``."""
        denied = {r.principal_id for r in self.rules if r.deny and r.pattern == STAR}
        return {
            r.principal_id
            for r in self.rules
            if not r.deny and r.pattern == STAR and Capability.ADMIN in r.capabilities
        } - denied

    # -- editing (each returns the next serial) --------------------------------------------------

    def with_principal(self, new: Principal) -> AccessPolicy:
        """Add a principal; ``ConflictError`` if its name or identity belongs to a live one."""
        for p in self.principals:
            if p.id == new.id:
                raise ConflictError(f"principal id {new.id} is already in the policy")
            if p.live and p.name == new.name:
                raise ConflictError(
                    f"a principal named {new.name!r} already exists (see `mlvault principal ls`)"
                )
            if p.live and p.fingerprint == new.fingerprint:
                raise ConflictError(
                    f"identity {new.fingerprint[:16]} already belongs to principal {p.name!r}; "
                    "one identity, one principal"
                )
        return self._next(principals=(*self.principals, new))

    def without_principal(self, name: str, at: dt.datetime) -> AccessPolicy:
        """Mark a principal removed and drop its rules (a re-added name starts with none)."""
        gone = self.named(name)
        principals = tuple(p.removed(at) if p.id == gone.id else p for p in self.principals)
        return self._next(
            principals=principals, rules=tuple(r for r in self.rules if r.principal_id != gone.id)
        )

    def renamed(self, name: str, new_name: str) -> AccessPolicy:
        """Rename a live principal; it keeps its id and so its grants."""
        target = self.named(name)
        if any(p.live and p.name == new_name and p.id != target.id for p in self.principals):
            raise ConflictError(f"a principal named {new_name!r} already exists")
        principals = tuple(p.renamed(new_name) if p.id == target.id else p for p in self.principals)
        return self._next(principals=principals)

    def granted(self, name: str, pattern: str, capabilities: Iterable[Capability]) -> AccessPolicy:
        """Grant capabilities on a pattern; the same pattern again is a union."""
        pid = self.named(name).id
        caps = frozenset(capabilities)
        current = self._grant(pid, pattern)
        merged = Rule(pid, pattern, caps | (current.capabilities if current else frozenset()))
        return self._next(rules=self._replace_rule(current, merged))

    def denied(self, name: str, pattern: str) -> AccessPolicy:
        """An explicit deny on a pattern (it wins over every grant, admin included)."""
        pid = self.named(name).id
        current = next((r for r in self.rules_of(pid) if r.deny and r.pattern == pattern), None)
        return self._next(rules=self._replace_rule(current, Rule(pid, pattern, deny=True)))

    def revoked(self, name: str, pattern: str, capabilities: Iterable[Capability]) -> AccessPolicy:
        """Remove capabilities from the grant on exactly ``pattern`` (the rule goes when none are left)."""
        pid = self.named(name).id
        current = self._grant(pid, pattern)
        caps = frozenset(capabilities)
        if current is None or not caps & current.capabilities:
            raise NotFoundError(
                f"{name} holds no {','.join(sorted(caps))} grant on exactly {pattern!r} "
                "(see `mlvault access ls`)"
            )
        left = current.capabilities - caps
        return self._next(rules=self._replace_rule(current, Rule(pid, pattern, left) if left else None))

    def undenied(self, name: str, pattern: str) -> AccessPolicy:
        """Remove the explicit deny on exactly ``pattern``."""
        pid = self.named(name).id
        current = next((r for r in self.rules_of(pid) if r.deny and r.pattern == pattern), None)
        if current is None:
            raise NotFoundError(f"{name} has no deny on exactly {pattern!r}")
        return self._next(rules=self._replace_rule(current, None))

    def _grant(self, pid: str, pattern: str) -> Rule | None:
        return next((r for r in self.rules_of(pid) if not r.deny and r.pattern == pattern), None)

    def _replace_rule(self, old: Rule | None, new: Rule | None) -> tuple[Rule, ...]:
        kept = [r for r in self.rules if r is not old]
        return tuple([*kept, new] if new is not None else kept)

    def _next(self, **changes: Any) -> AccessPolicy:
        after = replace(self, serial=self.serial + 1, **changes)
        if self.admins() and not after.admins():
            names = ", ".join(sorted(p.name for p in self.principals if p.id in self.admins()))
            raise UsageError(
                f"refusing: {names} would no longer hold admin on '*', and no other principal does; "
                "grant admin on '*' to another principal first"
            )
        return after


# What `access explain` accepts as ACTION: commands and the capability each needs.
ACTIONS: dict[str, Capability] = {
    "pull": Capability.READ,
    "show": Capability.READ,
    "verify": Capability.READ,
    "push": Capability.PUSH,
    "tag": Capability.TAG,
    "sign": Capability.SIGN,
    "ls": Capability.LIST,
    "log": Capability.LIST,
    "rm": Capability.DELETE,
    "grant": Capability.ADMIN,
    "revoke": Capability.ADMIN,
    "deny": Capability.ADMIN,
    "principal": Capability.ADMIN,
    "keys": Capability.ADMIN,
    "rekey": Capability.ADMIN,
}


@dataclass(frozen=True)
class Explanation:
    """The answer of ``access explain``."""

    principal: str
    action: str
    capability: str
    path: str
    allowed: bool
    rule: str | None
    reason: str


def explain(policy: AccessPolicy | None, name: str, action: str, path: str, today: dt.date) -> Explanation:
    """May principal ``name`` do ``action`` (a command or a capability) on ``path`` under ``policy``?"""
    cap = ACTIONS.get(action) or _capability(action)
    path = path.split("@", 1)[0]
    check_path(path)
    if policy is None:
        return Explanation(
            name, action, cap, path, False, None, "default deny: the vault has no access policy"
        )
    who = policy.named(name)
    if who.expired(today):
        reason = f"denied: principal {name} expired on {who.expires}"
        return Explanation(name, action, cap, path, False, None, reason)
    decision = decide(policy.rules, who.id, path, cap)
    rule = _describe(decision.rule, name) if decision.rule else None
    if decision.rule is None:
        reason = f"default deny: no rule of {name} matches {path}"
    elif decision.rule.deny:
        reason = f"denied by {rule}: a deny wins over every grant, admin included"
    elif decision.allowed:
        reason = f"allowed by {rule}, the most specific rule of {name} matching {path}"
    else:
        reason = f"denied: {rule}, the most specific rule of {name} matching {path}, lacks {cap}"
    return Explanation(name, action, cap, path, decision.allowed, rule, reason)


def _capability(action: str) -> Capability:
    try:
        return as_capability(action)
    except UsageError:
        raise UsageError(
            f"unknown action {action!r}: use one of {', '.join(ACTIONS)} or a capability name"
        ) from None


def _describe(rule: Rule, name: str) -> str:
    if rule.deny:
        return f"deny {rule.pattern} to {name}"
    return f"grant {rule.pattern} ({','.join(sorted(c.value for c in rule.capabilities))}) to {name}"


# -- the document ----------------------------------------------------------------------------------


def policy_to_json(policy: AccessPolicy) -> bytes:
    """Canonical JSON of a policy (the bytes the admin signs)."""
    rules = sorted(policy.rules, key=lambda r: (r.principal_id, r.pattern, r.deny))
    return canonical_json(
        {
            "type": POLICY_TYPE,
            "version": POLICY_VERSION,
            "serial": policy.serial,
            "vault": policy.vault_id,
            "principals": [p.to_json() for p in policy.principals],
            "rules": [
                {
                    "principal": r.principal_id,
                    "pattern": r.pattern,
                    "capabilities": sorted(c.value for c in r.capabilities),
                    "deny": r.deny,
                }
                for r in rules
            ],
            "provenance": provenance_to_json(policy.legacy_versions, policy.legacy_tags, policy.kept),
        }
    )


def policy_from_json(data: bytes) -> AccessPolicy:
    """Parse and check policy JSON; ``MalformedSignatureError`` on any problem."""
    raw = strict_json(data, "access policy")
    provenance = raw.pop("provenance", None) if isinstance(raw, dict) else None
    doc = exact_object(raw, "access policy", _DOC_FIELDS)
    if doc["type"] != POLICY_TYPE or doc["version"] != POLICY_VERSION:
        raise MalformedSignatureError(f"not a version {POLICY_VERSION} mlvault access policy")
    serial, vault_id = doc["serial"], doc["vault"]
    if type(serial) is not int or serial < 1 or not isinstance(vault_id, str):
        raise MalformedSignatureError("access policy serial must be a positive integer and vault a string")
    if not isinstance(doc["principals"], list) or not isinstance(doc["rules"], list):
        raise MalformedSignatureError("access policy principals and rules must be lists")
    principals = tuple(Principal.from_json(p) for p in doc["principals"])
    ids = [p.id for p in principals]
    live_names = [p.name for p in principals if p.live]
    live_keys = [p.fingerprint for p in principals if p.live]
    if (
        len(set(ids)) != len(ids)
        or len(set(live_names)) != len(live_names)
        or len(set(live_keys)) != len(live_keys)
    ):
        raise MalformedSignatureError("access policy lists a principal id, live name or identity twice")
    live_ids = {p.id for p in principals if p.live}
    rules = tuple(_parse_rule(r, live_ids) for r in doc["rules"])
    if len({(r.principal_id, r.pattern, r.deny) for r in rules}) != len(rules):
        raise MalformedSignatureError("access policy lists the same rule twice")
    return AccessPolicy(vault_id, serial, principals, rules, *parse_provenance(provenance))


def _parse_rule(value: object, live_ids: set[str]) -> Rule:
    rule = exact_object(value, "access rule", _RULE_FIELDS)
    pid, pattern, caps, deny = rule["principal"], rule["pattern"], rule["capabilities"], rule["deny"]
    if pid not in live_ids:
        raise MalformedSignatureError("an access rule names a principal that is not a live principal")
    if not isinstance(pattern, str) or not isinstance(caps, list) or not isinstance(deny, bool):
        raise MalformedSignatureError("an access rule has a bad pattern, capability list or deny flag")
    try:
        if not all(isinstance(c, str) for c in caps) or len(set(caps)) != len(caps):
            raise UsageError("capabilities")
        return Rule(pid, pattern, frozenset(as_capability(c) for c in caps), deny)
    except UsageError as exc:
        raise MalformedSignatureError(f"an access rule on {pattern!r} is malformed: {exc}") from exc


def sign_access_policy(policy: AccessPolicy, admin: Signer) -> bytes:
    """Sign a policy with an admin key; returns the signed document."""
    return ENVELOPE.seal(policy_to_json(policy_from_json(policy_to_json(policy))), admin)  # validated


def document_signer(document: bytes) -> str | None:
    """The admin key fingerprint a signed document names (unverified), or ``None``."""
    try:
        return keys.fingerprint(ENVELOPE.open(document)[0])
    except MalformedSignatureError:
        return None


def verify_access_policy(document: bytes, admin_fingerprints: Collection[str]) -> AccessPolicy:
    """The policy in a signed document if one of ``admin_fingerprints`` signed it."""
    admin_key, payload, signature = ENVELOPE.open(document)
    signer = keys.fingerprint(admin_key)
    if signer not in set(admin_fingerprints):
        raise UntrustedSignerError(
            f"the access policy is signed by key {signer[:16]}, which is not a pinned admin key of this vault"
        )
    ENVELOPE.check(admin_key, payload, signature)
    return policy_from_json(payload)
