"""What a backup schedule says: its validated definition, built once from what the user typed.

A :class:`ScheduleDefinition` is everything ``backup schedule add`` saves: a name, a
:class:`~vault.backup.schedule.CronSchedule` (expression + IANA zone), a :class:`Target` (URL and its
storage options), include patterns, a :class:`~vault.backup.retention.RetentionPolicy` (its zone is
the schedule's), an optional :class:`ObjectLock`, the catch-up policy and a maximum run time.
:meth:`ScheduleDefinition.build` refuses, with :class:`UsageError` (exit 2) and the reason, anything
a backup could not honour:

- a malformed name, cron expression or zone (the reasons come from :meth:`CronSchedule.parse`);
- a target that is not an absolute local path, ``file://`` or ``s3://bucket/prefix`` URL, or S3
  options (endpoint, profile, region) on a local target;
- an include pattern outside :func:`vault.access.patterns.check_pattern`'s grammar;
- an empty retention policy (it would forget every snapshot);
- Object Lock on a target that is not S3, or a lock period no longer than the schedule's longest gap
  between two runs: each run extends the retention of the objects still referenced, so a gap as
  long as the lock would leave them deletable until the next run (:func:`longest_gap_at_least`).

Durations (``--keep-within 30d``, ``--max-runtime 6h``) are parsed strictly by
:func:`parse_duration`: one or more ``<digits><unit>`` groups, units ``w d h m s`` each at most once
and largest first (``1d12h``, ``90m``); no spaces, signs, fractions or upper case.

The catalog (:mod:`vault.catalog.backups`) stores these values and rebuilds them through the same
constructors when it reads a row back, so a hostile row fails the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from vault.access.patterns import check_pattern
from vault.backup.retention import RetentionPolicy, format_duration
from vault.backup.schedule import CatchUp, CronSchedule, parse_catch_up
from vault.errors import UsageError
from vault.storage.s3_options import parse_s3_url

LockMode = Literal["governance", "compliance"]
LOCK_MODES: tuple[str, ...] = ("governance", "compliance")
MAX_NAME = 64
MAX_INCLUDES = 256
MAX_URL = 1024
MAX_OPTION = 255
MAX_RETAIN_DAYS = 36_500
MAX_DURATION = timedelta(days=36_500)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (
    timedelta(weeks=1),
    timedelta(days=1),
    timedelta(hours=1),
    timedelta(minutes=1),
    timedelta(seconds=1),
)
# How far ahead the lock check looks for the longest gap: four years and a bit, so a job on
# 29 February and every daylight-saving change meet the check at least once.
_GAP_HORIZON = timedelta(days=4 * 366 + 2)


def parse_duration(text: str, what: str) -> timedelta:
    """``30d``, ``6h``, ``90m``, ``1d12h``: a positive duration of at most 100 years."""
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise UsageError(
            f"invalid {what} {text!r}: expected a duration such as 30d, 6h, 90m or 1d12h "
            "(units w, d, h, m, s, largest first)"
        )
    value = sum((int(n) * unit for n, unit in zip(match.groups(), _UNITS, strict=True) if n), timedelta(0))
    if value <= timedelta(0) or value > MAX_DURATION:
        raise UsageError(f"invalid {what} {text!r}: must be more than 0 and at most {MAX_DURATION.days}d")
    return value


def check_schedule_name(name: str) -> str:
    """``name`` if it can name a schedule: letters, digits, ``.``, ``_``, ``-``; at most 64."""
    if len(name) > MAX_NAME or not _NAME_RE.match(name):
        raise UsageError(
            f"invalid schedule name {name!r}: 1..{MAX_NAME} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Target:
    """Where a schedule's backups go: a URL and, for S3, its connection options."""

    url: str
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if len(self.url) > MAX_URL or not self.url.isprintable():
            raise UsageError(f"invalid backup target {self.url!r}: at most {MAX_URL} printable characters")
        if parsed.scheme == "s3":
            parse_s3_url(self.url)
        elif parsed.scheme == "file" or (parsed.scheme == "" and self.url.startswith("/")):
            if parsed.scheme == "file" and (parsed.netloc or not parsed.path.startswith("/")):
                raise UsageError(f"invalid backup target {self.url!r}: expected file:///absolute/path")
            if self.endpoint_url or self.profile or self.region:
                raise UsageError(
                    "--target-endpoint-url, --target-profile and --target-region apply to s3:// targets only"
                )
        else:
            raise UsageError(
                f"invalid backup target {self.url!r}: use an absolute path, file:///path or s3://bucket/prefix"
            )
        for option, value in (("endpoint URL", self.endpoint_url), ("profile", self.profile)):
            if value is not None and (not value or len(value) > MAX_OPTION or not value.isprintable()):
                raise UsageError(f"invalid target {option} {value!r}")
        if self.region is not None and not re.match(r"^[a-z0-9-]{1,64}$", self.region):
            raise UsageError(f"invalid target region {self.region!r}")
        if self.endpoint_url is not None and urlparse(self.endpoint_url).scheme not in ("http", "https"):
            raise UsageError(f"invalid target endpoint URL {self.endpoint_url!r}: expected http(s)://host")

    @property
    def is_s3(self) -> bool:
        """True for an ``s3://`` target."""
        return self.url.startswith("s3://")


