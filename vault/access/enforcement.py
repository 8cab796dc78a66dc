"""What enforces each grant: keys (an x25519 slot on a namespace keyring) or only the policy.

Keyrings are per top-level namespace, so only a rule on exactly ``NS/*`` can be enforced by keys
(:mod:`vault.access.service` adds and removes the slots); ``access ls`` shows, for every rule, which
one enforces it and what the user should know.
"""

from __future__ import annotations

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


def keyring_namespace(pattern: str) -> str | None:
    """The top-level namespace whose whole keyring ``pattern`` covers (``team/*`` → ``team``), else None."""
    segments = check_pattern(pattern)
    if len(segments) == 2 and segments[1] == STAR and segments[0] not in (STAR, "+"):
        return segments[0]
    return None


def holds_keyring_read(policy: AccessPolicy, principal: Principal, namespace: str) -> bool:
    """Whether ``principal`` should hold an x25519 slot on ``namespace``'s keyring under ``policy``."""
    if not principal.live:
        return False
    whole = f"{namespace}/*"
    mine = policy.rules_of(principal.id)
    if any(r.deny and r.pattern in (whole, STAR) for r in mine):
        return False
    return any(r.pattern == whole and r.allows(Capability.READ) for r in mine)


def enforcement(
    policy: AccessPolicy, who: Principal, rule: Rule, slots: set[tuple[str | None, str | None]]
) -> tuple[str, str]:
    """(``keys`` or ``policy``, a note) for one rule, given the x25519 slots (namespace, recipient)."""
    namespace = keyring_namespace(rule.pattern)
    if rule.deny:
        if namespace or rule.pattern == STAR:
            return "keys", "a deny on a whole namespace removes the principal's key slots there"
        return "policy", "keys are per top-level namespace: only policy enforces a deny on a finer glob"
    reads = rule.allows(Capability.READ)
    if namespace is None:
        if reads:
            return "policy", (
                "keys are per top-level namespace: only policy enforces read on this pattern "
                "(grant read on NS/* to wrap a keyring)"
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
