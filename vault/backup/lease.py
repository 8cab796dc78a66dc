"""One run of a schedule at a time: the lease rules, the ``LeaseStore`` interface, and its fake.

Every ``backup run`` holds a lease per schedule: the owner (host, pid), the time of its last
heartbeat and a TTL. The rules, as pure functions of an injected ``now``:

- A lease is live while ``now < heartbeat_at + ttl`` and expired from that instant on.
- A lease can be taken when there is none or it has expired (a crashed or SIGKILLed run is not a
  permanent lock). A live lease is never stolen, not even by an owner with the same host and pid:
  after a reboot a pid names another process.
- A heartbeat moves ``heartbeat_at`` to ``now`` and succeeds only while the caller still holds
  the lease. It also succeeds on an expired lease that nobody took over (a run that was
  suspended, not dead, may carry on); once another owner has taken it, the heartbeat fails and
  the old run must stop.
- Releasing removes the lease only when the caller holds it.

:class:`LeaseStore` is the interface the catalog will implement (a row per schedule, taken with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite, so each
method is one atomic step). :class:`MemoryLeaseStore` is its fake: a dict under a lock.
``tests/backup/test_lease_store_contract.py`` runs one suite against every implementation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from vault.errors import UsageError


@dataclass(frozen=True)
class LeaseOwner:
    """The process that runs a backup."""

    host: str
    pid: int

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"


@dataclass(frozen=True)
class Lease:
    """Who runs a schedule, and until when that claim holds without a heartbeat."""

    owner_host: str
    owner_pid: int
    heartbeat_at: datetime
    ttl: timedelta

    @property
    def owner(self) -> LeaseOwner:
        """The holder as one value."""
        return LeaseOwner(self.owner_host, self.owner_pid)

    @property
    def expires_at(self) -> datetime:
        """The first instant at which the lease may be taken over."""
        return self.heartbeat_at + self.ttl

    def is_live(self, now: datetime) -> bool:
        """True while the holder's claim stands."""
        return now < self.expires_at


def can_take(existing: Lease | None, now: datetime) -> bool:
    """True when there is no lease, or its heartbeat has expired."""
    return existing is None or not existing.is_live(now)


def validate_ttl(ttl: timedelta) -> timedelta:
    """A TTL must be positive (``--lease-ttl``)."""
    if ttl <= timedelta(0):
        raise UsageError(f"the lease TTL must be positive, not {ttl}")
    return ttl


class LeaseStore(Protocol):
    """Where leases live; every method is one atomic step against concurrent callers."""

    def try_acquire(self, schedule: str, owner: LeaseOwner, now: datetime, ttl: timedelta) -> bool:
        """Take the lease of ``schedule`` when :func:`can_take` allows it; False when it is live."""
        ...

    def heartbeat(self, schedule: str, owner: LeaseOwner, now: datetime) -> bool:
        """Renew the lease held by ``owner``; False when it no longer holds it."""
        ...

    def release(self, schedule: str, owner: LeaseOwner) -> bool:
        """Drop the lease held by ``owner``; False (and nothing changed) when it does not hold it."""
        ...

    def current(self, schedule: str) -> Lease | None:
        """The lease of ``schedule``, live or expired, for ``status`` and "skipped: held by" messages."""
        ...


class MemoryLeaseStore:
    """The in-memory :class:`LeaseStore`: the fake for tests and the reference for the contract."""

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def try_acquire(self, schedule: str, owner: LeaseOwner, now: datetime, ttl: timedelta) -> bool:
        """See :meth:`LeaseStore.try_acquire`."""
        validate_ttl(ttl)
        with self._lock:
            if not can_take(self._leases.get(schedule), now):
                return False
            self._leases[schedule] = Lease(owner.host, owner.pid, now, ttl)
            return True

    def heartbeat(self, schedule: str, owner: LeaseOwner, now: datetime) -> bool:
        """See :meth:`LeaseStore.heartbeat`."""
        with self._lock:
            lease = self._leases.get(schedule)
            if lease is None or lease.owner != owner:
                return False
            self._leases[schedule] = replace(lease, heartbeat_at=max(now, lease.heartbeat_at))
            return True

    def release(self, schedule: str, owner: LeaseOwner) -> bool:
        """See :meth:`LeaseStore.release`."""
        with self._lock:
            lease = self._leases.get(schedule)
            if lease is None or lease.owner != owner:
                return False
            del self._leases[schedule]
            return True

    def current(self, schedule: str) -> Lease | None:
        """See :meth:`LeaseStore.current`."""
        with self._lock:
            return self._leases.get(schedule)
