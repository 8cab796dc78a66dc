"""The ACL matrix: principals × patterns × capabilities, each precedence rule, and validation."""

from __future__ import annotations

import pytest

from vault.access.patterns import (
    ALL_CAPABILITIES,
    Capability,
    Rule,
    best_match,
    check_path,
    check_pattern,
    decide,
    matches,
    parse_capabilities,
    precedence,
    visible,
)
from vault.errors import UsageError

L, R, P, T, S, D, A = (
    Capability.LIST,
    Capability.READ,
    Capability.PUSH,
    Capability.TAG,
    Capability.SIGN,
    Capability.DELETE,
    Capability.ADMIN,
)

RULES = [
    Rule("alice", "team/*", frozenset({L, R, P, T})),
    Rule("alice", "team/vision/+", frozenset({L, R})),  # more specific: no push under team/vision
    Rule("bob", "team/*", frozenset({L, R})),
    Rule("bob", "team/secret/*", deny=True),
    Rule("carol", "*", frozenset({A})),
    Rule("carol", "team/secret/*", deny=True),  # deny beats admin
    Rule("ci", "team/vision/+", frozenset({P})),
    Rule("ci", "team/vision/+", frozenset({T})),  # same pattern: union with the line above
    Rule("ci", "team/+/resnet", frozenset({R})),  # loses to team/vision/+ (first wildcard earlier)
    Rule("erin", "team", frozenset({L})),
    Rule("erin", "team/+", frozenset({R})),
]

# principal, path, capability, allowed, pattern of the deciding rule (None: default deny)
MATRIX = [
    ("alice", "team/nlp/bert", P, True, "team/*"),
    ("alice", "team/nlp/bert", T, True, "team/*"),
    ("alice", "team/nlp/bert", S, False, "team/*"),
    ("alice", "team/vision/resnet", R, True, "team/vision/+"),
    ("alice", "team/vision/resnet", P, False, "team/vision/+"),  # the most specific alone decides
    ("alice", "team/vision/resnet/v2", P, True, "team/*"),  # '+' is one segment only
    ("alice", "team", L, False, None),  # 'team/*' does not match 'team'
    ("alice", "other/model", R, False, None),
    ("bob", "team/nlp/bert", R, True, "team/*"),
    ("bob", "team/nlp/bert", P, False, "team/*"),
    ("bob", "team/secret/plans", R, False, "team/secret/*"),
    ("bob", "team/secret/plans", L, False, "team/secret/*"),
    ("carol", "anything/at/all", R, True, "*"),  # admin implies every capability
    ("carol", "anything/at/all", D, True, "*"),
    ("carol", "team", A, True, "*"),
    ("carol", "team/secret/plans", A, False, "team/secret/*"),  # deny over admin
    ("carol", "team/secret/plans", R, False, "team/secret/*"),
    ("carol", "team/secret", R, True, "*"),  # the namespace entry itself is not under 'team/secret/*'
    ("ci", "team/vision/resnet", P, True, "team/vision/+"),
    ("ci", "team/vision/resnet", T, True, "team/vision/+"),  # union of two grants on one pattern
    ("ci", "team/vision/resnet", R, False, "team/vision/+"),  # team/+/resnet loses precedence
    ("ci", "team/nlp/resnet", R, True, "team/+/resnet"),
    ("ci", "team/nlp/bert", R, False, None),
    ("erin", "team", L, True, "team"),
    ("erin", "team", R, False, "team"),
    ("erin", "team/x", R, True, "team/+"),
    ("erin", "team/x/y", R, False, None),
    ("dave", "team/nlp/bert", L, False, None),  # no rules at all
]


@pytest.mark.parametrize(("principal", "path", "cap", "allowed", "pattern"), MATRIX)
def test_acl_matrix(principal: str, path: str, cap: Capability, allowed: bool, pattern: str | None) -> None:
    decision = decide(RULES, principal, path, cap)
    assert decision.allowed is allowed, decision.reason
    assert (decision.rule.pattern if decision.rule else None) == pattern
    if pattern is None:
        assert decision.reason.startswith("default deny")
    else:
        assert pattern in decision.reason


def test_reasons_say_what_decided() -> None:
    assert "deny team/secret/* to carol" in decide(RULES, "carol", "team/secret/x", A).reason
    assert "grant team/vision/+ (push,tag) to ci" in decide(RULES, "ci", "team/vision/r", P).reason
    assert "does not include push" in decide(RULES, "alice", "team/vision/r", "push").reason


def test_union_rule_is_reported_with_all_capabilities() -> None:
    rule = decide(RULES, "ci", "team/vision/resnet", P).rule
    assert rule is not None and rule.capabilities == {P, T}


def test_a_deny_and_a_grant_on_the_same_pattern_deny() -> None:
    rules = [Rule("x", "a/*", ALL_CAPABILITIES), Rule("x", "a/*", deny=True)]
    assert not decide(rules, "x", "a/b", R).allowed


def test_a_less_specific_deny_still_wins() -> None:
    rules = [Rule("x", "*", deny=True), Rule("x", "a/b/c", frozenset({A}))]
    decision = decide(rules, "x", "a/b/c", L)
    assert not decision.allowed and decision.rule == Rule("x", "*", deny=True)


def test_rules_of_other_principals_do_not_count() -> None:
    rules = [Rule("x", "*", frozenset({A})), Rule("y", "*", deny=True)]
    assert decide(rules, "x", "a/b", R).allowed
    assert not decide(rules, "y", "a/b", R).allowed


