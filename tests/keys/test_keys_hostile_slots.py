"""Slots planted in storage: skipped by fingerprint, never trusted, and cheap to skip by the thousand."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from keyhelpers import CHEAP_KDF, PASSPHRASE, new_identity, open_as

import vault
from vault import layout
from vault.errors import AuthenticationError
from vault.formats import keyslot


@pytest.fixture
def team_vault(tmp_path: Path) -> tuple[Path, str]:
    """A vault with one team version; returns its path and team's ring id."""
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"team data")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
        ring = v.catalog.keyring_for("team")
    assert ring is not None
    return path, ring


def plant_recipients(path: Path, ring: str, count: int, vault_id: bytes) -> None:
    """``count`` x25519 slots for random recipients, each wrapping junk, on ``ring``."""
    for _ in range(count):
        slot_id = os.urandom(16)
        pub = X25519PrivateKey.generate().public_key().public_bytes_raw()
        blob = keyslot.encode_x25519(vault_id, bytes.fromhex(ring), slot_id, pub, os.urandom(80))
        (path / "keys" / ring / slot_id.hex()).write_bytes(blob)


def vault_id_of(path: Path) -> bytes:
    with vault.open_vault(str(path)) as v:
        return v.vault_id


def test_a_slot_for_another_fingerprint_is_skipped(team_vault: tuple[Path, str], tmp_path: Path) -> None:
    path, ring = team_vault
    new_identity("alice")
    plant_recipients(path, ring, 3, vault_id_of(path))
    with open_as(path, "alice") as v, pytest.raises(AuthenticationError, match="namespace team"):
        v.pull("team/model", tmp_path / "out")


def test_a_slot_planted_for_our_fingerprint_that_does_not_open_is_skipped(
    team_vault: tuple[Path, str], tmp_path: Path
) -> None:
    path, ring = team_vault
    alice = new_identity("alice")
    vault_id = vault_id_of(path)
    # Wrapped to alice, but holding something that is not team's keyring; its id sorts first.
    slot_id = bytes(15) + b"\x01"
    blob = keyslot.encode_x25519(vault_id, bytes.fromhex(ring), slot_id, alice.x25519_public, os.urandom(80))
    (path / "keys" / ring / slot_id.hex()).write_bytes(blob)
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        v.add_recipient(alice, "team")
    with open_as(path, "alice") as v:
        v.pull("team/model", tmp_path / "out")


def test_a_slot_copied_from_another_ring_is_damaged(team_vault: tuple[Path, str]) -> None:
    path, ring = team_vault
    alice = new_identity("alice")
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        slot_id = v.add_recovery(alice)
    (path / "keys" / ring / slot_id).write_bytes((path / "keys" / layout.OWNER_RING / slot_id).read_bytes())
    with vault.open_vault(str(path)) as v:
        copies = [s for s in v.key_slots() if s.slot_id == slot_id]
    assert sorted((s.ring == ring, s.kind) for s in copies) == [(False, "x25519"), (True, "damaged")]


def test_a_thousand_planted_recipient_slots_unlock_fast(team_vault: tuple[Path, str], tmp_path: Path) -> None:
    path, ring = team_vault
    alice = new_identity("alice")
    plant_recipients(path, ring, 1000, vault_id_of(path))
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        v.add_recipient(alice, "team")
    with open_as(path, "alice") as v:
        v.unlock()
        started = time.perf_counter()
        v.keys.keyring(ring)
        elapsed = time.perf_counter() - started
    print(f"\nunlock of team's keyring by identity among 1,001 x25519 slots: {elapsed * 1000:.0f} ms")
    with open_as(path, "alice") as v:
        v.pull("team/model", tmp_path / "out")
