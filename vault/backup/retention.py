"""Retention: which backup snapshots to keep, with restic ``forget`` semantics, as a pure function.

:func:`apply_policy` takes the snapshots of one schedule, a :class:`RetentionPolicy` and the
current time, and returns one :class:`Decision` per snapshot, newest first. Nothing here reads a
clock, the catalog or a target: ``forget`` and ``forget --dry-run`` call it and act on (or print)
the decisions, and the tables in ``tests/backup/test_retention.py`` pin its behaviour.

The rules follow restic's ``internal/data/snapshot_policy.go``:

- Snapshots are walked newest first (a stable sort, so equal times keep their input order).
- ``keep_last n`` keeps the ``n`` newest snapshots.
- ``keep_hourly/daily/weekly/monthly/yearly n`` keep the newest snapshot of each of the ``n``
  newest *buckets that hold a snapshot*: an empty day (or week, ...) is not counted. A snapshot
  opens a bucket when its bucket differs from the one the previous kept snapshot of that rule
  opened. Buckets are calendar periods in the policy's time zone: hours and days on the wall
  clock (a daylight-saving day is 23 or 25 hours long; on the fall-back day the repeated hour
  02:00-02:59 is one hourly bucket, as in restic), ISO weeks (Monday to Sunday, so 2020-12-31
  and 2021-01-03 are both in 2020-W53), calendar months and years.
- When a bucket rule still has count left at the oldest snapshot, that snapshot is kept too, as
  ``"oldest <rule> snapshot"``; this keeps the longest history the counts allow.
- ``keep_within d`` keeps every snapshot strictly newer than ``newest - d``, where ``newest`` is
  the newest evaluated snapshot, not ``now``: a vault whose backups stopped months ago does not
  lose its last ones to ``keep_within``.
- A count of :data:`UNLIMITED` (-1) keeps every bucket ("unlimited" in restic).
- A snapshot is kept when any rule keeps it; its :attr:`Decision.reasons` name every rule that
  does, in restic's wording, for ``forget --dry-run``.

Where mlvault adds to restic (restic has no failed, locked or policy-zone snapshots):

- An empty policy (every count 0 and no ``keep_within``) is refused with :class:`UsageError`
  rather than read as "delete everything".
- Future-dated snapshots (``time > now``) are ignored by every rule (they neither take a bucket
  nor move the ``keep_within`` reference) and are never deleted: reason ``"future"``. A clock
  that jumped forward once cannot push good snapshots out.
- Unsuccessful snapshots are ignored by every rule too, so a failed run never takes a day's
  bucket from that day's good snapshot, and are deleted unless a guard keeps them.
- Guards, applied after the rules: a locked snapshot is always kept (``"locked"``), and the
  newest successful snapshot at or before ``now`` is always kept (``"newest"``); when there is no
  successful one, the newest snapshot at or before ``now`` is kept instead, so a policy never
  empties a target.

For successful, unlocked, past snapshots the result is exactly restic's: that is what the
restic-derived tables test. Restic's ``--keep-within`` takes calendar units (``1m`` is a month);
here it is a :class:`~datetime.timedelta`, so months and years must be spelled in days.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from vault.errors import UsageError

UNLIMITED = -1
"""A rule count meaning "every bucket" (restic's ``unlimited``)."""

REASON_LOCKED = "locked"
REASON_NEWEST = "newest"
REASON_FUTURE = "future"

_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class SnapshotInfo:
    """What retention needs to know of one snapshot."""

    id: str
    time: datetime
    locked: bool = False
    successful: bool = True

    def __post_init__(self) -> None:
        _require_aware(self.time, f"snapshot {self.id} time")


@dataclass(frozen=True)
class RetentionPolicy:
    """How many snapshots of each kind to keep; counts are >= 0 or :data:`UNLIMITED`."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: timedelta | None = None
    tz: ZoneInfo = _UTC

    def __post_init__(self) -> None:
        for name, count in self._counts():
            if count < UNLIMITED:
                raise UsageError(f"--keep-{name} must be 0 or more (or -1 for unlimited), not {count}")
        if self.keep_within is not None and self.keep_within < timedelta(0):
            raise UsageError("--keep-within must not be negative")

    def _counts(self) -> tuple[tuple[str, int], ...]:
        return (
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        )

    def is_empty(self) -> bool:
        """True when no rule keeps anything (restic refuses to apply such a policy)."""
        no_within = self.keep_within is None or self.keep_within == timedelta(0)
        return no_within and all(count == 0 for _, count in self._counts())

    def describe(self) -> str:
        """One line in restic's wording, e.g. ``keep 7 daily, 4 weekly snapshots``."""
        parts = [
            f"all {name}" if count == UNLIMITED else f"{count} {'latest' if name == 'last' else name}"
            for name, count in self._counts()
            if count != 0
        ]
        text = f"{', '.join(parts)} snapshots" if parts else ""
        if self.keep_within:
            within = f"all snapshots within {format_duration(self.keep_within)} of the newest"
            text = f"{text} and {within}" if text else within
        return f"keep {text} ({self.tz.key})" if text else "remove"


@dataclass(frozen=True)
class Decision:
    """Whether one snapshot stays, and every rule or guard that keeps it (empty when removed)."""

    snapshot: SnapshotInfo
    keep: bool
    reasons: tuple[str, ...]


_BucketKey = Callable[[datetime, int], object]


def _hour(t: datetime, _nr: int) -> object:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime, _nr: int) -> object:
    return (t.year, t.month, t.day)


