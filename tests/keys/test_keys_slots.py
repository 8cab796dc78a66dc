"""Key slots on real local vaults: each kind round trip, unlock by identity only, slot admin, key events.

Catalog-facing tests run on SQLite and PostgreSQL (``catalog_url``). Every vault uses cheap KDF
parameters passed explicitly; time moves through an injected clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, FakeClock, load_identity, new_identity, open_as

import vault
from vault import layout
from vault.errors import AuthenticationError, NotFoundError, UsageError


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vault_path(tmp_path: Path, catalog_url: str | None, clock: FakeClock) -> Path:
    """A vault with two namespaces, team and research, one version each."""
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"team weights " * 1000)
    with vault.init_vault(
        str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url, clock=clock
    ) as v:
        v.push(src, "team/model")
        v.push(src, "research/model")
    return path


def open_pw(
    path: Path, catalog_url: str | None, clock: FakeClock, passphrase: str = PASSPHRASE
) -> vault.Vault:
    return vault.open_vault(str(path), passphrase=passphrase, catalog_url=catalog_url, clock=clock)


def test_init_records_its_passphrase_slot(
    vault_path: Path, catalog_url: str | None, clock: FakeClock
) -> None:
    with open_pw(vault_path, catalog_url, clock) as v:
        slots = v.key_slots()
        owner = [s for s in slots if s.opens == "owner"]
        assert [(s.kind, s.created_at) for s in owner] == [("passphrase", clock.now)]
        keyring_slots = {s.namespace: s.kind for s in slots if s.opens == "keyring"}
        assert keyring_slots == {"team": "owner", "research": "owner"}
        assert [e.action for e in v.catalog.key_events()] == ["add", "add", "add"]


def test_passphrase_slot_round_trip(vault_path: Path, catalog_url: str | None, clock: FakeClock) -> None:
    with open_pw(vault_path, catalog_url, clock) as v:
        slot_id = v.add_passphrase_slot(b"second passphrase", CHEAP_KDF, label="laptop")
    clock.advance(hours=1)
    with open_pw(vault_path, catalog_url, clock, "second passphrase") as v:
        v.pull("team/model", vault_path.parent / "out")
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert (info.kind, info.label, info.last_used_at) == ("passphrase", "laptop", clock.now)
        assert info.created_at == clock.now - dt.timedelta(hours=1)


def test_slow_kdf_refused_without_the_flag(
    vault_path: Path, catalog_url: str | None, clock: FakeClock
) -> None:
    slow = vault.KdfParams(time_cost=13, memory_kib=64 * 1024, parallelism=4)
    with open_pw(vault_path, catalog_url, clock) as v, pytest.raises(UsageError, match="allow-slow-kdf"):
        v.add_passphrase_slot(b"another", slow)


def test_recipient_reads_exactly_its_namespace(
    vault_path: Path, catalog_url: str | None, tmp_path: Path
) -> None:
    alice = new_identity("alice")
    with vault.open_vault(str(vault_path), passphrase=PASSPHRASE, catalog_url=catalog_url) as v:
        slot_id = v.add_recipient(alice, "team")
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert v.catalog.slot_records()[slot_id].recipient_public == alice.x25519_public
        assert (info.kind, info.namespace, info.recipient, info.label) == (
            "x25519",
            "team",
            alice.fingerprint,
            "alice",
        )
    with open_as(vault_path, "alice", catalog_url=catalog_url) as v:
        v.unlock()
        v.pull("team/model", tmp_path / "team-out")
        assert (tmp_path / "team-out" / "weights.bin").read_bytes() == b"team weights " * 1000
        assert not v.keys.unlocked  # a keyring slot needs no owner key
        with pytest.raises(AuthenticationError, match="no key slot you can open for namespace research"):
            v.pull("research/model", tmp_path / "research-out")
        assert not (tmp_path / "research-out").exists()
        src = tmp_path / "new"
        src.mkdir()
        (src / "f").write_bytes(b"pushed by alice")
        v.push(src, "team/from-alice")  # write implies read: a recipient can push too
        with pytest.raises(AuthenticationError, match="no key slot you can open for namespace brandnew"):
            v.push(src, "brandnew/x")
    assert list(tmp_path.glob("research-out*")) == []


def test_wrong_identity_is_refused(vault_path: Path, catalog_url: str | None, tmp_path: Path) -> None:
    new_identity("mallory")
    with (
        open_as(vault_path, "mallory", catalog_url=catalog_url) as v,
        pytest.raises(AuthenticationError) as info,
    ):
        v.pull("team/model", tmp_path / "out")
    assert info.value.exit_code == 4
    assert "namespace team" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_recovery_recipient_opens_everything(
    vault_path: Path, catalog_url: str | None, tmp_path: Path
) -> None:
    backup = new_identity("backup")
    with vault.open_vault(str(vault_path), passphrase=PASSPHRASE, catalog_url=catalog_url) as v:
        slot_id = v.add_recovery(backup)
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert (info.kind, info.opens, info.label) == ("x25519", "owner", "recovery")
    with open_as(vault_path, "backup", catalog_url=catalog_url) as v:
        v.pull("research/model", tmp_path / "r")
        v.pull("team/model", tmp_path / "t")
        assert v.keys.unlocked


def test_removing_the_last_owner_slot_is_refused(
    vault_path: Path, catalog_url: str | None, clock: FakeClock
) -> None:
    with open_pw(vault_path, catalog_url, clock) as v:
        (only,) = [s.slot_id for s in v.key_slots() if s.opens == "owner"]
        with pytest.raises(UsageError, match="last slot that can open the vault's owner key") as info:
            v.remove_slot(only)
        assert info.value.exit_code == 2
        second = v.add_passphrase_slot(b"second", CHEAP_KDF)
        clock.advance(minutes=5)
        v.remove_slot(only)
        assert [s.slot_id for s in v.key_slots() if s.opens == "owner"] == [second]
        with pytest.raises(UsageError, match="last slot"):
            v.remove_slot(second)
        events = v.catalog.key_events()
        assert [(e.action, e.slot_id, e.kind) for e in events[-2:]] == [
            ("add", second, "passphrase"),
            ("remove", only, "passphrase"),
        ]
        assert events[-1].at == clock.now
        keyring_owner = next(s.slot_id for s in v.key_slots() if s.kind == "owner")
        with pytest.raises(UsageError, match="how the owner key opens namespace"):
            v.remove_slot(keyring_owner)
        with pytest.raises(NotFoundError):
            v.remove_slot("ab" * 16)
        with pytest.raises(UsageError, match="invalid slot id"):
            v.remove_slot("../config")
    with open_pw(vault_path, catalog_url, clock, "second") as v:
        v.unlock()
    with open_pw(vault_path, catalog_url, clock) as v, pytest.raises(AuthenticationError):
        v.unlock()


def test_removed_recipient_loses_access(vault_path: Path, catalog_url: str | None, tmp_path: Path) -> None:
    alice = new_identity("alice")
    with vault.open_vault(str(vault_path), passphrase=PASSPHRASE, catalog_url=catalog_url) as v:
        slot_id = v.add_recipient(alice, "team")
        v.remove_slot(slot_id)
        assert [e.action for e in v.catalog.key_events()][-2:] == ["add", "remove"]
    with open_as(vault_path, "alice", catalog_url=catalog_url) as v, pytest.raises(AuthenticationError):
        v.pull("team/model", tmp_path / "out")


def test_identity_with_passphrase_falls_back_to_the_passphrase(vault_path: Path, tmp_path: Path) -> None:
    new_identity("bob")
    with vault.open_vault(str(vault_path), identity=lambda: load_identity("bob"), passphrase=PASSPHRASE) as v:
        v.pull("team/model", tmp_path / "out")


def test_a_failed_unlock_is_not_retried(vault_path: Path) -> None:
    calls = []

    def source() -> bytes:
        calls.append(1)
        return b"wrong"

    with vault.open_vault(str(vault_path), passphrase=source) as v:
        for _ in range(3):
            with pytest.raises(AuthenticationError, match="wrong passphrase"):
                v.unlock()
    assert calls == [1]


def test_damaged_slots_are_listed_as_damaged(vault_path: Path) -> None:
    planted = vault_path / "keys" / layout.OWNER_RING / ("cd" * 16)
    planted.write_bytes(b"MLVS garbage")
    with vault.open_vault(str(vault_path), passphrase=PASSPHRASE) as v:
        (info,) = [s for s in v.key_slots() if s.slot_id == "cd" * 16]
        assert info.kind == "damaged" and info.damage
        v.unlock()
        v.remove_slot("cd" * 16)  # damaged slots can be cleaned up
    assert not planted.exists()
