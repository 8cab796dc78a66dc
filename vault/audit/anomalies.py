"""Anomalies in the audit log: each principal compared with its own recent past.

**Periods.** ``find_anomalies(events, now, window)`` looks at events with
``now - window <= at <= now``. The last ``recent`` of it (default one day) is what is judged;
the rest, ``[now - window, now - recent)``, is the *baseline*. Days are UTC calendar days and hours
UTC hours of the day; times are given, never read from a clock.

**Baseline, per principal**, over the baseline days on which it did anything (*active days*):
bytes pulled (``details["bytes"]`` of successful pulls), versions pulled (successful pulls),
distinct artifacts pulled, failed unlocks and failed verifications, each per active day; the
set of UTC hours in which it acted; the namespaces it touched. Using active days only keeps a
principal that works twice a week from looking idle.

**Flags**, each with a one-line explanation:

* ``volume``: in the recent period a principal pulled more than ``k`` times the median of its
  active days, scaled to the length of ``recent``, for bytes, versions or distinct artifacts.
  ``k`` defaults to 5: a day five times the usual one is rare in normal work and cheap to
  explain, while bulk exfiltration is usually orders of magnitude above it. Medians are floored
  (1 MiB of bytes, one version, one artifact) so that a principal that rarely pulls is not
  flagged for its first small pull. Needs ``min_baseline_days`` active days.
* ``new-namespace``: a namespace (the artifact name without its last segment) the principal acted
  on in the recent period and never in the baseline. Needs a baseline (any baseline activity).
* ``unusual-hours``: recent activity in an hour of the day more than ``hour_tolerance`` hours
  (circularly) from every hour in which the principal acted in the baseline. Needs
  ``min_baseline_days`` active days.
* ``failure-burst``: ``burst_failures`` or more failed unlocks (or failed verifications) by one
  principal within any ``burst_window`` in the recent period. Needs no baseline.
* ``expired-principal`` / ``removed-principal``: any event in the window by an identity whose
  principal had expired or been removed at the time (:mod:`vault.audit.attribution`: rows are
  matched to the access policy's principals, passed in by the caller, by the identity
  fingerprint they record). Needs no baseline.
* ``audit-chain``: the chain verification report handed in is not ok.

A principal without enough baseline gets only the flags that need none; ``audit anomalies`` can
say so, but it is not an anomaly by itself.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from vault.audit.attribution import PolicyPrincipal, Principals, Standing, identity_of
from vault.audit.chain import VerifyReport
from vault.audit.events import ARTIFACT_ACTIONS, DETAIL_BYTES, Action, Outcome, artifact_of, namespace_of
from vault.errors import UsageError

MIB = 1024 * 1024
_DAY = timedelta(days=1)
_FAILURE_ACTIONS: dict[str, str] = {Action.UNLOCK: "unlocks", Action.VERIFY: "verifications"}


class AuditEvent(Protocol):
    """What anomaly detection reads from a row (an :class:`~vault.audit.chain.AuditRow` is one)."""

    @property
    def at(self) -> datetime:
        """When it happened (time-zone aware)."""

    @property
    def principal(self) -> str:
        """The acting principal's id."""

    @property
    def action(self) -> str:
        """An :class:`~vault.audit.events.Action` value."""

    @property
    def target(self) -> str:
        """What it acted on."""

    @property
    def outcome(self) -> str:
        """An :class:`~vault.audit.events.Outcome` value."""

    @property
    def details(self) -> Mapping[str, Any]:
        """JSON details, e.g. ``{"bytes": 123}``."""


class Kind(StrEnum):
    """The kinds of anomaly."""

    VOLUME = "volume"
    NEW_NAMESPACE = "new-namespace"
    UNUSUAL_HOURS = "unusual-hours"
    FAILURE_BURST = "failure-burst"
    EXPIRED_PRINCIPAL = "expired-principal"
    REMOVED_PRINCIPAL = "removed-principal"
    AUDIT_CHAIN = "audit-chain"


@dataclass(frozen=True)
class Anomaly:
    """One finding; ``principal`` is None for findings about the log itself."""

    principal: str | None
    kind: Kind
    explanation: str