def _iso_week(t: datetime, _nr: int) -> object:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime, _nr: int) -> object:
    return (t.year, t.month)


def _year(t: datetime, _nr: int) -> object:
    return t.year


def _position(_t: datetime, nr: int) -> object:
    return nr


class _BucketRule:
    """The running state of one count rule while the snapshots are walked."""

    def __init__(self, count: int, key: _BucketKey, reason: str) -> None:
        self.remaining = count
        self.key = key
        self.reason = reason
        self.last: object = None

    def visit(self, local_time: datetime, nr: int, is_oldest: bool) -> str | None:
        """The reason to keep this snapshot under this rule, or None."""
        if self.remaining == 0:
            return None
        value = self.key(local_time, nr)
        if value == self.last and not is_oldest:
            return None
        reason = f"oldest {self.reason}" if value == self.last else self.reason
        self.last = value
        if self.remaining > 0:
            self.remaining -= 1
        return reason


def apply_policy(snapshots: Sequence[SnapshotInfo], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """Decide, for every snapshot, whether it stays; newest first. Refuses an empty policy."""
    _require_aware(now, "now")
    if policy.is_empty():
        raise UsageError(
            "refusing an empty retention policy: it would forget every snapshot; "
            "set at least one --keep-* option"
        )
    ordered = sorted(snapshots, key=lambda s: s.time, reverse=True)
    evaluated = [i for i, s in enumerate(ordered) if s.successful and s.time <= now]
    reasons: list[list[str]] = [[] for _ in ordered]

    rules = [
        _BucketRule(policy.keep_last, _position, "last snapshot"),
        _BucketRule(policy.keep_hourly, _hour, "hourly snapshot"),
        _BucketRule(policy.keep_daily, _day, "daily snapshot"),
        _BucketRule(policy.keep_weekly, _iso_week, "weekly snapshot"),
        _BucketRule(policy.keep_monthly, _month, "monthly snapshot"),
        _BucketRule(policy.keep_yearly, _year, "yearly snapshot"),
    ]
    within_since, within_reason = None, ""
    if evaluated and policy.keep_within:
        within_since = ordered[evaluated[0]].time - policy.keep_within
        within_reason = f"within {format_duration(policy.keep_within)}"
    for nr, index in enumerate(evaluated):
        snapshot = ordered[index]
        if within_since is not None and snapshot.time > within_since:
            reasons[index].append(within_reason)
        local_time = snapshot.time.astimezone(policy.tz)
        is_oldest = nr == len(evaluated) - 1
        for rule in rules:
            reason = rule.visit(local_time, nr, is_oldest)
            if reason is not None:
                reasons[index].append(reason)

    past = [i for i, s in enumerate(ordered) if s.time <= now]
    newest = evaluated[0] if evaluated else (past[0] if past else None)
    for index, snapshot in enumerate(ordered):
        if snapshot.locked:
            reasons[index].append(REASON_LOCKED)
        if index == newest:
            reasons[index].append(REASON_NEWEST)
        if snapshot.time > now:
            reasons[index].append(REASON_FUTURE)
    return [
        Decision(snapshot=s, keep=bool(reasons[i]), reasons=tuple(reasons[i])) for i, s in enumerate(ordered)
    ]


def format_duration(value: timedelta) -> str:
    """``30d``, ``13d23h``, ``1h30m``: the compact form restic prints for durations."""
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "".join(
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n
    )
    return text or "0s"


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