@dataclass(frozen=True)
class ObjectLock:
    """S3 Object Lock on what a schedule writes: the mode and how long each object stays locked."""

    mode: LockMode
    retain_days: int

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise UsageError(f"--object-lock must be one of {', '.join(LOCK_MODES)}, not {self.mode!r}")
        if isinstance(self.retain_days, bool) or not 1 <= self.retain_days <= MAX_RETAIN_DAYS:
            raise UsageError(f"--retain-days must be 1..{MAX_RETAIN_DAYS}, not {self.retain_days!r}")

    @property
    def period(self) -> timedelta:
        """How long a write (or an extension) keeps an object locked."""
        return timedelta(days=self.retain_days)


def parse_lock_mode(value: str) -> LockMode:
    """``governance`` or ``compliance``."""
    if value == "governance":
        return "governance"
    if value == "compliance":
        return "compliance"
    raise UsageError(f"--object-lock must be one of {', '.join(LOCK_MODES)}, not {value!r}")


@dataclass(frozen=True)
class ScheduleDefinition:
    """A validated backup schedule, as the user defined it (no run state)."""

    name: str
    cron: CronSchedule
    target: Target
    include: tuple[str, ...]
    retention: RetentionPolicy
    object_lock: ObjectLock | None = None
    catch_up: CatchUp = "once"
    max_runtime: timedelta | None = None

    def __post_init__(self) -> None:
        check_schedule_name(self.name)
        if len(self.include) > MAX_INCLUDES:
            raise UsageError(f"at most {MAX_INCLUDES} --include patterns")
        for pattern in self.include:
            check_pattern(pattern)
        if len(set(self.include)) != len(self.include):
            raise UsageError("an --include pattern is given twice")
        if self.retention.is_empty():
            raise UsageError(
                "refusing an empty retention policy: it would forget every snapshot; "
                "set at least one --keep-*"
            )
        if self.retention.tz.key != self.cron.timezone:
            raise UsageError("the retention policy must use the schedule's time zone")
        if self.catch_up not in ("skip", "once"):
            raise UsageError(f"--catch-up must be skip or once, not {self.catch_up!r}")
        if self.max_runtime is not None and not timedelta(0) < self.max_runtime <= MAX_DURATION:
            raise UsageError("--max-runtime must be more than 0 and at most 36500d")

    @property
    def is_all(self) -> bool:
        """True when the schedule backs up every namespace (no --include)."""
        return not self.include

    def check_lock_cadence(self, now: datetime) -> None:
        """Refuse Object Lock on a non-S3 target, or a lock period not longer than the gap between runs."""
        if self.object_lock is None:
            return
        if not self.target.is_s3:
            raise UsageError("--object-lock needs an s3:// target (a bucket with Object Lock enabled)")
        gap = longest_gap_at_least(self.cron, self.object_lock.period, now)
        if gap is not None:
            raise UsageError(
                f"--retain-days {self.object_lock.retain_days} is too short for {self.cron.expression!r} "
                f"in {self.cron.timezone}: runs can be {format_duration(gap)} apart, and each run extends "
                "the locks, so the lock period must be longer than the longest gap between runs"
            )


