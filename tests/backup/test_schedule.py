"""vault.backup.schedule: validation, Debian-cron daylight-saving behaviour and catch-up, with time
moved by the test (no clock, no sleeping)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vault.backup.schedule import DEFAULT_GRACE, CronSchedule, parse_catch_up
from vault.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=BERLIN, fold=fold).astimezone(UTC)


def fire_times(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while (t := schedule.next_after(t)) < end:
        out.append(t)
    return out


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("", "expected 5 fields"),
        ("* * * *", "got 4"),
        ("* * * * * * *", "got 7"),
        ("60 * * * *", "bad minute field"),
        ("*/0 * * * *", "bad minute field"),
        ("0 24 * * *", "bad hour field"),
        ("0 0 32 * *", "bad day-of-month field"),
        ("0 0 30 2 *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field"),
        ("0 0 * * 8", "bad day-of-week field"),
        ("61 0 0 * * *", "bad second field"),
        ("every day", "got 2"),
        ("@reboot", "not at boot"),
        ("@fortnightly", "got 1"),
    ],
)
def test_invalid_expressions_are_refused_with_the_reason(expr: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        CronSchedule.parse(expr, "UTC")


@pytest.mark.parametrize(
    "tz", ["", "Europe", "Mars/Olympus", "europe/berlin", "../etc/passwd", " UTC", "localtime"]
)
def test_invalid_zones_are_refused(tz: str) -> None:
    with pytest.raises(UsageError, match="unknown time zone"):
        CronSchedule.parse("30 2 * * *", tz)


def test_valid_schedules_and_nicknames() -> None:
    s = CronSchedule.parse("  30   2 * * *", "Europe/Berlin")
    assert (s.expression, s.timezone, s.is_six_field) == ("30 2 * * *", "Europe/Berlin", False)
    assert s == CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    daily = CronSchedule.parse("@daily", "UTC")
    assert daily.next_after(datetime(2026, 5, 1, 12, tzinfo=UTC)) == datetime(2026, 5, 2, tzinfo=UTC)
    assert CronSchedule.parse("0 0 29 2 *", "UTC").next_after(datetime(2026, 1, 1, tzinfo=UTC)).year == 2028


def test_next_after_is_strict_and_in_utc() -> None:
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    slot = berlin(2026, 6, 1, 2, 30)
    assert s.next_after(slot - timedelta(microseconds=1)) == slot
    assert s.next_after(slot) == berlin(2026, 6, 2, 2, 30)
    assert s.next_after(slot).tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        s.next_after(datetime(2026, 1, 1))  # naive


def test_0230_on_spring_forward_runs_once_at_0300() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    runs = fire_times(s, berlin(2026, 3, 28, 12), berlin(2026, 3, 30, 12))
    assert runs == [berlin(2026, 3, 29, 3, 0), berlin(2026, 3, 30, 2, 30)]


def test_0230_on_fall_back_runs_once_at_the_first_0230() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    runs = fire_times(s, berlin(2026, 10, 24, 12), berlin(2026, 10, 26, 12))
    assert runs == [berlin(2026, 10, 25, 2, 30, fold=0), berlin(2026, 10, 26, 2, 30)]
    assert runs[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # Asked during the repeated hour, after the run, the next slot is tomorrow's.
    assert s.next_after(berlin(2026, 10, 25, 2, 15, fold=1)) == berlin(2026, 10, 26, 2, 30)


def test_a_whole_year_of_a_daily_job_has_one_run_per_local_day() -> None:
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    runs = fire_times(s, berlin(2026, 1, 1), berlin(2027, 1, 1))
    assert len(runs) == 365
    assert len({r.astimezone(BERLIN).date() for r in runs}) == 365


def test_interval_jobs_follow_real_time_through_fall_back() -> None:
    s = CronSchedule.parse("*/30 * * * *", "Europe/Berlin")
    runs = fire_times(s, berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 25, 4, 0))
    # 00:00 to 04:00 on the wall clock is 5 real hours on this day: 9 half-hour slots strictly
    # between, evenly spaced (the repeated 02:00 and 02:30 both fire).
    assert len(runs) == 9
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(minutes=30)}


def test_six_field_expressions_have_seconds_and_no_debian_adjustment() -> None:
    s = CronSchedule.parse("15 30 2 * * *", "Europe/Berlin")
    assert s.is_six_field
    assert s.next_after(berlin(2026, 6, 1)) == berlin(2026, 6, 1, 2, 30, 15)
    spring = fire_times(s, berlin(2026, 3, 28, 12), berlin(2026, 3, 30, 12))
    assert spring == [berlin(2026, 3, 30, 2, 30, 15)]  # skipped on the 29th
    autumn = fire_times(s, berlin(2026, 10, 24, 12), berlin(2026, 10, 26, 0))
    assert autumn == [berlin(2026, 10, 25, 2, 30, 15, fold=0), berlin(2026, 10, 25, 2, 30, 15, fold=1)]


def test_latest_at_or_before() -> None:
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    slot = berlin(2026, 6, 1, 2, 30)
    assert s.latest_at_or_before(slot) == slot
    assert s.latest_at_or_before(slot + timedelta(microseconds=500)) == slot
    assert s.latest_at_or_before(slot - timedelta(seconds=1)) == berlin(2026, 5, 31, 2, 30)
    # During the repeated hour the 02:30 run that already happened today is the latest.
    assert s.latest_at_or_before(berlin(2026, 10, 25, 2, 15, fold=1)) == berlin(2026, 10, 25, 2, 30, fold=0)
    assert s.latest_at_or_before(berlin(2026, 3, 29, 3, 10)) == berlin(2026, 3, 29, 3, 0)


NIGHTLY = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
LAST = berlin(2026, 6, 1, 2, 30)


def test_due_runs_on_time() -> None:
    assert NIGHTLY.due_runs(LAST, berlin(2026, 6, 2, 2, 29)) == []
    for policy in ("once", "skip"):
        assert NIGHTLY.due_runs(LAST, berlin(2026, 6, 2, 2, 30), parse_catch_up(policy)) == [
            berlin(2026, 6, 2, 2, 30)
        ]
        assert NIGHTLY.due_runs(LAST, berlin(2026, 6, 2, 2, 34), parse_catch_up(policy)) == [
            berlin(2026, 6, 2, 2, 30)
        ]
    # Already ran for today's slot: nothing more until tomorrow.
    assert NIGHTLY.due_runs(berlin(2026, 6, 2, 2, 30), berlin(2026, 6, 2, 23, 0)) == []


def test_catch_up_once_after_a_three_day_gap_runs_one_backup() -> None:
    now = berlin(2026, 6, 4, 9, 0)  # slots of the 2nd, 3rd and 4th were missed
    assert NIGHTLY.due_runs(LAST, now, "once") == [berlin(2026, 6, 4, 2, 30)]
    # Recording that slot makes the schedule wait for the next one.
    assert NIGHTLY.due_runs(berlin(2026, 6, 4, 2, 30), now, "once") == []
    assert NIGHTLY.due_runs(berlin(2026, 6, 4, 2, 30), berlin(2026, 6, 5, 2, 31), "once") == [
        berlin(2026, 6, 5, 2, 30)
    ]


def test_catch_up_skip_after_a_three_day_gap_runs_nothing() -> None:
    now = berlin(2026, 6, 4, 9, 0)
    assert NIGHTLY.due_runs(LAST, now, "skip") == []
    assert NIGHTLY.latest_at_or_before(now) == berlin(2026, 6, 4, 2, 30)  # what the caller records
    # The grace period decides what counts as late rather than missed.
    assert NIGHTLY.due_runs(LAST, berlin(2026, 6, 4, 2, 30) + DEFAULT_GRACE, "skip") == [
        berlin(2026, 6, 4, 2, 30)
    ]
    assert NIGHTLY.due_runs(LAST, now, "skip", grace=timedelta(hours=7)) == [berlin(2026, 6, 4, 2, 30)]


def test_catch_up_across_spring_forward() -> None:
    last = berlin(2026, 3, 28, 2, 30)
    assert NIGHTLY.due_runs(last, berlin(2026, 3, 29, 3, 5), "skip") == [berlin(2026, 3, 29, 3, 0)]


def test_catch_up_of_a_frequent_job_after_a_long_gap_is_cheap() -> None:
    every_minute = CronSchedule.parse("* * * * *", "UTC")
    now = datetime(2027, 6, 1, 12, 0, 30, tzinfo=UTC)
    last = datetime(2026, 1, 1, tzinfo=UTC)
    assert every_minute.due_runs(last, now, "once") == [datetime(2027, 6, 1, 12, 0, tzinfo=UTC)]


def test_bad_catch_up_and_grace_are_refused() -> None:
    with pytest.raises(UsageError, match="--catch-up"):
        parse_catch_up("all")
    with pytest.raises(UsageError, match="catch-up"):
        NIGHTLY.due_runs(LAST, LAST, "all")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="grace"):
        NIGHTLY.due_runs(LAST, LAST, "once", grace=timedelta(minutes=-1))
