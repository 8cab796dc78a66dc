"""Golden tables for vault.backup.retention: restic's documented examples plus the edges restic
leaves to the caller (daylight-saving days, ISO week 53, sparse and future-dated histories, locked
and failed snapshots, empty policies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vault.backup.retention import (
    UNLIMITED,
    Decision,
    RetentionPolicy,
    SnapshotInfo,
    apply_policy,
    format_duration,
)
from vault.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def snaps(*rows: tuple[str, str], tz: ZoneInfo | None = None) -> list[SnapshotInfo]:
    """(id, ISO time) rows; naive times are read in ``tz`` (UTC when not given)."""
    out = []
    for ident, text in rows:
        t = datetime.fromisoformat(text)
        if t.tzinfo is None:
            t = t.replace(tzinfo=tz or UTC)
        out.append(SnapshotInfo(ident, t))
    return out


def kept(decisions: list[Decision]) -> dict[str, tuple[str, ...]]:
    return {d.snapshot.id: d.reasons for d in decisions if d.keep}


# restic doc/060_forget.rst: backups every weekday for two weeks, an extra one on Fridays,
# Wednesday 2025-04-30 missed; `forget --keep-daily 5` keeps one per day for the 5 newest days
# that hold a snapshot, so the previous Friday's late snapshot survives.
RESTIC_DOC_HISTORY = snaps(
    ("60e5c031", "2025-04-21 11:00:00"),
    ("1dccffe9", "2025-04-22 11:00:00"),
    ("90a5c949", "2025-04-23 11:00:00"),
    ("79580708", "2025-04-24 11:00:00"),
    ("8a603ddf", "2025-04-25 11:00:00"),
    ("ae33bf10", "2025-04-25 23:00:00"),
    ("fb8b1418", "2025-04-28 11:00:00"),
    ("1db188b4", "2025-04-29 11:00:00"),
    ("7baa4f28", "2025-05-01 11:00:00"),
    ("05c48af3", "2025-05-02 11:00:00"),
    ("ad72e262", "2025-05-02 23:00:00"),
)


def test_restic_documented_keep_daily_example() -> None:
    decisions = apply_policy(RESTIC_DOC_HISTORY, RetentionPolicy(keep_daily=5), NOW)
    assert kept(decisions) == {
        "ad72e262": ("daily snapshot", "newest"),
        "7baa4f28": ("daily snapshot",),
        "1db188b4": ("daily snapshot",),
        "fb8b1418": ("daily snapshot",),
        "ae33bf10": ("daily snapshot",),
    }
    assert [d.snapshot.id for d in decisions] == [s.id for s in reversed(RESTIC_DOC_HISTORY)]


def test_restic_documented_hundred_years_of_dailies() -> None:
    # "one backup every day for 100 years ... --keep-daily 7 --keep-weekly 5 --keep-monthly 12
    # --keep-yearly 75 would keep the most recent 7 daily snapshots and 4 last-day-of-the-week
    # ones ... 12 or 11 last-day-of-the-month ... 75 or 74 last-day-of-the-year".
    start = datetime(1930, 1, 1, 12, tzinfo=UTC)
    history = [SnapshotInfo(str(n), start + timedelta(days=n)) for n in range(100 * 365 + 24)]
    policy = RetentionPolicy(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=75)
    decisions = apply_policy(history, policy, NOW)
    by_rule = {
        rule: sum(1 for d in decisions if f"{rule} snapshot" in d.reasons)
        for rule in ("daily", "weekly", "monthly", "yearly")
    }
    assert by_rule == {"daily": 7, "weekly": 5, "monthly": 12, "yearly": 75}
    only_weekly = [d for d in decisions if d.reasons == ("weekly snapshot",)]
    assert len(only_weekly) == 4
    assert sum(d.keep for d in decisions) in range(7 + 4 + 11 + 74, 7 + 4 + 12 + 75 + 1)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetentionPolicy(keep_last=2), {"d": ("last snapshot", "newest"), "c": ("last snapshot",)}),
        (
            RetentionPolicy(keep_last=UNLIMITED),
            {k: ("last snapshot",) for k in "abc"} | {"d": ("last snapshot", "newest")},
        ),
        # Two snapshots on one day: a bucket rule with count left keeps the oldest snapshot too.
        (
            RetentionPolicy(keep_daily=5),
            {
                "d": ("daily snapshot", "newest"),
                "c": ("daily snapshot",),
                "b": ("daily snapshot",),
                "a": ("oldest daily snapshot",),
            },
        ),
        (RetentionPolicy(keep_daily=1), {"d": ("daily snapshot", "newest")}),
        (
            RetentionPolicy(keep_within=timedelta(days=1)),
            {"d": ("within 1d", "newest"), "c": ("within 1d",)},
        ),
    ],
)
def test_small_table(policy: RetentionPolicy, expected: dict[str, tuple[str, ...]]) -> None:
    history = snaps(
        ("a", "2024-03-01 08:00"),
        ("b", "2024-03-01 09:00"),
        ("c", "2024-03-02 09:00"),
        ("d", "2024-03-03 08:00"),
    )
    assert kept(apply_policy(history, policy, NOW)) == expected


def test_keep_within_is_relative_to_the_newest_snapshot_and_exclusive() -> None:
    # Backups stopped years before `now`: keep-within still keeps the last ones.
    history = snaps(
        ("old", "2024-01-01 00:00"),
        ("edge", "2024-01-24 00:00"),
        ("in", "2024-01-24 00:00:01"),
        ("newest", "2024-01-31 00:00"),
    )
    decisions = apply_policy(history, RetentionPolicy(keep_within=timedelta(days=7)), NOW)
    assert kept(decisions) == {"newest": ("within 7d", "newest"), "in": ("within 7d",)}


def test_fall_back_day_in_berlin_has_25_hours_but_one_day_and_one_repeated_hour_bucket() -> None:
    # 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:xx happens twice.
    history = snaps(
        ("prev-day", "2026-10-24T22:30:00+02:00"),
        ("early", "2026-10-25T00:30:00+02:00"),
        ("cest-0215", "2026-10-25T02:15:00+02:00"),
        ("cest-0245", "2026-10-25T02:45:00+02:00"),
        ("cet-0215", "2026-10-25T02:15:00+01:00"),
        ("cet-0245", "2026-10-25T02:45:00+01:00"),
        ("late", "2026-10-25T23:30:00+01:00"),
    )
    daily = apply_policy(history, RetentionPolicy(keep_daily=2, tz=BERLIN), NOW)
    assert kept(daily) == {"late": ("daily snapshot", "newest"), "prev-day": ("daily snapshot",)}
    hourly = apply_policy(history, RetentionPolicy(keep_hourly=3, tz=BERLIN), NOW)
    # Wall-clock hours, as restic: both 02:xx hours are one bucket, its newest snapshot is kept.
    assert kept(hourly) == {
        "late": ("hourly snapshot", "newest"),
        "cet-0245": ("hourly snapshot",),
        "early": ("hourly snapshot",),
    }


def test_spring_forward_day_in_berlin_has_23_hours_and_the_zone_decides_the_day() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. 22:30 UTC on the 28th is already the 29th in Berlin.
    history = snaps(
        ("sat", "2026-03-28T12:00:00+00:00"),
        ("sun-early", "2026-03-28T23:30:00+00:00"),
        ("sun-late", "2026-03-29T21:30:00+00:00"),
    )
    in_berlin = apply_policy(history, RetentionPolicy(keep_daily=2, tz=BERLIN), NOW)
    assert kept(in_berlin) == {"sun-late": ("daily snapshot", "newest"), "sat": ("daily snapshot",)}
    in_utc = apply_policy(history, RetentionPolicy(keep_daily=2), NOW)
    assert kept(in_utc) == {"sun-late": ("daily snapshot", "newest"), "sun-early": ("daily snapshot",)}


def test_iso_week_53_spans_new_year() -> None:
    # 2020-12-28 (Mon) .. 2021-01-03 (Sun) is ISO week 2020-W53.
    days = [datetime(2020, 12, 20, 10, tzinfo=UTC) + timedelta(days=n) for n in range(22)]  # to 2021-01-10
    history = [SnapshotInfo(t.date().isoformat(), t) for t in days]
    decisions = apply_policy(history, RetentionPolicy(keep_weekly=3), NOW)
    assert kept(decisions) == {
        "2021-01-10": ("weekly snapshot", "newest"),  # 2021-W01
        "2021-01-03": ("weekly snapshot",),  # 2020-W53, though 2020-12-31 is in it too
        "2020-12-27": ("weekly snapshot",),  # 2020-W52
    }


def test_sparse_history_counts_only_buckets_that_hold_a_snapshot() -> None:
    history = snaps(
        ("y2019", "2019-06-01 10:00"),
        ("jan", "2024-01-15 10:00"),
        ("jun", "2024-06-01 10:00"),
        ("jun-b", "2024-06-01 11:00"),
        ("dec", "2024-12-24 10:00"),
    )
    daily = apply_policy(history, RetentionPolicy(keep_daily=3), NOW)
    assert kept(daily) == {
        "dec": ("daily snapshot", "newest"),
        "jun-b": ("daily snapshot",),
        "jan": ("daily snapshot",),
    }
    monthly = apply_policy(history, RetentionPolicy(keep_monthly=10, keep_yearly=2), NOW)
    assert kept(monthly) == {
        "dec": ("monthly snapshot", "yearly snapshot", "newest"),
        "jun-b": ("monthly snapshot",),
        "jan": ("monthly snapshot",),
        "y2019": ("monthly snapshot", "yearly snapshot"),
    }


def test_future_dated_snapshots_are_ignored_by_rules_and_never_deleted() -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    history = snaps(
        ("a", "2024-04-29 10:00"),
        ("b", "2024-04-30 10:00"),
        ("c", "2024-05-01 10:00"),
        ("future", "2024-05-03 10:00"),
        ("far-future", "2031-01-01 00:00"),
    )
    decisions = apply_policy(history, RetentionPolicy(keep_last=1, keep_within=timedelta(days=1)), now)
    # "future" neither takes the keep-last slot nor moves the keep-within reference.
    assert kept(decisions) == {
        "far-future": ("future",),
        "future": ("future",),
        "c": ("within 1d", "last snapshot", "newest"),
    }


def test_locked_snapshots_are_kept() -> None:
    history = [
        SnapshotInfo("old-locked", datetime(2024, 1, 1, tzinfo=UTC), locked=True),
        SnapshotInfo("old", datetime(2024, 1, 2, tzinfo=UTC)),
        SnapshotInfo("new-locked", datetime(2024, 1, 3, tzinfo=UTC), locked=True),
        SnapshotInfo("new", datetime(2024, 1, 4, tzinfo=UTC)),
    ]
    decisions = apply_policy(history, RetentionPolicy(keep_last=1), NOW)
    assert kept(decisions) == {
        "new": ("last snapshot", "newest"),
        "new-locked": ("locked",),
        "old-locked": ("locked",),
    }


def test_failed_snapshots_take_no_bucket_and_never_push_out_the_newest_good_one() -> None:
    history = [
        SnapshotInfo("good-mon", datetime(2024, 1, 1, 2, tzinfo=UTC)),
        SnapshotInfo("good-tue", datetime(2024, 1, 2, 2, tzinfo=UTC)),
        SnapshotInfo("failed-tue", datetime(2024, 1, 2, 3, tzinfo=UTC), successful=False),
        SnapshotInfo("failed-wed", datetime(2024, 1, 3, 2, tzinfo=UTC), successful=False),
    ]
    decisions = apply_policy(history, RetentionPolicy(keep_daily=1), NOW)
    assert kept(decisions) == {"good-tue": ("daily snapshot", "newest")}


def test_without_a_successful_snapshot_the_newest_past_one_is_kept() -> None:
    history = [
        SnapshotInfo("failed-1", datetime(2024, 1, 1, tzinfo=UTC), successful=False),
        SnapshotInfo("failed-2", datetime(2024, 1, 2, tzinfo=UTC), successful=False),
        SnapshotInfo("future", datetime(2031, 1, 2, tzinfo=UTC), successful=False),
    ]
    decisions = apply_policy(history, RetentionPolicy(keep_daily=3), NOW)
    assert kept(decisions) == {"failed-2": ("newest",), "future": ("future",)}


def test_ties_keep_their_input_order() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    history = [SnapshotInfo(name, t) for name in ("first", "second", "third")]
    decisions = apply_policy(history, RetentionPolicy(keep_last=1), NOW)
    assert [(d.snapshot.id, d.keep) for d in decisions] == [
        ("first", True),
        ("second", False),
        ("third", False),
    ]


def test_empty_history() -> None:
    assert apply_policy([], RetentionPolicy(keep_last=1), NOW) == []


@pytest.mark.parametrize(
    "policy",
    [RetentionPolicy(), RetentionPolicy(keep_within=timedelta(0)), RetentionPolicy(tz=BERLIN)],
)
def test_empty_policy_is_refused(policy: RetentionPolicy) -> None:
    assert policy.is_empty()
    with pytest.raises(UsageError, match="empty retention policy"):
        apply_policy(snaps(("a", "2024-01-01 00:00")), policy, NOW)


def test_bad_policy_values_are_refused() -> None:
    with pytest.raises(UsageError, match="--keep-daily"):
        RetentionPolicy(keep_daily=-2)
    with pytest.raises(UsageError, match="--keep-within"):
        RetentionPolicy(keep_within=timedelta(days=-1))


def test_naive_times_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SnapshotInfo("a", datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_policy([], RetentionPolicy(keep_last=1), datetime(2024, 1, 1))


def test_describe_and_format_duration() -> None:
    policy = RetentionPolicy(
        keep_last=3, keep_daily=7, keep_yearly=UNLIMITED, keep_within=timedelta(days=30), tz=BERLIN
    )
    assert policy.describe() == (
        "keep 3 latest, 7 daily, all yearly snapshots"
        " and all snapshots within 30d of the newest (Europe/Berlin)"
    )
    assert RetentionPolicy().describe() == "remove"
    assert format_duration(timedelta(days=13, hours=23)) == "13d23h"
    assert format_duration(timedelta(minutes=90, seconds=5)) == "1h30m5s"
    assert format_duration(timedelta(0)) == "0s"
