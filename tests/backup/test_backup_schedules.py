"""Backup schedules: what is refused at save, round trips through the catalog (SQLite and PostgreSQL),
hostile rows, and status with a moved clock (nothing sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from vault.backup.definition import (
    ObjectLock,
    ScheduleDefinition,
    Target,
    longest_gap_at_least,
    parse_definition,
    parse_duration,
)
from vault.backup.lease import LeaseOwner
from vault.backup.schedule import CronSchedule
from vault.backup.schedules import BackupSchedules, schedule_json
from vault.backup.trigger import systemd_quote, trigger_units
from vault.catalog import Catalog, open_catalog
from vault.errors import BackupFailedError, ConflictError, IntegrityError, NotFoundError, UsageError

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def define(name: str = "nightly", **overrides: Any) -> ScheduleDefinition:
    values: dict[str, Any] = {
        "name": name,
        "cron": "30 2 * * *",
        "tz": "UTC",
        "target": Target("/srv/backups"),
        "keep": {"last": 7, "daily": 14},
    }
    values.update(overrides)
    return parse_definition(**values)


@pytest.fixture
def catalog(catalog_url: str | None, tmp_path: Path) -> Iterator[Catalog]:
    opened = open_catalog(catalog_url or f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def schedules(catalog: Catalog, clock: Clock) -> BackupSchedules:
    return BackupSchedules(catalog, principal="alice@host", clock=clock)


# -- refused at save ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"cron": "61 2 * * *"}, "bad minute field"),
        ({"cron": "* * * *"}, "expected 5 fields"),
        ({"cron": "@reboot"}, "not at boot"),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"tz": "localtime"}, "unknown time zone"),
        ({"keep": {}}, "empty retention policy"),
        ({"keep": {"last": 0, "daily": 0}}, "empty retention policy"),
        ({"keep": {"last": -1}}, "--keep-last must be 0..1000000"),
        ({"keep": {"fortnightly": 1}}, "unknown retention rules"),
        ({"name": "-x"}, "invalid schedule name"),
        ({"name": "a" * 65}, "invalid schedule name"),
        ({"name": "a b"}, "invalid schedule name"),
        ({"include": ["team/*/x"]}, "only allowed as the last segment"),
        ({"include": ["team", "team"]}, "given twice"),
        ({"catch_up": "always"}, "--catch-up must be one of"),
        ({"object_lock": "governance"}, "go together"),
        ({"retain_days": 30}, "go together"),
        ({"object_lock": "legal-hold", "retain_days": 30}, "governance, compliance"),
        ({"object_lock": "compliance", "retain_days": 0}, "--retain-days must be 1..36500"),
        ({"keep_within": "30 d"}, "invalid --keep-within"),
        ({"max_runtime": "0h"}, "must be more than 0"),
    ],
)
def test_a_malformed_definition_is_refused_with_the_reason(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        define(**overrides)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("relative/dir",), "use an absolute path"),
        (("memory://x",), "use an absolute path"),
        (("file://host/x",), "file:///absolute/path"),
        (("s3://b/p",), "invalid S3 bucket name"),
        (("/srv/b", "http://minio:9000"), "apply to s3:// targets only"),
        (("/srv/b", None, None, "eu-west-1"), "apply to s3:// targets only"),
        (("s3://bucket/p", "ftp://x"), "expected http"),
        (("s3://bucket/p", None, None, "EU WEST"), "invalid target region"),
    ],
)
def test_a_bad_target_is_refused(args: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        Target(*args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--keep-within") == expected


@pytest.mark.parametrize(
    "text", ["", "30", "d", "30D", "1.5h", "-1h", "+1h", " 1h", "1h ", "12h1d", "1h1h", "0s", "36501d"]
)
def test_durations_are_parsed_strictly(text: str) -> None:
    with pytest.raises(UsageError, match="--max-runtime"):
        parse_duration(text, "--max-runtime")


def test_object_lock_needs_an_s3_target_and_a_period_longer_than_the_gap(schedules: BackupSchedules) -> None:
    bucket = Target("s3://backups/mlv")
    with pytest.raises(UsageError, match="needs an s3:// target"):
        schedules.add(define(object_lock="governance", retain_days=90))
    with pytest.raises(UsageError, match=r"--retain-days 7 is too short .* 7d apart"):
        schedules.add(define(cron="0 3 * * 0", target=bucket, object_lock="governance", retain_days=7))
    with pytest.raises(UsageError, match=r"--retain-days 1 is too short .* 1d apart"):
        schedules.add(define(tz="Europe/Berlin", target=bucket, object_lock="compliance", retain_days=1))
    with pytest.raises(UsageError, match="1461d apart"):
        schedules.add(define(cron="0 0 29 2 *", target=bucket, object_lock="governance", retain_days=1000))
    record = schedules.add(define(cron="0 3 * * 0", target=bucket, object_lock="governance", retain_days=8))
    assert record.definition.object_lock == ObjectLock("governance", 8)
    assert schedules.add(
        define("often", cron="*/5 * * * *", target=bucket, object_lock="governance", retain_days=1)
    )


def test_the_gap_walk_finds_rare_gaps_and_passes_dense_schedules() -> None:
    monthly_31 = CronSchedule.parse("0 0 31 * *")  # skips months without a 31st: two-month gaps
    assert longest_gap_at_least(monthly_31, timedelta(days=40), T0) == timedelta(days=61)
    assert longest_gap_at_least(monthly_31, timedelta(days=62), T0) is None
    assert longest_gap_at_least(CronSchedule.parse("*/5 * * * *"), timedelta(days=1), T0) is None
    # A daily job on a fall-back day is 25 hours from the next: a lock of 24 h and a bit would lapse.
    berlin = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    assert longest_gap_at_least(berlin, timedelta(hours=24, seconds=1), T0) == timedelta(hours=25)
    assert longest_gap_at_least(CronSchedule.parse("30 2 * * *"), timedelta(hours=24, seconds=1), T0) is None


# -- round trips through the catalog ----------------------------------------------------------


def test_add_ls_show_round_trip(schedules: BackupSchedules) -> None:
    definition = define(
        tz="Europe/Berlin",
        target=Target("s3://backups/mlv", "https://minio.example:9000", "backup", "eu-central-1"),
        include=["team/*", "models/+/prod"],
        keep={"last": 7, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 2, "hourly": 0},
        keep_within="30d",
        object_lock="compliance",
        retain_days=90,
        catch_up="skip",
        max_runtime="6h",
    )
    added = schedules.add(definition)
    assert added.definition == definition
    assert (added.enabled, added.enabled_at, added.created_at, added.created_by) == (
        True,
        T0,
        T0,
        "alice@host",
    )
    assert (added.last_scheduled, added.last_started, added.last_success, added.last_error) == (None,) * 4
    (listed,) = schedules.list()
    assert listed == added
    assert listed.definition.retention.tz.key == "Europe/Berlin"
    details = schedules.show("nightly")
    assert details.record == added and details.runs == () and details.lease is None
    as_json = schedule_json(listed)
    assert as_json["retention"]["keep_within_seconds"] == 30 * 86400
    assert as_json["object_lock"] == {"mode": "compliance", "retain_days": 90}
    assert as_json["target"]["endpoint_url"] == "https://minio.example:9000"
    assert as_json["max_runtime_seconds"] == 6 * 3600


def test_names_are_unique_and_missing_ones_are_not_found(schedules: BackupSchedules) -> None:
    schedules.add(define())
    with pytest.raises(ConflictError, match="already exists"):
        schedules.add(define(cron="0 * * * *"))
    for action in (schedules.show, schedules.remove, schedules.enable, schedules.disable):
        with pytest.raises(NotFoundError, match="no backup schedule named 'weekly'"):
            action("weekly")
    with pytest.raises(UsageError):
        schedules.show("../x")


def test_disable_and_enable_restart_the_slots(schedules: BackupSchedules, clock: Clock) -> None:
    schedules.add(define())
    clock.advance(days=1)
    assert not schedules.disable("nightly").enabled
    assert schedules.disable("nightly").enabled_at == T0  # disabling twice changes nothing
    clock.advance(days=10)
    enabled = schedules.enable("nightly")
    assert enabled.enabled and enabled.enabled_at == clock.now
    assert schedules.enable("nightly").enabled_at == enabled.enabled_at  # already enabled: unchanged
    assert enabled.slots_from == clock.now


def test_rm_removes_history_and_lease_but_not_while_running(
    schedules: BackupSchedules, catalog: Catalog, clock: Clock
) -> None:
    schedules.add(define())
    run = catalog.start_backup_run("nightly", T0 + timedelta(hours=15), clock.now)
    leases = catalog.backup_lease_store()
    assert leases.try_acquire("nightly", LeaseOwner("h", 1), clock.now, TTL)
    with pytest.raises(ConflictError, match=r"is running .*h pid 1"):
        schedules.remove("nightly")
    catalog.finish_backup_run(run, clock.now, success=True)
    clock.advance(minutes=5)  # the lease has expired: nothing runs any more
    removed = schedules.remove("nightly")
    assert removed.name == "nightly"
    assert schedules.list() == [] and leases.current("nightly") is None
    schedules.add(define())  # a new schedule of that name starts without the old history
    assert schedules.show("nightly").runs == ()


def test_run_history_updates_the_schedule(schedules: BackupSchedules, catalog: Catalog) -> None:
    schedules.add(define())
    slot = datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
    first = catalog.start_backup_run("nightly", slot, slot + timedelta(minutes=1))
    catalog.finish_backup_run(
        first, slot + timedelta(minutes=9), success=True, objects_copied=3, bytes_copied=4096
    )
    second = catalog.start_backup_run("nightly", None, slot + timedelta(hours=1))
    catalog.finish_backup_run(second, slot + timedelta(hours=2), success=False, error="storage unavailable")
    with pytest.raises(NotFoundError):
        catalog.finish_backup_run(second, slot + timedelta(hours=3), success=True)  # already finished
    record = catalog.backup_schedule("nightly")
    assert record.last_scheduled == slot  # a run by hand has no slot
    assert record.last_started == slot + timedelta(hours=1)
    assert record.last_success == slot + timedelta(minutes=9)
    assert record.last_error == "storage unavailable"
    runs = catalog.backup_run_history("nightly")
    assert [(r.id, r.outcome, r.slot) for r in runs] == [(second, "failed", None), (first, "success", slot)]
    assert (runs[1].objects_copied, runs[1].bytes_copied) == (3, 4096)
    assert catalog.latest_backup_runs()["nightly"].id == second


# -- status, with the clock moved -------------------------------------------------------------


def test_status_overdue_when_no_backup_happened(
    schedules: BackupSchedules, catalog: Catalog, clock: Clock
) -> None:
    schedules.add(define())  # 02:30 UTC daily, saved at 12:00
    clock.now = datetime(2027, 3, 2, 2, 44, tzinfo=UTC)  # within the 15 minutes' grace
    (status,) = schedules.status().schedules
    assert not status.overdue and status.next_due == datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
    schedules.status().raise_for_problems()
    clock.now = datetime(2027, 3, 2, 2, 46, tzinfo=UTC)
    report = schedules.status()
    assert report.schedules[0].overdue_slot == datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
    with pytest.raises(BackupFailedError, match="nightly: overdue since 2027-03-02 02:30 UTC") as caught:
        report.raise_for_problems()
    assert caught.value.exit_code == 17
    assert report.to_json()["ok"] is False

    # A run that started for the slot and is still going (live lease) is not overdue ...
    run = catalog.start_backup_run("nightly", datetime(2027, 3, 2, 2, 30, tzinfo=UTC), clock.now)
    assert catalog.backup_lease_store().try_acquire("nightly", LeaseOwner("h", 1), clock.now, TTL)
    (status,) = schedules.status().schedules
    assert status.running and not status.overdue and not status.failed
    # ... until its process dies: the lease expires and the run is interrupted.
    clock.advance(minutes=10)
    (status,) = schedules.status().schedules
    assert status.interrupted and status.failed and status.overdue
    assert "its last run was interrupted" in schedules.status().problems()[0]
    catalog.finish_backup_run(run, clock.now, success=True)
    (status,) = schedules.status().schedules
    assert not status.needs_attention and status.next_due == datetime(2027, 3, 3, 2, 30, tzinfo=UTC)


def test_status_failed_and_disabled(schedules: BackupSchedules, catalog: Catalog, clock: Clock) -> None:
    schedules.add(define())
    schedules.add(define("hourly", cron="0 * * * *"))
    clock.advance(minutes=61)
    run = catalog.start_backup_run("hourly", T0 + timedelta(hours=1), clock.now)
    catalog.finish_backup_run(run, clock.now, success=False, error="boom")
    report = schedules.status()
    assert [s.name for s in report.schedules if s.needs_attention] == ["hourly"]
    assert report.problems() == ["hourly: its last run failed"]
    assert report.to_json()["schedules"][0]["last_run"]["outcome"] == "failed"
    schedules.disable("hourly")  # reported, never counted
    clock.advance(days=3)
    report = schedules.status()
    assert [(s.name, s.needs_attention) for s in report.schedules] == [("hourly", False), ("nightly", True)]
    schedules.disable("nightly")
    schedules.status().raise_for_problems()
    schedules.enable("nightly")  # restarts now: the paused days are not overdue
    schedules.status().raise_for_problems()
    assert schedules.status().schedules[1].next_due == datetime(2027, 3, 5, 2, 30, tzinfo=UTC)


def test_status_rejects_a_negative_grace(schedules: BackupSchedules) -> None:
    with pytest.raises(UsageError):
        schedules.status(grace=timedelta(minutes=-1))


# -- hostile rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE backup_schedules SET cron = '99 * * * *'", "bad minute field"),
        ("UPDATE backup_schedules SET tz = 'Nowhere/Land'", "unknown time zone"),
        ("UPDATE backup_schedules SET include = '[\"../x\"]'", "invalid pattern"),
        ("UPDATE backup_schedules SET include = 'not json'", "not a JSON list"),
        ("UPDATE backup_schedules SET keep_last = 0, keep_daily = 0", "empty retention policy"),
        ("UPDATE backup_schedules SET keep_last = -5", "keep_last"),
        ("UPDATE backup_schedules SET target_url = 'relative'", "invalid backup target"),
        ("UPDATE backup_schedules SET catch_up = 'never'", "--catch-up"),
        ("UPDATE backup_schedules SET lock_mode = 'sneaky', lock_retain_days = 1", "--object-lock"),
        ("UPDATE backup_schedules SET created_by = ''", "creator"),
    ],
)
def test_a_hostile_schedule_row_is_an_integrity_error(
    schedules: BackupSchedules, catalog: Catalog, sql: str, reason: str
) -> None:
    schedules.add(define())
    engine = create_engine(catalog.engine.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
    with pytest.raises(IntegrityError, match=f"backup schedule 'nightly' has .*{reason}"):
        schedules.list()


def test_a_hostile_run_row_is_an_integrity_error(schedules: BackupSchedules, catalog: Catalog) -> None:
    schedules.add(define())
    catalog.start_backup_run("nightly", None, T0)
    engine = create_engine(catalog.engine.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE backup_runs SET outcome = 'great'")
    finally:
        engine.dispose()
    with pytest.raises(IntegrityError, match="outcome 'great'"):
        schedules.status()


# -- the trigger ------------------------------------------------------------------------------


def test_trigger_units_quote_for_cron_and_systemd() -> None:
    units = trigger_units(["/opt/ml vault/bin/mlvault", "--vault", "/srv/v 100%", "backup", "run", "--due"])
    assert units.crontab == (
        "*/5 * * * * '/opt/ml vault/bin/mlvault' --vault '/srv/v 100\\%' backup run --due"
    )
    assert 'ExecStart="/opt/ml vault/bin/mlvault" --vault "/srv/v 100%%" backup run --due\n' in units.service
    assert "Persistent=true" in units.timer and "OnCalendar=*:0/5" in units.timer
    assert "WantedBy=timers.target" in units.timer
    assert systemd_quote("$HOME") == "$$HOME"
    assert systemd_quote('a"b\\c') == '"a\\"b\\\\c"'
    rendered = units.render()
    assert rendered.index(units.crontab) < rendered.index("[Service]") < rendered.index("[Timer]")
    with pytest.raises(ValueError):
        trigger_units([])