@dataclass(frozen=True)
class Thresholds:
    """The knobs besides ``k``; the defaults are the documented ones."""

    recent: timedelta = _DAY
    min_baseline_days: int = 3
    hour_tolerance: int = 1
    burst_failures: int = 5
    burst_window: timedelta = timedelta(hours=1)
    min_bytes: int = MIB


@dataclass
class _Day:
    bytes: int = 0
    pulls: int = 0
    artifacts: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by action


@dataclass
class _Profile:
    days: dict[date, _Day] = field(default_factory=lambda: defaultdict(_Day))
    hours: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    namespaces: dict[str, datetime] = field(default_factory=dict)  # first time seen
    events: int = 0


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"audit time {at.isoformat()} has no time zone")
    return at.astimezone(UTC)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' * (unit == 'day' and n != 1)}"
    return f"{seconds} s"


def _when(at: datetime) -> str:
    return f"{_utc(at):%Y-%m-%d %H:%M} UTC"


def _pulled_bytes(event: AuditEvent) -> int:
    value = event.details.get(DETAIL_BYTES, 0) if isinstance(event.details, Mapping) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _profile(events: Iterable[AuditEvent]) -> dict[str, _Profile]:
    profiles: dict[str, _Profile] = defaultdict(_Profile)
    for event in events:
        at = _utc(event.at)
        profile = profiles[event.principal]
        profile.events += 1
        profile.hours[at.hour] += 1
        day = profile.days[at.date()]
        if event.action in ARTIFACT_ACTIONS:
            profile.namespaces.setdefault(namespace_of(event.target), at)
        if event.action == Action.PULL and event.outcome == Outcome.OK:
            day.bytes += _pulled_bytes(event)
            day.pulls += 1
            day.artifacts.add(artifact_of(event.target))
        if event.outcome == Outcome.FAILED and event.action in _FAILURE_ACTIONS:
            day.failures[event.action] += 1
    return profiles


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _volume(who: str, base: _Profile, now: _Profile, k: float, t: Thresholds) -> list[Anomaly]:
    if len(base.days) < t.min_baseline_days:
        return []
    days = list(base.days.values())
    recent_artifacts = set().union(*(d.artifacts for d in now.days.values()))
    metrics: list[tuple[str, list[int], int, Callable[[float], str], int]] = [
        ("pulled", [d.bytes for d in days], sum(d.bytes for d in now.days.values()), _size, t.min_bytes),
        ("versions pulled", [d.pulls for d in days], sum(d.pulls for d in now.days.values()), _count, 1),
        ("distinct artifacts pulled", [len(d.artifacts) for d in days], len(recent_artifacts), _count, 1),
    ]
    found = []
    for label, history, recent, show, floor in metrics:
        median = statistics.median(history)
        if recent > k * max(median, floor) * (t.recent / _DAY):
            explanation = (
                f"{label} {show(recent)} in the last {_duration(t.recent)}, over {k:g}× its median of "
                f"{show(median)} per active day ({len(days)} days)"
            )
            found.append(Anomaly(who, Kind.VOLUME, explanation))
    return found


def _count(n: float) -> str:
    return f"{n:g}"


def _hour_ranges(hours: Iterable[int]) -> str:
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour == runs[-1][1] + 1:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    return ", ".join(f"{a:02d}" if a == b else f"{a:02d}-{b:02d}" for a, b in runs)


def _hours(who: str, base: _Profile, now: _Profile, t: Thresholds) -> list[Anomaly]:
    if len(base.days) < t.min_baseline_days:
        return []

    def usual(hour: int) -> bool:
        return any(min((hour - h) % 24, (h - hour) % 24) <= t.hour_tolerance for h in base.hours)

    odd = {h: n for h, n in now.hours.items() if not usual(h)}
    if not odd:
        return []
    count = sum(odd.values())
    return [
        Anomaly(
            who,
            Kind.UNUSUAL_HOURS,
            f"{count} event{'s' * (count != 1)} at {_hour_ranges(odd)} h UTC, outside its usual hours "
            f"({_hour_ranges(base.hours)} h UTC, ±{t.hour_tolerance} h)",
        )
    ]


def _namespaces(who: str, base: _Profile, now: _Profile) -> list[Anomaly]:
    if not base.events:
        return []
    fresh = sorted(ns for ns in now.namespaces if ns not in base.namespaces)
    return [
        Anomaly(
            who,
            Kind.NEW_NAMESPACE,
            f"first access to namespace {ns} (at {_when(now.namespaces[ns])})",
        )
        for ns in fresh
    ]


