"""Unlocking a real local vault when storage holds damaged or planted owner key slots.

Issue 8 items 11 and 14: a damaged slot is reported as damaged, not only as "wrong
passphrase"; a slot with Argon2 parameters far above the default is skipped (never run) and
named unless slow KDFs are allowed; one unlock spends a bounded amount of Argon2 work; the
slot that last opened the vault on this client is tried first; ``init`` refuses slow KDF
parameters without the flag. Every vault here uses cheap KDF parameters passed explicitly.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import CHEAP_KDF, PASSPHRASE

import vault
from vault import keystore, layout
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams, stretch
from vault.errors import AuthenticationError, UsageError
from vault.formats import keyslot
from vault.storage import open_backend

# The largest parameters a slot may carry at all: ~14 s and 1.1 GB per run if it ever ran.
MAX_CAPPED = KdfParams(time_cost=16, memory_kib=1024 * 1024, parallelism=16)
# Slow by work (13 passes × 64 MiB > 4 × 3 passes × 64 MiB) yet cheap enough to really run.
SLOW_BUT_CHEAP = KdfParams(time_cost=13, memory_kib=64 * 1024, parallelism=4)
FIRST_ID = "0" * 32  # sorts before any real slot id


def make_vault(root: Path, kdf: KdfParams = CHEAP_KDF, **options: object) -> tuple[Path, bytes, str]:
    """A vault at ``root/v``; returns its path, its id and its one owner slot id."""
    path = root / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=kdf, **options) as v:  # type: ignore[arg-type]
        vault_id = bytes.fromhex(v.config.vault_id)
    (slot,) = owner_slot_ids(path)
    return path, vault_id, slot


def owner_slot_ids(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "keys" / "owner").iterdir())


def slot_path(path: Path, slot_id: str) -> Path:
    return path / "keys" / "owner" / slot_id


def unlock(
    path: Path, passphrase: str = PASSPHRASE, state: ClientState | None = None, **options: object
) -> None:
    with vault.open_vault(str(path), passphrase=passphrase, client_state=state, **options) as v:  # type: ignore[arg-type]
        v.unlock()


def plant(
    path: Path,
    vault_id: bytes,
    slot_id: str = FIRST_ID,
    kdf: KdfParams = CHEAP_KDF,
    passphrase: bytes = b"the attacker's passphrase",
) -> Path:
    """A well-formed passphrase slot that does not hold this vault's owner key."""
    salt = os.urandom(16)
    # The KEK of a slow slot is never computed here: a random one makes the same bytes.
    kek = os.urandom(32) if kdf.is_slow else stretch(passphrase, salt, kdf)
    blob = keyslot.encode(
        keyslot.KIND_PASSPHRASE,
        vault_id,
        b"\0" * 16,
        bytes.fromhex(slot_id),
        kek,
        os.urandom(32),
        kdf=kdf,
        salt=salt,
    )
    target = slot_path(path, slot_id)
    target.write_bytes(blob)
    return target


def rewrite(target: Path, data: bytes) -> None:
    os.chmod(target, 0o600)
    target.write_bytes(data)


def rechecksummed(data: bytes) -> bytes:
    body = data[: -keyslot.CHECKSUM_SIZE]
    return body + hashlib.sha256(body).digest()[:16]


def refused(path: Path, passphrase: str = PASSPHRASE, **options: object) -> str:
    start = time.perf_counter()
    with pytest.raises(AuthenticationError) as info:
        unlock(path, passphrase, **options)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5, "a refused unlock must not run an expensive KDF"
    assert info.value.exit_code == 4
    return str(info.value)


