"""The one pattern grammar of mlvault, its precedence, and the access decision over rules.

Grants, denies, trust rules, scan policies and backup include lists all name paths with these
patterns and resolve overlaps with this precedence, as HashiCorp Vault's ACL policies do.

**Paths** are ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-``, each starting
with a letter or digit (the segment grammar of artifact names), 1 to 32 segments: a top-level
namespace (``team``), a nested namespace (``team/vision``) or an artifact (``team/vision/resnet``).
Matching is case-sensitive and exact; no Unicode folding, no SQL ``LIKE``.

**Patterns** use the same segments, plus two wildcards that must each be a whole segment:

* ``+`` matches exactly one segment: ``team/+/resnet`` matches ``team/vision/resnet`` but not
  ``team/resnet`` or ``team/a/b/resnet``.
* ``*`` may only be the last segment and matches one or more further segments (a prefix):
  ``team/*`` matches ``team/x`` and ``team/x/y`` but **not** ``team`` itself (as in Vault, where
  ``team/*`` is the string prefix ``team/``); grant ``team`` as well to cover the namespace entry.
  ``*`` alone matches every path.

Refused with :class:`~vault.errors.UsageError`: an empty pattern, empty segments (leading,
trailing or doubled ``/``), ``*`` anywhere but the last segment, a wildcard inside a segment
(``vis*``, ``a+b``), ``.`` or ``..`` segments, and more than 32 segments.

**Precedence.** When several patterns match a path, the most specific wins. Pattern P1 beats P2
when, checked in this order:

1. P1's first wildcard (``+`` or ``*``) comes later (character index; no wildcard at all counts
   as later than any wildcard);
2. P1 does not end in ``*`` and P2 does;
3. P1 has fewer ``+`` segments;
4. P1 is longer (in characters);
5. P1 is greater by code-point comparison (the last resort; only differing patterns reach it).

**Decision** for a principal, a path and a capability (:func:`decide`): rules of other principals
are ignored; if no rule matches, the answer is *default deny*. If any matching rule is a deny, the
answer is deny, whatever the grants say, ``admin`` included. Otherwise grants on the same pattern
are merged (their capabilities are a union) and the most specific matching pattern alone decides:
a capability it lacks is denied even if a less specific pattern grants it. ``admin`` on a pattern
implies every other capability on it. A deny rule denies every capability and lists none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from vault.errors import UsageError


class Capability(StrEnum):
    """What a grant allows on the paths its pattern matches."""

    LIST = "list"  # see names
    READ = "read"  # pull, show, verify
    PUSH = "push"  # append a new version
    TAG = "tag"  # create or move tags
    SIGN = "sign"
    DELETE = "delete"
    ADMIN = "admin"  # grants, principals, keys; implies every other capability


ALL_CAPABILITIES: frozenset[Capability] = frozenset(Capability)
MAX_SEGMENTS = 32
PLUS = "+"
STAR = "*"
_SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NO_WILDCARD = 1 << 30  # "first wildcard" index of a pattern without one: later than any real index


def as_capability(value: str | Capability) -> Capability:
    """Return ``value`` as a Capability, or UsageError naming the valid ones."""
    try:
        return Capability(value)
    except ValueError:
        valid = ", ".join(c.value for c in Capability)
        raise UsageError(f"unknown capability {value!r}: expected one of {valid}") from None


def parse_capabilities(text: str) -> frozenset[Capability]:
    """Parse a comma-separated list such as ``read,push,tag``."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise UsageError("no capabilities given: expected e.g. read,push,tag")
    return frozenset(as_capability(part) for part in parts if part)


def _literal(segment: str) -> bool:
    return _SEGMENT_RE.fullmatch(segment) is not None and segment not in (".", "..")


def check_path(path: str) -> tuple[str, ...]:
    """Return the segments of a valid path, or UsageError."""
    segments = tuple(path.split("/"))
    if len(segments) > MAX_SEGMENTS or not all(_literal(s) for s in segments):
        raise UsageError(
            f"invalid path {path!r}: expected segments of letters, digits, '.', '_', '-' "
            f"separated by '/', e.g. team/vision/resnet (at most {MAX_SEGMENTS})"
        )
    return segments


def check_pattern(pattern: str) -> tuple[str, ...]:
    """Return the segments of a valid pattern, or UsageError saying what is wrong."""
    segments = tuple(pattern.split("/"))
    if len(segments) > MAX_SEGMENTS:
        raise UsageError(f"invalid pattern {pattern!r}: more than {MAX_SEGMENTS} segments")
    for index, segment in enumerate(segments):
        if segment == STAR:
            if index != len(segments) - 1:
                raise UsageError(f"invalid pattern {pattern!r}: '*' is only allowed as the last segment")
        elif segment != PLUS and not _literal(segment):
            if not segment:
                why = "empty segment (leading, trailing or doubled '/')"
            elif STAR in segment or PLUS in segment:
                why = f"wildcard inside segment {segment!r}: '+' and '*' must be whole segments"
            else:
                why = f"bad segment {segment!r}: letters, digits, '.', '_', '-'; a letter or digit first"
            raise UsageError(f"invalid pattern {pattern!r}: {why}")
    return segments


