"""The LeaseStore contract: one suite for every implementation (the memory store, and the catalog's
SQL store on SQLite and, with MLVAULT_TEST_POSTGRES_URL, on PostgreSQL). Time is passed in; nothing
sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault.backup.definition import Target, build_definition
from vault.backup.lease import Lease, LeaseOwner, LeaseStore, MemoryLeaseStore, can_take
from vault.catalog import open_catalog
from vault.errors import UsageError

T0 = datetime(2026, 6, 1, 2, 30, tzinfo=UTC)
TTL = timedelta(minutes=5)
A = LeaseOwner("host-a", 100)
B = LeaseOwner("host-b", 200)

SCHEDULES = ("nightly", "hourly")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def lease_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LeaseStore]:
    if request.param == "memory":
        yield MemoryLeaseStore()
        return
    url = (
        f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    catalog = open_catalog(url)
    try:
        for name in SCHEDULES:  # the catalog keeps leases of schedules it knows
            definition = build_definition(
                name=name,
                cron="30 2 * * *",
                tz="UTC",
                target=Target("/backups"),
                include=(),
                keep={"last": 7},
                keep_within=None,
                object_lock=None,
                catch_up="once",
                max_runtime=None,
            )
            catalog.add_backup_schedule(definition, "tester", T0 - timedelta(days=1))
        yield catalog.backup_lease_store()
    finally:
        catalog.close()


# The pure rules.


def test_can_take_rules() -> None:
    lease = Lease("h", 1, T0, TTL)
    assert can_take(None, T0)
    assert not can_take(lease, T0)
    assert not can_take(lease, T0 + TTL - timedelta(microseconds=1))
    assert can_take(lease, T0 + TTL)  # expired from heartbeat_at + ttl on
    assert lease.expires_at == T0 + TTL
    assert lease.owner == LeaseOwner("h", 1)
    assert str(lease.owner) == "h pid 1"


# The contract.


def test_acquire_a_free_lease(lease_store: LeaseStore) -> None:
    assert lease_store.current("nightly") is None
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert lease_store.current("nightly") == Lease("host-a", 100, T0, TTL)


def test_a_live_lease_is_never_stolen(lease_store: LeaseStore) -> None:
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert not lease_store.try_acquire("nightly", B, T0 + TTL - timedelta(seconds=1), TTL)
    # Not even by the same host and pid: after a reboot that pid is another process.
    assert not lease_store.try_acquire("nightly", A, T0 + timedelta(seconds=1), TTL)
    assert lease_store.current("nightly") == Lease("host-a", 100, T0, TTL)


def test_leases_are_per_schedule(lease_store: LeaseStore) -> None:
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert lease_store.try_acquire("hourly", B, T0, TTL)
    assert lease_store.current("hourly") == Lease("host-b", 200, T0, TTL)


def test_an_expired_lease_is_taken_over(lease_store: LeaseStore) -> None:
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert lease_store.try_acquire("nightly", B, T0 + TTL, timedelta(minutes=10))
    assert lease_store.current("nightly") == Lease("host-b", 200, T0 + TTL, timedelta(minutes=10))
    # The old holder learns it lost the lease at its next heartbeat, and cannot release it.
    assert not lease_store.heartbeat("nightly", A, T0 + TTL + timedelta(seconds=1))
    assert not lease_store.release("nightly", A)
    assert lease_store.current("nightly") is not None


def test_heartbeats_keep_a_lease_live(lease_store: LeaseStore) -> None:
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    t = T0
    for _ in range(10):  # 40 minutes of a run, heartbeat every 4
        t += timedelta(minutes=4)
        assert lease_store.heartbeat("nightly", A, t)
        assert not lease_store.try_acquire("nightly", B, t + TTL - timedelta(seconds=1), TTL)
    lease = lease_store.current("nightly")
    assert lease is not None and lease.heartbeat_at == t


def test_a_heartbeat_on_an_expired_lease_nobody_took_carries_on(lease_store: LeaseStore) -> None:
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert lease_store.heartbeat("nightly", A, T0 + 2 * TTL)
    assert not lease_store.try_acquire("nightly", B, T0 + 2 * TTL + timedelta(seconds=1), TTL)


def test_heartbeat_by_someone_else_or_on_nothing_fails(lease_store: LeaseStore) -> None:
    assert not lease_store.heartbeat("nightly", A, T0)
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert not lease_store.heartbeat("nightly", B, T0 + timedelta(seconds=1))
    lease = lease_store.current("nightly")
    assert lease is not None and lease.heartbeat_at == T0


def test_release(lease_store: LeaseStore) -> None:
    assert not lease_store.release("nightly", A)
    assert lease_store.try_acquire("nightly", A, T0, TTL)
    assert not lease_store.release("nightly", B)
    assert lease_store.release("nightly", A)
    assert lease_store.current("nightly") is None
    assert lease_store.try_acquire("nightly", B, T0 + timedelta(seconds=1), TTL)


def test_a_non_positive_ttl_is_refused(lease_store: LeaseStore) -> None:
    with pytest.raises(UsageError, match="TTL"):
        lease_store.try_acquire("nightly", A, T0, timedelta(0))
    assert lease_store.current("nightly") is None


def test_concurrent_acquirers_get_exactly_one_lease(lease_store: LeaseStore) -> None:
    owners = [LeaseOwner("host", pid) for pid in range(16)]
    barrier = threading.Barrier(len(owners))
    results: dict[int, bool] = {}

    def contend(owner: LeaseOwner) -> None:
        barrier.wait(timeout=10)
        results[owner.pid] = lease_store.try_acquire("nightly", owner, T0, TTL)

    threads = [threading.Thread(target=contend, args=(o,)) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results.values()) == [False] * 15 + [True]
    winner = next(pid for pid, won in results.items() if won)
    lease = lease_store.current("nightly")
    assert lease is not None and lease.owner_pid == winner