def _bursts(
    recent: Sequence[AuditEvent], baseline: Mapping[str, _Profile], k: float, t: Thresholds
) -> list[Anomaly]:
    failures: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for event in recent:
        if event.outcome == Outcome.FAILED and event.action in _FAILURE_ACTIONS:
            failures[(event.principal, event.action)].append(_utc(event.at))
    found = []
    for (who, action), times in sorted(failures.items()):
        times.sort()
        start, best = 0, (0, 0)
        for end in range(len(times)):
            while times[end] - times[start] > t.burst_window:
                start += 1
            if end - start + 1 > best[1] - best[0]:
                best = (start, end + 1)
        count = best[1] - best[0]
        # A principal that fails often anyway (a flaky job) must exceed k× its usual daily count too.
        days = baseline[who].days.values() if who in baseline else ()
        usual = statistics.median(d.failures[action] for d in days) if days else 0
        limit = max(t.burst_failures, k * usual)
        if count >= limit:
            span = _duration(times[best[1] - 1] - times[best[0]])
            found.append(
                Anomaly(
                    who,
                    Kind.FAILURE_BURST,
                    f"{count} failed {_FAILURE_ACTIONS[action]} within {span} "
                    f"from {_when(times[best[0]])} (flagged at {limit:g} within {_duration(t.burst_window)}; "
                    f"median {usual:g} per active day)",
                )
            )
    return found


def _inactive(events: Sequence[AuditEvent], principals: Principals) -> list[Anomaly]:
    late: dict[tuple[str, Standing], list[AuditEvent]] = defaultdict(list)
    for event in events:
        fingerprint = identity_of(event.details)
        standing = principals.standing(fingerprint, _utc(event.at)) if fingerprint else None
        if standing is not None:
            late[(event.principal, standing)].append(event)
    found = []
    for (who, standing), acts in sorted(late.items(), key=lambda item: (item[0][0], item[0][1].since)):
        kind = Kind.EXPIRED_PRINCIPAL if standing.kind == "expired" else Kind.REMOVED_PRINCIPAL
        word = "expired" if standing.kind == "expired" else "was removed"
        explanation = (
            f"{len(acts)} action{'s' * (len(acts) != 1)} by principal {standing.name} "
            f"({standing.principal_id[:8]}) after it {word} at {_when(standing.since)}, "
            f"first {acts[0].action} {acts[0].target} at {_when(acts[0].at)}"
        )
        found.append(Anomaly(who, kind, explanation))
    return found


def find_anomalies(
    events: Iterable[AuditEvent],
    now: datetime,
    window: timedelta,
    k: float = 5.0,
    *,
    principals: Iterable[PolicyPrincipal] = (),
    chain: VerifyReport | None = None,
    thresholds: Thresholds | None = None,
) -> list[Anomaly]:
    """Every anomaly in ``events`` as of ``now`` (see the module docstring), ordered by principal."""
    t = thresholds or Thresholds()
    if k <= 0:
        raise UsageError(f"k must be positive, not {k}")
    if not t.recent < window:
        raise UsageError(f"the window ({window}) must be longer than the recent period ({t.recent})")
    start, split = _utc(now) - window, _utc(now) - t.recent
    inside = sorted((e for e in events if start <= _utc(e.at) <= _utc(now)), key=lambda e: _utc(e.at))
    baseline = _profile(e for e in inside if _utc(e.at) < split)
    recent_events = [e for e in inside if _utc(e.at) >= split]
    recent = _profile(recent_events)

    found: list[Anomaly] = []
    for who in sorted(recent):
        base = baseline.get(who, _Profile())
        found += _volume(who, base, recent[who], k, t)
        found += _namespaces(who, base, recent[who])
        found += _hours(who, base, recent[who], t)
    found += _bursts(recent_events, baseline, k, t)
    found += _inactive(inside, Principals(principals))
    found.sort(key=lambda a: (a.principal or "", list(Kind).index(a.kind)))
    if chain is not None and not chain.ok:
        where = f" (first bad row {chain.first_bad_seq})" if chain.first_bad_seq is not None else ""
        found.insert(0, Anomaly(None, Kind.AUDIT_CHAIN, f"audit chain check failed{where}: {chain.reason}"))
    return found