def _segments_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if pattern[-1] == STAR:
        head = pattern[:-1]
        if len(path) <= len(head):
            return False
    elif len(path) != len(pattern):
        return False
    else:
        head = pattern
    return all(p in (PLUS, s) for p, s in zip(head, path, strict=False))


def matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` matches ``path`` (both validated; UsageError if either is malformed)."""
    return _segments_match(check_pattern(pattern), check_path(path))


def precedence(pattern: str) -> tuple[int, int, int, int, str]:
    """A sort key: of two patterns matching one path, the one with the greater key wins."""
    wildcards = [i for i, ch in enumerate(pattern) if ch in (PLUS, STAR)]
    return (
        wildcards[0] if wildcards else _NO_WILDCARD,
        0 if pattern.endswith(STAR) else 1,
        -pattern.split("/").count(PLUS),
        len(pattern),
        pattern,
    )


def best_match(patterns: Iterable[str], path: str) -> str | None:
    """The most specific of ``patterns`` that matches ``path``, or None (for trust rules, scans)."""
    segments = check_path(path)
    found = [p for p in set(patterns) if _segments_match(check_pattern(p), segments)]
    return max(found, key=precedence) if found else None


@dataclass(frozen=True)
class Rule:
    """A grant of ``capabilities`` on ``pattern`` to a principal id, or (``deny``) an explicit deny."""

    principal_id: str
    pattern: str
    capabilities: frozenset[Capability] = frozenset()
    deny: bool = False
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.principal_id:
            raise UsageError("a rule needs a principal id")
        object.__setattr__(self, "_segments", check_pattern(self.pattern))
        object.__setattr__(self, "capabilities", frozenset(as_capability(c) for c in self.capabilities))
        if self.deny and self.capabilities:
            raise UsageError(f"deny on {self.pattern!r} lists capabilities: a deny denies every capability")
        if not self.deny and not self.capabilities:
            raise UsageError(f"grant on {self.pattern!r} lists no capabilities")

    def covers(self, path: tuple[str, ...]) -> bool:
        """Whether this rule's pattern matches the (already split) path."""
        return _segments_match(self._segments, path)

    def allows(self, cap: Capability) -> bool:
        """Whether this grant includes ``cap`` (``admin`` includes everything); False for a deny."""
        return not self.deny and (cap in self.capabilities or Capability.ADMIN in self.capabilities)

    def describe(self) -> str:
        """One line for ``access explain``: ``grant team/* (push,read,tag) to alice``."""
        if self.deny:
            return f"deny {self.pattern} to {self.principal_id}"
        caps = ",".join(sorted(c.value for c in self.capabilities))
        return f"grant {self.pattern} ({caps}) to {self.principal_id}"


@dataclass(frozen=True)
class Decision:
    """The answer to one access question and the rule that gave it (None for default deny)."""

    allowed: bool
    rule: Rule | None
    reason: str


def _merge(grants: Iterable[Rule]) -> list[Rule]:
    """Grants of one principal on the same pattern become one rule with the union of capabilities."""
    union: dict[str, frozenset[Capability]] = {}
    owner: dict[str, str] = {}
    for rule in grants:
        union[rule.pattern] = union.get(rule.pattern, frozenset()) | rule.capabilities
        owner[rule.pattern] = rule.principal_id
    return [Rule(owner[p], p, caps) for p, caps in union.items()]


def _decide(mine: list[Rule], principal_id: str, path: str, cap: Capability) -> Decision:
    segments = check_path(path)
    matching = [r for r in mine if r.covers(segments)]
    if not matching:
        return Decision(False, None, f"default deny: no rule for {principal_id} matches {path}")
    denies = [r for r in matching if r.deny]
    if denies:
        rule = max(denies, key=lambda r: precedence(r.pattern))
        return Decision(False, rule, f"denied by {rule.describe()} (a deny wins over every grant)")
    rule = max(_merge(matching), key=lambda r: precedence(r.pattern))
    if rule.allows(cap):
        return Decision(True, rule, f"allowed by {rule.describe()}, the most specific match for {path}")
    return Decision(
        False, rule, f"denied: {rule.describe()}, the most specific match for {path}, does not include {cap}"
    )


def decide(rules: Iterable[Rule], principal_id: str, path: str, capability: str | Capability) -> Decision:
    """May ``principal_id`` use ``capability`` on ``path`` under ``rules``? See the module docstring."""
    cap = as_capability(capability)
    return _decide([r for r in rules if r.principal_id == principal_id], principal_id, path, cap)


def visible(
    rules: Iterable[Rule],
    principal_id: str,
    paths: Iterable[str],
    capability: str | Capability = Capability.LIST,
) -> set[str]:
    """The subset of ``paths`` on which ``principal_id`` holds ``capability``.

    Computed here, in Python, so that a catalog can then filter with ``IN``. A path that is not
    a valid path (e.g. a hostile catalog row) is never visible.
    """
    cap = as_capability(capability)
    mine = [r for r in rules if r.principal_id == principal_id]
    shown: set[str] = set()
    for path in paths:
        try:
            if _decide(mine, principal_id, path, cap).allowed:
                shown.add(path)
        except UsageError:
            continue
    return shown
