"""The catalog's SQL lease store beyond the shared contract (tests/backup/test_lease_store_contract.py):
four processes racing for one schedule's lease, on SQLite and PostgreSQL; unknown schedules; hostile
rows. Every process is handed the instant to act at; nothing sleeps."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine

from vault.backup.definition import Target, parse_definition
from vault.backup.lease import LeaseOwner
from vault.catalog import Catalog, open_catalog
from vault.errors import IntegrityError, NotFoundError

T0 = datetime(2027, 3, 1, 2, 30, tzinfo=UTC)
TTL = timedelta(minutes=5)
# Each phase: the instant every racer tries at. The first takes a free lease; the second comes one
# second before it expires (a live lease is never stolen); the third comes when it has expired.
PHASES = (T0, T0 + TTL - timedelta(seconds=1), T0 + TTL)
RACERS = 4


def _add_schedule(catalog: Catalog, name: str = "nightly") -> None:
    definition = parse_definition(
        name=name, cron="30 2 * * *", tz="UTC", target=Target("/srv/backups"), keep={"last": 3}
    )
    catalog.add_backup_schedule(definition, "tester", T0 - timedelta(days=1))


def _race(url: str, racer: int, barrier: Any, results: Any) -> None:
    catalog = open_catalog(url)
    try:
        store = catalog.backup_lease_store()
        for phase, now in enumerate(PHASES):
            barrier.wait(timeout=60)
            owner = LeaseOwner(f"racer-{racer}", 1000 * phase + racer)
            results.put((phase, owner.pid, store.try_acquire("nightly", owner, now, TTL)))
    finally:
        catalog.close()


def test_four_processes_race_for_one_lease(any_catalog_url: str) -> None:
    catalog = open_catalog(any_catalog_url)
    try:
        _add_schedule(catalog)
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(RACERS), context.Queue()
        racers = [
            context.Process(target=_race, args=(any_catalog_url, i, barrier, results)) for i in range(RACERS)
        ]
        for process in racers:
            process.start()
        outcomes = [results.get(timeout=120) for _ in range(RACERS * len(PHASES))]
        for process in racers:
            process.join(timeout=60)
            assert process.exitcode == 0
        winners = {
            phase: [pid for p, pid, won in outcomes if p == phase and won] for phase in range(len(PHASES))
        }
        assert len(winners[0]) == 1, outcomes  # exactly one takes the free lease
        assert winners[1] == [], outcomes  # nobody steals it while it is live
        assert len(winners[2]) == 1, outcomes  # exactly one takes it over once it has expired
        lease = catalog.backup_lease_store().current("nightly")
        assert lease is not None
        assert (lease.owner_pid, lease.heartbeat_at) == (winners[2][0], PHASES[2])
    finally:
        catalog.close()


def test_leases_belong_to_existing_schedules(any_catalog_url: str) -> None:
    catalog = open_catalog(any_catalog_url)
    try:
        store = catalog.backup_lease_store()
        owner = LeaseOwner("h", 1)
        with pytest.raises(NotFoundError, match="no backup schedule named 'ghost'"):
            store.try_acquire("ghost", owner, T0, TTL)
        assert not store.heartbeat("ghost", owner, T0)
        assert not store.release("ghost", owner)
        assert store.current("ghost") is None
        _add_schedule(catalog)
        with pytest.raises(ValueError, match="timezone-aware"):
            store.try_acquire("nightly", owner, T0.replace(tzinfo=None), TTL)
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE backup_leases SET ttl_seconds = -1", "TTL -1"),
        ("UPDATE backup_leases SET owner_pid = -7", "owner pid -7"),
        ("UPDATE backup_leases SET owner_host = ''", "owner host ''"),
    ],
)
def test_a_hostile_lease_row_is_an_integrity_error(any_catalog_url: str, sql: str, reason: str) -> None:
    catalog = open_catalog(any_catalog_url)
    try:
        _add_schedule(catalog)
        store = catalog.backup_lease_store()
        assert store.try_acquire("nightly", LeaseOwner("h", 1), T0, TTL)
        engine = create_engine(catalog.engine.url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()
        with pytest.raises(IntegrityError, match=reason):
            store.current("nightly")
        with pytest.raises(IntegrityError, match=reason):
            store.try_acquire("nightly", LeaseOwner("h", 2), T0 + 2 * TTL, TTL)
    finally:
        catalog.close()
