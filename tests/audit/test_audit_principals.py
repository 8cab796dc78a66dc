"""Rows carry the acting identity's fingerprint, and ``anomalies`` judges them against the policy's
principals: an action after expiry or removal is flagged in one line, a normal history is not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from vault.access.principals import Principal
from vault.audit.anomalies import Kind
from vault.audit.service import AuditService
from vault.catalog import Catalog, open_catalog
from vault.clientstate.identities import Identities, Identity
from vault.signing.keys import KdfParams
from vault.storage.memory import MemoryBackend

VAULT_ID = bytes(range(16))
START = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _identity(tmp_path: Path, name: str) -> Identity:
    store = Identities(tmp_path / "identities")
    store.create(name, None, KdfParams(1, 8, 1))
    return store.load(name, None)


def _log(catalog: Catalog, clock: Clock, who: Identity | None, principals: list[Principal]) -> AuditService:
    return AuditService(
        catalog,
        MemoryBackend(),
        VAULT_ID,
        principal="owner@host",
        identity=lambda: who,
        clock=clock,
        principals=lambda: principals,
    )


def test_actions_after_expiry_or_removal_are_flagged_and_normal_work_is_not(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    alice, bob = _identity(tmp_path, "alice-laptop"), _identity(tmp_path, "bob-ci")
    policy = [
        Principal(
            "a" * 32, "alice", "user", alice.public, START - timedelta(days=1), expires=date(2026, 6, 10)
        ),
        Principal("b" * 32, "ci", "service", bob.public, START - timedelta(days=1)),
    ]
    clock = Clock()
    as_alice, as_bob, as_owner = (_log(catalog, clock, who, policy) for who in (alice, bob, None))
    for day in range(12):  # ordinary days: alice and the CI pull at ten, the owner pushes
        clock.now = START + timedelta(days=day)
        as_alice.record("pull", "team/m@v1", details={"bytes": 10})
        as_bob.record("pull", "team/m@v1", details={"bytes": 10})
        as_owner.record("push", f"team/m@v{day + 2}")
    rows = as_owner.rows()
    assert rows[0].principal == "alice-laptop" and rows[0].details["identity"] == alice.public.fingerprint
    assert "identity" not in rows[2].details  # the owner by passphrase is no principal
    clock.now = START + timedelta(days=11, hours=1)

    # alice's last day was 2026-06-10, so her pulls on 06-11 and 06-12 come after expiry
    found, _ = as_owner.anomalies(timedelta(days=30))
    assert [(a.principal, a.kind, a.explanation) for a in found] == [
        (
            "alice-laptop",
            Kind.EXPIRED_PRINCIPAL,
            "2 actions by principal alice (aaaaaaaa) after it expired at 2026-06-11 00:00 UTC, "
            "first pull team/m@v1 at 2026-06-11 10:00 UTC",
        )
    ]

    # the CI principal is removed; one more pull by its identity is flagged, with alice's still
    policy[0] = replace(policy[0], expires=None)
    policy[1] = replace(policy[1], removed_at=clock.now)
    clock.now += timedelta(minutes=5)
    as_bob.record("pull", "team/m@v1", details={"bytes": 10})
    found, _ = as_owner.anomalies(timedelta(days=30))
    assert [(a.principal, a.kind) for a in found] == [("bob-ci", Kind.REMOVED_PRINCIPAL)]
    assert found[0].explanation.startswith("1 action by principal ci (bbbbbbbb) after it was removed at")

    # without the policy's principals there is nothing to judge against
    assert as_owner.anomalies(timedelta(days=30), principals=[])[0] == []
    catalog.close()