# -- item 11: damaged slots are reported as damaged --------------------------------------------


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "flipped bit in the vault id": lambda d: _flip(d, 10),
    "flipped bit in the KDF parameters": lambda d: _flip(d, 75),
    "flipped bit in the ciphertext": lambda d: _flip(d, len(d) - 30),
    "flipped bit in the checksum": lambda d: _flip(d, len(d) - 5),
    "truncated": lambda d: d[:40],
    "truncated by its checksum": lambda d: d[:-16],
    "extended": lambda d: d + b"\0",
    "oversized": lambda d: d + b"\0" * 5000,
    "empty": lambda d: b"",
    # passphrase params: salt at 56, time cost at 72, memory KiB at 76, parallelism at 80
    "out-of-range Argon2 memory": lambda d: rechecksummed(
        d[:76] + struct.pack(">I", 100 * 1024 * 1024) + d[80:]
    ),
    "out-of-range Argon2 time": lambda d: rechecksummed(d[:72] + struct.pack(">I", 0) + d[76:]),
    "written for another vault": lambda d: rechecksummed(d[:6] + b"\x42" * 16 + d[22:]),
    "relabelled as an owner-ring slot": lambda d: rechecksummed(d[:5] + b"\x02" + d[6:]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_owner_slot_is_reported_as_damaged_with_the_right_passphrase(
    tmp_path: Path, damage: str
) -> None:
    path, _, slot = make_vault(tmp_path)
    target = slot_path(path, slot)
    rewrite(target, DAMAGE[damage](target.read_bytes()))
    message = refused(path)
    assert "1 key slot is damaged or was not written by mlvault" in message, message
    assert slot in message


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_an_owner_slot_that_is_not_a_regular_file_is_damaged(tmp_path: Path, kind: str) -> None:
    path, _, slot = make_vault(tmp_path)
    target = slot_path(path, slot)
    data = target.read_bytes()
    os.chmod(target, 0o600)
    target.unlink()
    if kind == "symlink":
        (tmp_path / "elsewhere").write_bytes(data)
        target.symlink_to(tmp_path / "elsewhere")
    else:
        os.mkfifo(target)
    message = refused(path)
    assert "damaged" in message and slot in message, message


def test_a_slot_stored_under_another_id_is_damaged(tmp_path: Path) -> None:
    path, _, slot = make_vault(tmp_path)
    slot_path(path, slot).rename(slot_path(path, FIRST_ID))
    message = refused(path)
    assert "damaged" in message and FIRST_ID in message, message


def test_a_damaged_slot_does_not_stop_a_good_one(tmp_path: Path) -> None:
    path, _, _ = make_vault(tmp_path)
    slot_path(path, FIRST_ID).write_bytes(b"MLVS\x02 not a slot")
    unlock(path)


def test_a_wrong_passphrase_on_a_sound_vault_mentions_no_damage(tmp_path: Path) -> None:
    path, _, _ = make_vault(tmp_path)
    message = refused(path, "not the passphrase")
    assert message.startswith("wrong passphrase") and "damaged" not in message, message


def test_a_wrong_passphrase_beside_a_damaged_slot_says_both(tmp_path: Path) -> None:
    path, _, _ = make_vault(tmp_path)
    slot_path(path, FIRST_ID).write_bytes(b"garbage")
    message = refused(path, "not the passphrase")
    assert message.startswith("wrong passphrase") and "1 key slot is damaged" in message, message


def test_a_version_1_slot_still_opens(tmp_path: Path) -> None:
    path, vault_id, slot = make_vault(tmp_path)
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        owner_key = v.keys.owner_key()
    salt = os.urandom(16)
    kek = stretch(PASSPHRASE.encode(), salt, CHEAP_KDF)
    v1 = keyslot._encode_from_parts(
        keyslot.KIND_PASSPHRASE,
        vault_id,
        b"\0" * 16,
        bytes.fromhex(slot),
        kek,
        owner_key,
        kdf=CHEAP_KDF,
        salt=salt,
        nonce=os.urandom(12),
        version=1,
    )
    rewrite(slot_path(path, slot), v1)
    unlock(path)


def test_new_vaults_write_version_2_slots(tmp_path: Path) -> None:
    path, _, slot = make_vault(tmp_path)
    assert keyslot.decode(slot_path(path, slot).read_bytes()).version == 2


# -- item 14: slow and planted slots -----------------------------------------------------------


def test_a_planted_slot_with_the_largest_allowed_parameters_is_skipped_and_named(tmp_path: Path) -> None:
    path, vault_id, _ = make_vault(tmp_path)
    plant(path, vault_id, FIRST_ID, MAX_CAPPED)
    start = time.perf_counter()
    unlock(path)  # no client state: the planted slot sorts first, and is skipped
    assert time.perf_counter() - start < 5
    message = refused(path, "not the passphrase")
    assert FIRST_ID in message and "--allow-slow-kdf" in message, message
    assert "1 key slot was skipped" in message


def test_a_slow_slot_opens_only_when_slow_kdfs_are_allowed(tmp_path: Path) -> None:
    path, _, slot = make_vault(tmp_path, SLOW_BUT_CHEAP, allow_slow_kdf=True)
    message = refused(path)
    assert slot in message and "--allow-slow-kdf" in message, message
    unlock(path, allow_slow_kdf=True)


def test_the_slot_that_last_opened_the_vault_is_tried_first(tmp_path: Path) -> None:
    path, vault_id, slot = make_vault(tmp_path)
    state = ClientState(tmp_path / "client")
    unlock(path, state=state)
    assert state.last_slot(vault_id.hex()) == slot
    # Planted slots that sort first and cost as little as the real one fill the per-unlock
    # count: without the remembered slot the real one is never reached.
    planted = [f"{i:032x}" for i in range(keystore.MAX_PASSPHRASE_SLOTS)]
    for slot_id in planted:
        plant(path, vault_id, slot_id)
    message = refused(path)
    assert slot in message and "not tried" in message, message
    unlock(path, state=state)


def test_a_remembered_slot_spares_even_an_allowed_slow_planted_slot(tmp_path: Path) -> None:
    path, vault_id, _ = make_vault(tmp_path)
    state = ClientState(tmp_path / "client")
    unlock(path, state=state)
    plant(path, vault_id, FIRST_ID, MAX_CAPPED)
    start = time.perf_counter()
    unlock(path, state=state, allow_slow_kdf=True)
    assert time.perf_counter() - start < 5


def test_the_slot_that_opens_is_remembered_in_place_of_a_stale_one(tmp_path: Path) -> None:
    path, vault_id, slot = make_vault(tmp_path)
    state = ClientState(tmp_path / "client")
    state.remember_slot(vault_id.hex(), FIRST_ID)  # a slot that no longer exists
    unlock(path, state=state)
    assert state.last_slot(vault_id.hex()) == slot


def test_one_unlock_spends_a_bounded_amount_of_kdf_work(tmp_path: Path) -> None:
    dearer = KdfParams(time_cost=2, memory_kib=8, parallelism=1)  # twice CHEAP_KDF's work
    path, vault_id, slot = make_vault(tmp_path, dearer)
    for slot_id in (f"{i:032x}" for i in range(3)):
        plant(path, vault_id, slot_id)  # cheaper than the real slot: tried before it
    backend = open_backend(str(path))
    budget = 3 * CHEAP_KDF.work + dearer.work - 1
    with pytest.raises(AuthenticationError) as info:
        keystore.open_owner(backend, vault_id, PASSPHRASE.encode(), budget=budget)
    assert "budget" in str(info.value) and slot in str(info.value) and "--allow-slow-kdf" in str(info.value)
    opened = keystore.open_owner(backend, vault_id, PASSPHRASE.encode(), budget=budget, preferred=slot)
    assert opened.slot_id == slot
    assert keystore.open_owner(backend, vault_id, PASSPHRASE.encode(), budget=budget + 1).slot_id == slot


# -- init ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kdf",
    [
        KdfParams(time_cost=3, memory_kib=1024 * 1024, parallelism=4),
        KdfParams(time_cost=16, memory_kib=64 * 1024, parallelism=4),
        MAX_CAPPED,
    ],
    ids=["16x memory", "5x work", "the caps"],
)
def test_init_refuses_a_slow_kdf_before_creating_anything(tmp_path: Path, kdf: KdfParams) -> None:
    with pytest.raises(UsageError) as info:
        vault.init_vault(str(tmp_path / "v"), passphrase=PASSPHRASE, kdf=kdf)
    assert info.value.exit_code == 2 and "--allow-slow-kdf" in str(info.value)
    assert not (tmp_path / "v").exists()


def test_init_accepts_four_times_the_default() -> None:
    at_limit = KdfParams(time_cost=12, memory_kib=64 * 1024, parallelism=4)
    assert not at_limit.is_slow and not KdfParams(time_cost=3, memory_kib=256 * 1024, parallelism=4).is_slow
    assert KdfParams(time_cost=1, memory_kib=256 * 1024 + 1, parallelism=4).is_slow
    assert keystore.refuse_slow_kdf(at_limit) is at_limit
    assert layout.is_id(FIRST_ID)


def test_adding_a_passphrase_slot_refuses_a_slow_kdf_without_the_flag(tmp_path: Path) -> None:
    path, vault_id, slot = make_vault(tmp_path)
    backend = open_backend(str(path))
    with pytest.raises(UsageError, match="--allow-slow-kdf"):
        keystore.add_passphrase_slot(backend, vault_id, b"k" * 32, b"another passphrase", MAX_CAPPED)
    assert owner_slot_ids(path) == [slot]