def test_grants_follow_the_id_not_the_name() -> None:
    # "alice" was principal p-1, removed; a new "alice" is p-2 and inherits nothing.
    rules = [Rule("p-1", "team/*", frozenset({R}))]
    assert decide(rules, "p-1", "team/m", R).allowed
    assert not decide(rules, "p-2", "team/m", R).allowed


def test_visible_filters_by_the_same_decision() -> None:
    paths = ["team/nlp/bert", "team/secret/plans", "team/vision/resnet", "other/m", "team", "BAD//path"]
    assert visible(RULES, "bob", paths) == {"team/nlp/bert", "team/vision/resnet"}
    assert visible(RULES, "carol", paths) == {"team/nlp/bert", "team/vision/resnet", "other/m", "team"}
    assert visible(RULES, "alice", paths, "push") == {"team/nlp/bert", "team/secret/plans"}
    assert visible(RULES, "dave", paths) == set()


# Each precedence rule on its own: (path, candidates, winner).
PRECEDENCE = [
    # 1. first wildcard later wins, even when the later one ends in '*'
    ("team/vision/resnet", ["team/+/resnet", "team/vision/+"], "team/vision/+"),
    ("a/b/c", ["a/+/c", "a/b/*"], "a/b/*"),
    ("a/b/c", ["*", "a/*", "a/b/*"], "a/b/*"),
    ("a/b/c", ["a/b/c", "a/b/+", "a/b/*"], "a/b/c"),  # no wildcard at all beats any wildcard
    # 2. no trailing '*' beats trailing '*'
    ("team/x", ["team/*", "team/+"], "team/+"),
    ("a/b/c", ["a/+/*", "a/+/c"], "a/+/c"),
    # 3. fewer '+' wins (Vault's own example)
    ("secret/a/b/foo/x", ["secret/+/+/foo/*", "secret/*"], "secret/*"),
    ("a/b/c/d", ["a/+/+/d", "a/+/c/d"], "a/+/c/d"),
    # 4. longer wins
    ("a/b/c/d", ["a/+/*", "a/+/c/*"], "a/+/c/*"),
    # 5. then the greater by code point
    ("a/x/b/c", ["a/+/+/c", "a/+/b/+"], "a/+/b/+"),
]


@pytest.mark.parametrize(("path", "candidates", "winner"), PRECEDENCE)
def test_each_precedence_rule(path: str, candidates: list[str], winner: str) -> None:
    assert all(matches(c, path) for c in candidates)
    assert best_match(candidates, path) == winner
    assert best_match(reversed(candidates), path) == winner
    # The same ordering decides grants.
    rules = [Rule("u", c, frozenset({S} if c == winner else {R})) for c in candidates]
    decision = decide(rules, "u", path, S)
    assert decision.allowed and decision.rule is not None and decision.rule.pattern == winner


def test_precedence_key_is_a_total_order_on_distinct_patterns() -> None:
    patterns = ["*", "+", "a", "a/*", "a/+", "a/b", "a/+/*", "a/+/c", "a/b/*", "a/b/c", "+/b/c"]
    assert len({precedence(p) for p in patterns}) == len(patterns)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("team/*", "team/x", True),
        ("team/*", "team/x/y/z", True),
        ("team/*", "team", False),
        ("team/*", "teams/x", False),
        ("*", "team", True),
        ("*", "a/b/c", True),
        ("+", "team", True),
        ("+", "team/x", False),
        ("+/*", "team", False),
        ("+/*", "team/x", True),
        ("team/+", "team/x", True),
        ("team/+", "team/x/y", False),
        ("team/+/r", "team/x/r", True),
        ("team/+/r", "team/r", False),
        ("Team/x", "team/x", False),  # case-sensitive
        ("team/x", "team/x", True),
        ("team/x", "team/x/y", False),
    ],
)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "empty segment"),
        ("/team", "empty segment"),
        ("team/", "empty segment"),
        ("team//x", "empty segment"),
        ("*/x", "last segment"),
        ("team/*/x", "last segment"),
        ("team/*/*", "last segment"),
        ("team/vis*", "wildcard inside"),
        ("team/a+b", "wildcard inside"),
        ("team/**", "wildcard inside"),
        ("team/+*", "wildcard inside"),
        ("team/..", "bad segment"),
        ("team/-x", "bad segment"),
        ("team/x y", "bad segment"),
        ("team/%", "bad segment"),
        ("/".join(["a"] * 33), "more than 32"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        check_pattern(pattern)
    with pytest.raises(UsageError):
        Rule("u", pattern, frozenset({R}))


@pytest.mark.parametrize(
    "path", ["", "team/", "team/+", "team/*", "a//b", "team/..", "é/x", "/".join("a" * 33)]
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(UsageError):
        check_path(path)
    with pytest.raises(UsageError):
        decide(RULES, "alice", path, R)


def test_rule_and_capability_validation() -> None:
    with pytest.raises(UsageError, match="denies every capability"):
        Rule("u", "a/*", frozenset({R}), deny=True)
    with pytest.raises(UsageError, match="no capabilities"):
        Rule("u", "a/*")
    with pytest.raises(UsageError, match="principal id"):
        Rule("", "a/*", frozenset({R}))
    with pytest.raises(UsageError, match="unknown capability 'write'"):
        Rule("u", "a/*", frozenset({"write"}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown capability"):
        decide(RULES, "alice", "team/x", "write")
    assert Rule("u", "a/*", frozenset({"read"})).capabilities == {R}  # type: ignore[arg-type]
    assert parse_capabilities("read, push,tag") == {R, P, T}
    with pytest.raises(UsageError):
        parse_capabilities(" , ")
