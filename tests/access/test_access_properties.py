"""Property tests: vault.access.patterns against a deliberately naive reference written here.

The reference matches by regular expression over the whole string (not by segments), ranks
patterns by Vault's pairwise "P1 is lower priority than P2" rules (not by a sort key), and
decides by brute force over every matching rule.
"""

from __future__ import annotations

import itertools
import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vault.access.patterns import Capability, Rule, best_match, decide, matches, visible

SETTINGS = settings(max_examples=400, deadline=None, database=None)


def ref_matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        regex = ".+"
    else:
        body, star = (pattern[:-2], True) if pattern.endswith("/*") else (pattern, False)
        regex = "/".join("[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/"))
        if star:
            regex += "/.+"
    return re.fullmatch(regex, path) is not None


def ref_lower(p1: str, p2: str) -> bool:
    """Vault's rules, literally: is P1 lower priority than P2?"""
    w1 = min((i for i, c in enumerate(p1) if c in "+*"), default=None)
    w2 = min((i for i, c in enumerate(p2) if c in "+*"), default=None)
    if w1 != w2:
        if w1 is None:
            return False
        if w2 is None:
            return True
        return w1 < w2
    if p1.endswith("*") != p2.endswith("*"):
        return p1.endswith("*")
    plus1, plus2 = p1.split("/").count("+"), p2.split("/").count("+")
    if plus1 != plus2:
        return plus1 > plus2
    if len(p1) != len(p2):
        return len(p1) < len(p2)
    return p1 < p2


def ref_winner(patterns: set[str]) -> str:
    winners = [p for p in patterns if all(q == p or ref_lower(q, p) for q in patterns)]
    assert len(winners) == 1
    return winners[0]


def ref_decide(rules: list[Rule], who: str, path: str, cap: Capability) -> tuple[bool, str | None]:
    hits = [r for r in rules if r.principal_id == who and ref_matches(r.pattern, path)]
    if not hits:
        return False, None
    denied = {r.pattern for r in hits if r.deny}
    if denied:
        return False, ref_winner(denied)
    winner = ref_winner({r.pattern for r in hits})
    caps: set[Capability] = set()
    for r in hits:
        if r.pattern == winner:
            caps |= r.capabilities
    return (cap in caps or Capability.ADMIN in caps), winner


# Pools built once and sampled: drawing from a list is far cheaper than composite strategies.
_SEGS = ["a", "b", "c"]
PATHS = ["/".join(p) for n in range(1, 6) for p in itertools.product(_SEGS, repeat=n)]
_BODIES = [list(b) for n in range(5) for b in itertools.product([*_SEGS, "+"], repeat=n)]
PATTERNS = sorted({"/".join([*b, "*"]) for b in _BODIES} | {"/".join(b) for b in _BODIES if b})
_CAPS = [frozenset({Capability.READ}), frozenset({Capability.PUSH}), frozenset({Capability.ADMIN})]
_CAPS += [
    frozenset({Capability.LIST, Capability.READ}),
    frozenset({Capability.READ, Capability.PUSH, Capability.TAG}),
]
RULES = [Rule(who, p, caps) for who in "pq" for p in PATTERNS for caps in _CAPS]
RULES += [Rule(who, p, deny=True) for who in "pq" for p in PATTERNS]

paths = st.sampled_from(PATHS)
patterns = st.sampled_from(PATTERNS)
rule_lists = st.lists(st.sampled_from(RULES), max_size=8)
capabilities = st.sampled_from(list(Capability))


@SETTINGS
@given(patterns, paths)
def test_matching_agrees_with_the_regex_reference(pattern: str, path: str) -> None:
    assert matches(pattern, path) == ref_matches(pattern, path)


@SETTINGS
@given(st.lists(patterns, max_size=8), paths)
def test_best_match_agrees_with_pairwise_vault_ordering(candidates: list[str], path: str) -> None:
    hits = {p for p in candidates if ref_matches(p, path)}
    assert best_match(candidates, path) == (ref_winner(hits) if hits else None)


@SETTINGS
@given(rule_lists, paths, capabilities)
def test_decide_agrees_with_the_reference(rule_list: list[Rule], path: str, cap: Capability) -> None:
    decision = decide(rule_list, "p", path, cap)
    allowed, pattern = ref_decide(rule_list, "p", path, cap)
    assert decision.allowed == allowed
    assert (decision.rule.pattern if decision.rule else None) == pattern
    if decision.rule is not None:
        assert decision.rule.deny == any(
            r.deny for r in rule_list if r.principal_id == "p" and ref_matches(r.pattern, path)
        )


@SETTINGS
@given(rule_lists, st.lists(paths, max_size=10), capabilities)
def test_visible_is_decide_over_each_path(
    rule_list: list[Rule], path_list: list[str], cap: Capability
) -> None:
    expected = {p for p in path_list if ref_decide(rule_list, "q", p, cap)[0]}
    assert visible(rule_list, "q", path_list, cap) == expected


@SETTINGS
@given(rule_lists, paths, capabilities)
def test_rule_order_does_not_matter(rule_list: list[Rule], path: str, cap: Capability) -> None:
    assert decide(rule_list, "p", path, cap) == decide(list(reversed(rule_list)), "p", path, cap)


@SETTINGS
@given(rule_lists, paths)
def test_adding_a_matching_deny_never_allows_more(rule_list: list[Rule], path: str) -> None:
    denied = [*rule_list, Rule("p", "*", deny=True)]
    assert not any(decide(denied, "p", path, c).allowed for c in Capability)


def test_decide_agrees_with_the_reference_on_many_seeded_cases() -> None:
    # Hypothesis explores and shrinks; this adds breadth cheaply (same reference, fixed seed).
    rng = random.Random(20260510)
    for _ in range(20000):
        rule_list = rng.sample(RULES, rng.randint(0, 10))
        path, cap = rng.choice(PATHS), rng.choice(list(Capability))
        decision = decide(rule_list, "p", path, cap)
        assert (decision.allowed, decision.rule.pattern if decision.rule else None) == ref_decide(
            rule_list, "p", path, cap
        ), (rule_list, path, cap)