def build_definition(
    *,
    name: str,
    cron: str,
    tz: str,
    target: Target,
    include: tuple[str, ...] | list[str],
    keep: dict[str, int],
    keep_within: timedelta | None,
    object_lock: ObjectLock | None,
    catch_up: CatchUp,
    max_runtime: timedelta | None,
) -> ScheduleDefinition:
    """A :class:`ScheduleDefinition` from plain values (``keep`` maps ``last``/``daily``/... to counts)."""
    schedule = CronSchedule.parse(cron, tz)
    unknown = set(keep) - {"last", "hourly", "daily", "weekly", "monthly", "yearly"}
    if unknown:
        raise UsageError(f"unknown retention rules {sorted(unknown)}")
    for rule, count in keep.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1_000_000:
            raise UsageError(f"--keep-{rule} must be 0..1000000, not {count!r}")
    policy = RetentionPolicy(
        keep_last=keep.get("last", 0),
        keep_hourly=keep.get("hourly", 0),
        keep_daily=keep.get("daily", 0),
        keep_weekly=keep.get("weekly", 0),
        keep_monthly=keep.get("monthly", 0),
        keep_yearly=keep.get("yearly", 0),
        keep_within=keep_within,
        tz=ZoneInfo(schedule.timezone),
    )
    return ScheduleDefinition(
        name=name,
        cron=schedule,
        target=target,
        include=tuple(include),
        retention=policy,
        object_lock=object_lock,
        catch_up=catch_up,
        max_runtime=max_runtime,
    )


def longest_gap_at_least(cron: CronSchedule, limit: timedelta, start: datetime) -> timedelta | None:
    """A gap of at least ``limit`` between two consecutive runs within four years of ``start``, or None.

    Two slots that both lie within ``limit`` of a slot ``s`` are less than ``limit`` apart, so the
    walk jumps from ``s`` to the newest slot before ``s + limit`` and only checks the gap after it:
    a few steps per ``limit`` instead of one per slot of a ``*/5`` expression.
    """
    slot, end = cron.next_after(start), start + _GAP_HORIZON
    while slot < end:
        following = cron.next_after(slot)
        if following - slot >= limit:
            return following - slot
        furthest = cron.latest_at_or_before(slot + limit - timedelta(seconds=1))
        slot = furthest if furthest is not None and furthest > slot else following
    return None


def parse_definition(
    *,
    name: str,
    cron: str,
    tz: str,
    target: Target,
    include: Sequence[str] = (),
    keep: dict[str, int],
    keep_within: str | None = None,
    object_lock: str | None = None,
    retain_days: int | None = None,
    catch_up: str = "once",
    max_runtime: str | None = None,
) -> ScheduleDefinition:
    """A definition from what a user typed: durations as ``30d``, the lock mode and days as given."""
    if (object_lock is None) != (retain_days is None):
        raise UsageError("--object-lock and --retain-days go together: give both or neither")
    lock = (
        None
        if object_lock is None or retain_days is None
        else ObjectLock(parse_lock_mode(object_lock), retain_days)
    )
    return build_definition(
        name=check_schedule_name(name),
        cron=cron,
        tz=tz,
        target=target,
        include=tuple(include),
        keep=keep,
        keep_within=None if keep_within is None else parse_duration(keep_within, "--keep-within"),
        object_lock=lock,
        catch_up=parse_catch_up(catch_up),
        max_runtime=None if max_runtime is None else parse_duration(max_runtime, "--max-runtime"),
    )
