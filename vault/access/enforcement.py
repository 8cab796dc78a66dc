"""What enforces each grant: keys (an x25519 slot on a namespace keyring) or only the policy.

Keyrings are per top-level namespace, so only a rule on exactly ``NS/*`` can be enforced by keys
(:mod:`vault.access.service` adds and removes the slots); ``access ls`` shows, for every rule, which
one enforces it and what the user should know.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from vault.access.patterns import STAR, Capability, Rule, check_pattern
from vault.access.policy import AccessPolicy
from vault.access.principals import Principal


@dataclass(frozen=True)
class GrantView:
    """One rule for ``access ls``: what enforces it, and what the user should know."""

    principal: str
    principal_id: str
    pattern: str
    capabilities: tuple[str, ...]
    deny: bool
    enforced_by: str  # "keys" or "policy"
    note: str


def keyring_namespace(pattern: str, own: Collection[str] = ()) -> str | None:
    """The namespace whose whole keyring ``pattern`` covers (``team/*`` → ``team``), else None.

    ``own``: deeper namespaces with a keyring of their own (vault.keys.subtrees), so
    ``team/secret/*`` → ``team/secret`` when it is one of them.
    """
    segments = check_pattern(pattern)
    if len(segments) < 2 or segments[-1] != STAR or any(s in (STAR, "+") for s in segments[:-1]):
        return None
    prefix = "/".join(segments[:-1])
    return prefix if len(segments) == 2 or prefix in own else None


def holds_keyring_read(policy: AccessPolicy, principal: Principal, namespace: str) -> bool:
    """Whether ``principal`` should hold an x25519 slot on ``namespace``'s keyring under ``policy``."""
    if not principal.live:
        return False
    whole = f"{namespace}/*"
    mine = policy.rules_of(principal.id)
    # A deny on the namespace or any namespace above it (team/* covers team/secret) takes the slot away.
    above = [r.pattern[:-1] for r in mine if r.deny and r.pattern.endswith("/*")]  # "team/" for team/*
    if any(r.deny and r.pattern == STAR for r in mine) or any(f"{namespace}/".startswith(p) for p in above):
        return False
    return any(r.pattern == whole and r.allows(Capability.READ) for r in mine)


def enforcement(
    policy: AccessPolicy,
    who: Principal,
    rule: Rule,
    slots: set[tuple[str | None, str | None]],
    own: Collection[str] = (),
) -> tuple[str, str]:
    """(``keys`` or ``policy``, a note) for one rule, given the x25519 slots (namespace, recipient) and
    the deeper namespaces with a keyring of their own."""
    namespace = keyring_namespace(rule.pattern, own)
    if rule.deny:
        if namespace or rule.pattern == STAR:
            return "keys", "a deny on a whole namespace removes the principal's key slots there"
        return "policy", "keys are per top-level namespace: only policy enforces a deny on a finer glob"
    reads = rule.allows(Capability.READ)
    if namespace is None:
        if reads:
            return "policy", (
                "keys are per top-level namespace (or one created with its own keyring): only policy "
                "enforces read on this pattern (grant read on NS/* to wrap a keyring)"
            )
        return "policy", "writes are enforced by policy and signed records"
    if reads and holds_keyring_read(policy, who, namespace):
        present = (namespace, who.fingerprint) in slots
        note = f"read by keys (x25519 slot on keyring {namespace})"
        return "keys", note if present else f"{note}; the slot is missing: run the grant again"
    if Capability.PUSH in rule.capabilities:
        return "policy", (
            f"push needs keyring {namespace}, which also decrypts (write implies read): "
            "without read granted too, no slot is added and this grant cannot be used"
        )
    return "policy", "enforced by policy"
