"""``audit verify`` accepts a signed checkpoint only from a pinned root admin key or from a
principal that was live when the checkpoint was written; any other key is named (exit 5)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from vault.access.principals import Principal
from vault.audit.service import AuditService
from vault.catalog import Catalog, open_catalog
from vault.clientstate.identities import Identities, Identity
from vault.errors import IntegrityError
from vault.signing.keys import KdfParams
from vault.storage.memory import MemoryBackend

VAULT_ID = bytes(range(16))
START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def identities(tmp_path: Path) -> dict[str, Identity]:
    store = Identities(tmp_path / "identities")
    for name in ("owner", "alice", "stranger"):
        store.create(name, None, KdfParams(1, 8, 1))
    return {name: store.load(name, None) for name in ("owner", "alice", "stranger")}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")


def _alice(identities: dict[str, Identity], **changes: object) -> Principal:
    alice = Principal("a" * 32, "alice", "user", identities["alice"].public, START - timedelta(days=1))
    return replace(alice, **changes)  # type: ignore[arg-type]


def _services(
    catalog: Catalog, identities: dict[str, Identity], clock: Clock, principals: list[Principal]
) -> dict[str | None, AuditService]:
    backend = MemoryBackend()
    roots = [identities["owner"].public.signing_fingerprint]
    return {
        who: AuditService(
            catalog,
            backend,
            VAULT_ID,
            principal="someone@host",
            identity=lambda who=who: None if who is None else identities[who],  # type: ignore[misc]
            clock=clock,
            principals=lambda: principals,
            roots=lambda: roots,
        )
        for who in (None, "owner", "alice", "stranger")
    }


def test_root_live_principal_and_unsigned_checkpoints_pass(
    catalog: Catalog, identities: dict[str, Identity]
) -> None:
    clock = Clock()
    log = _services(catalog, identities, clock, [_alice(identities)])
    for who in ("owner", "alice", None):
        clock.now += timedelta(minutes=1)
        log[who].changed("push", f"team/m@v{clock.now.minute}")
    result = log[None].verify()
    assert result.report.ok and result.report.checkpoints == 3
    assert "unsigned" in result.signers and identities["alice"].public.signing_fingerprint in result.signers


def test_an_unknown_signer_is_refused_and_named(catalog: Catalog, identities: dict[str, Identity]) -> None:
    clock = Clock()
    log = _services(catalog, identities, clock, [_alice(identities)])
    log["owner"].changed("push", "team/m@v1")
    clock.now += timedelta(minutes=1)
    log["stranger"].changed("push", "team/m@v2")  # a valid signature, by a key the vault does not know
    stranger = identities["stranger"].public.signing_fingerprint
    with pytest.raises(
        IntegrityError, match=rf"checkpoint at row 2 is not trusted: .*unknown key {stranger[:16]}"
    ):
        log["owner"].verify()
    found, report = log["owner"].anomalies(timedelta(days=30))
    assert not report.ok and [a.kind.value for a in found] == ["audit-chain"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"removed_at": START + timedelta(minutes=30)}, "removed"),
        ({"expires": date(2026, 6, 30)}, "expired"),
        ({"added_at": START + timedelta(days=1)}, "not yet added"),
    ],
)
def test_a_principal_not_live_when_it_signed_is_refused(
    catalog: Catalog, identities: dict[str, Identity], change: dict[str, object], why: str
) -> None:
    clock = Clock()
    log = _services(catalog, identities, clock, [_alice(identities, **change)])
    clock.now = START + timedelta(hours=1)
    log["alice"].changed("push", "team/m@v1")
    with pytest.raises(
        IntegrityError, match="of principal alice, which was not a live principal at 2026-07-01 10:00"
    ):
        log["owner"].verify()


def test_without_anchors_a_bare_service_accepts_any_valid_signature(
    catalog: Catalog, identities: dict[str, Identity]
) -> None:
    bare = AuditService(
        catalog,
        MemoryBackend(),
        VAULT_ID,
        principal="p@h",
        identity=lambda: identities["stranger"],
        clock=lambda: START,
    )
    bare.changed("push", "team/m@v1")
    assert bare.verify().report.ok
