"""Tamper tests for key slots, the keyring secret, and the Argon2 parameter caps.

Key slot layout (offsets): magic 0-3, version 4, kind 5, vault id 6-21, ring id 22-37,
slot id 38-53, params length 54-55, params (passphrase: salt 16 | time u32 | memory KiB u32
| parallelism u8), nonce 12 B, ciphertext length u32, ciphertext, and in version 2 a
16-byte checksum (truncated SHA-256 of everything before it). The owner slot therefore
has its nonce at 56 and its ciphertext at 72; the passphrase slot at 81 and 97.

The golden version 1 slots are tampered field by field here (only the AEAD can tell);
``test_formats_keyslot_v2.py`` checks that version 2 reports every flipped bit, truncation
and splice as damage in decode.
"""

from __future__ import annotations

import hashlib
import struct
import time
import traceback
from typing import Any

import pytest
from format_tampering import flip, put, put_u32, refused, single_bit_flips

from vault.crypto import aead, kdf
from vault.crypto.kdf import KdfParams, stretch
from vault.crypto.keyring import Keyring
from vault.errors import ConfigurationError, DecryptionError, IntegrityError
from vault.formats import ALTERED, keyslot
from vault.formats import keyring as keyring_format

HUNDRED_GIB_IN_KIB = 100 * 1024 * 1024


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.fixture
def owner_slot(vectors: dict[str, Any]) -> bytes:
    return h(vectors["owner_slot"]["slot"])


@pytest.fixture
def passphrase_slot(vectors: dict[str, Any]) -> bytes:
    return h(vectors["passphrase_slot"]["slot"])


def open_owner_slot(data: bytes, owner_key: bytes, ring_id: bytes) -> Keyring:
    """What keystore.open_keyring does: the KEK comes from the slot's own id."""
    slot = keyslot.decode(data)
    kek = aead.derive_key(owner_key, slot.slot_id, keyslot.OWNER_INFO)
    return keyring_format.decode(keyslot.unwrap(slot, kek), ring_id)


def passphrase_slot_with(
    template: bytes, *, time_cost: int = 1, memory_kib: int = 8, parallelism: int = 1
) -> bytes:
    """The golden passphrase slot with other KDF parameters written into its header."""
    return put(template, 54 + 2 + 16, struct.pack(">IIB", time_cost, memory_kib, parallelism))


def innermost_frame(exc: BaseException) -> traceback.FrameSummary:
    return traceback.extract_tb(exc.__traceback__)[-1]


def rechecksummed(data: bytes) -> bytes:
    """A version 2 slot whose checksum was recomputed over its (edited) body, as an attacker would."""
    body = data[: -keyslot.CHECKSUM_SIZE]
    return body + hashlib.sha256(body).digest()[:16]


# -- owner slots ------------------------------------------------------------------------------


def test_owner_slot_opens(owner_slot: bytes, inputs: dict[str, Any], ring: Keyring) -> None:
    assert open_owner_slot(owner_slot, h(inputs["owner_key"]), ring.ring_id) == ring


def test_owner_slot_every_single_bit_flip_is_refused(
    owner_slot: bytes, inputs: dict[str, Any], ring: Keyring
) -> None:
    owner_key = h(inputs["owner_key"])
    for _offset, _bit, tampered in single_bit_flips(owner_slot):
        refused(open_owner_slot, tampered, owner_key, ring.ring_id, expect=IntegrityError)


@pytest.mark.parametrize(
    ("start", "size"),
    [(6, 16), (22, 16), (38, 16), (56, 12), (72, 40), (-16, 16)],
    ids=["vault id", "ring id", "slot id", "nonce", "ciphertext", "tag"],
)
def test_owner_slot_authenticated_fields(
    owner_slot: bytes, inputs: dict[str, Any], ring: Keyring, start: int, size: int
) -> None:
    # These parse fine; only the AEAD can tell, and it must.
    start %= len(owner_slot)
    for offset in (start, start + size - 1):
        tampered = bytearray(owner_slot)
        tampered[offset] ^= 0x40
        assert keyslot.decode(bytes(tampered)).kind == keyslot.KIND_OWNER
        refused(
            open_owner_slot, bytes(tampered), h(inputs["owner_key"]), ring.ring_id, expect=DecryptionError
        )


def test_owner_slot_truncation_and_extension_are_refused(owner_slot: bytes) -> None:
    for length in range(len(owner_slot)):
        refused(keyslot.decode, owner_slot[:length], expect=IntegrityError)
    for extra in (b"\0", owner_slot):
        refused(keyslot.decode, owner_slot + extra, expect=IntegrityError)


@pytest.mark.parametrize("version", [1, 2])
def test_slot_spliced_onto_another_slots_header_is_refused(
    inputs: dict[str, Any], ring: Keyring, vectors: dict[str, Any], version: int
) -> None:
    owner_key, secret = h(inputs["owner_key"]), h(vectors["keyring"]["secret"])
    slots = []
    for slot_id in (b"\1" * 16, b"\2" * 16):
        kek = aead.derive_key(owner_key, slot_id, keyslot.OWNER_INFO)
        vault_id = h(inputs["vault_id"])
        slots.append(
            keyslot._encode_from_parts(
                keyslot.KIND_OWNER,
                vault_id,
                ring.ring_id,
                slot_id,
                kek,
                secret,
                nonce=b"\0" * 12,
                version=version,
            )
        )
    aad_len = len(keyslot.decode(slots[0]).aad)
    spliced = slots[0][:aad_len] + slots[1][aad_len:]
    if version == 2:
        # The checksum catches the splice as damage; recomputed, the AEAD still refuses it.
        err = refused(keyslot.decode, spliced, expect=IntegrityError)
        assert "damaged" in str(err)
        spliced = rechecksummed(spliced)
    refused(open_owner_slot, spliced, owner_key, ring.ring_id, expect=DecryptionError)
    assert open_owner_slot(slots[1], owner_key, ring.ring_id) == ring


def test_owner_slot_with_another_owner_key_is_refused(owner_slot: bytes, ring: Keyring) -> None:
    refused(open_owner_slot, owner_slot, b"\x42" * 32, ring.ring_id, expect=DecryptionError)


def test_owner_slot_moved_to_another_ring_or_vault_is_refused(
    owner_slot: bytes, inputs: dict[str, Any], stranger_ring: Keyring
) -> None:
    owner_key = h(inputs["owner_key"])
    moved = put(owner_slot, 22, stranger_ring.ring_id)
    assert keyslot.decode(moved).ring_id == stranger_ring.ring_id
    refused(open_owner_slot, moved, owner_key, stranger_ring.ring_id, expect=DecryptionError)
    refused(
        open_owner_slot,
        put(owner_slot, 6, b"\x42" * 16),
        owner_key,
        h(inputs["ring_id"]),
        expect=DecryptionError,
    )


def test_owner_slot_relabelled_as_passphrase_is_refused(owner_slot: bytes) -> None:
    err = refused(keyslot.decode, put(owner_slot, 5, bytes([keyslot.KIND_PASSPHRASE])), expect=IntegrityError)
    assert "malformed" in str(err)


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_version_in_a_stored_slot_is_tampering(owner_slot: bytes, version: int) -> None:
    err = refused(keyslot.decode, put(owner_slot, 4, bytes([version])), expect=IntegrityError)
    assert "version" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize("kind", [0, 3, 4, 5, 255])
def test_unknown_kind_in_a_stored_slot_is_tampering(owner_slot: bytes, kind: int) -> None:
    # Kinds 3 (x25519) and 4 (aws-kms) exist only in format version 2; this slot is version 1.
    err = refused(keyslot.decode, put(owner_slot, 5, bytes([kind])), expect=IntegrityError)
    assert "kind" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize("magic", [b"MLVR", b"\0\0\0\0", b"mlvs"])
def test_bad_magic_is_an_integrity_error(owner_slot: bytes, magic: bytes) -> None:
    refused(keyslot.decode, put(owner_slot, 0, magic), expect=IntegrityError)


@pytest.mark.parametrize("params_len", [1, keyslot.MAX_PARAMS, keyslot.MAX_PARAMS + 1, 65535])
def test_params_length_is_capped_before_reading(owner_slot: bytes, params_len: int) -> None:
    # Only the fixed prefix is present: a length is refused from the bytes at hand.
    prefix = put(owner_slot[: keyslot.PREFIX.size], 54, struct.pack(">H", params_len))
    refused(keyslot.decode, prefix, expect=IntegrityError)
    refused(keyslot.decode, put(owner_slot, 54, struct.pack(">H", params_len)), expect=IntegrityError)


@pytest.mark.parametrize("ct_len", [0, 15, keyslot.MAX_SECRET + 17, 2**32 - 1])
def test_ciphertext_length_is_capped(owner_slot: bytes, ct_len: int) -> None:
    err = refused(keyslot.decode, put_u32(owner_slot, 68, ct_len), expect=IntegrityError)
    assert "length" in str(err)


# -- passphrase slots ---------------------------------------------------------------------------


def test_passphrase_slot_every_single_bit_flip_is_refused(
    passphrase_slot: bytes, vectors: dict[str, Any]
) -> None:
    # The golden KEK is used as is: re-running Argon2 on flipped parameters could ask for up to
    # the 4 GiB cap. What is tested is that every byte, the KDF parameters included, is the AAD.
    kek = h(vectors["passphrase_slot"]["kek"])
    for offset, _bit, tampered in single_bit_flips(passphrase_slot):
        if offset in (4, 5):
            refused(keyslot.decode, tampered, expect=IntegrityError)
        else:
            refused(lambda data: keyslot.unwrap(keyslot.decode(data), kek), tampered)


def test_passphrase_slot_with_another_salt_is_refused(passphrase_slot: bytes, inputs: dict[str, Any]) -> None:
    tampered = put(passphrase_slot, 56, b"\x55" * 16)
    slot = keyslot.decode(tampered)
    assert slot.salt == b"\x55" * 16 and slot.kdf is not None
    kek = stretch(inputs["passphrase"].encode(), slot.salt, slot.kdf)
    refused(keyslot.unwrap, slot, kek, expect=DecryptionError)


def test_wrong_passphrase_is_refused(passphrase_slot: bytes) -> None:
    slot = keyslot.decode(passphrase_slot)
    assert slot.salt is not None and slot.kdf is not None
    refused(keyslot.unwrap, slot, stretch(b"Tr0ub4dor&3", slot.salt, slot.kdf), expect=DecryptionError)


def test_passphrase_slot_params_length_must_be_exact(passphrase_slot: bytes) -> None:
    for params_len in (0, 24, 26):
        tampered = put(passphrase_slot, 54, struct.pack(">H", params_len))
        refused(keyslot.decode, tampered, expect=IntegrityError)


@pytest.mark.parametrize(
    "params",
    [
        {"memory_kib": HUNDRED_GIB_IN_KIB},
        {"memory_kib": 2**32 - 1},
        {"memory_kib": kdf.MAX_MEMORY_KIB + 1},
        {"memory_kib": 7},
        {"memory_kib": 8 * 4 - 1, "parallelism": 4},
        {"time_cost": 0},
        {"time_cost": kdf.MAX_TIME_COST + 1},
        {"time_cost": 2**32 - 1},
        {"parallelism": 0},
        {"parallelism": kdf.MAX_PARALLELISM + 1, "memory_kib": 8 * 65},
        {"parallelism": 255, "memory_kib": 8 * 255},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_hostile_kdf_parameters_are_refused_before_argon2_runs(
    passphrase_slot: bytes, params: dict[str, int]
) -> None:
    hostile = passphrase_slot_with(passphrase_slot, **params)
    start = time.perf_counter()
    err = refused(keyslot.decode, hostile, expect=ConfigurationError)
    assert time.perf_counter() - start < 0.5
    frame = innermost_frame(err)
    assert (frame.name, frame.filename) == ("check", kdf.__file__)
    assert "Argon2" in str(err)
    # And stretch() itself refuses them the same way, should a caller skip decode.
    err = refused(
        stretch,
        b"pw",
        b"s" * 16,
        KdfParams(**{"time_cost": 1, "memory_kib": 8, "parallelism": 1, **params}),
        expect=ConfigurationError,
    )
    assert innermost_frame(err).name == "check"
    assert time.perf_counter() - start < 1.0


def test_hundred_gib_slot_names_the_problem(passphrase_slot: bytes) -> None:
    err = refused(
        keyslot.decode,
        passphrase_slot_with(passphrase_slot, memory_kib=HUNDRED_GIB_IN_KIB),
        expect=ConfigurationError,
    )
    assert str(HUNDRED_GIB_IN_KIB) in str(err)


def test_the_caps_themselves_are_accepted() -> None:
    strongest = KdfParams(kdf.MAX_TIME_COST, kdf.MAX_MEMORY_KIB, kdf.MAX_PARALLELISM)
    assert strongest.check() is strongest
    cheapest = KdfParams(1, 8, 1)
    assert cheapest.check() is cheapest and cheapest.is_weak
    assert not kdf.RFC9106_LOW_MEMORY.is_weak


# -- keyring secret --------------------------------------------------------------------------


def test_keyring_secret_round_trips(vectors: dict[str, Any], ring: Keyring) -> None:
    secret = h(vectors["keyring"]["secret"])
    assert keyring_format.encode(ring) == secret
    decoded = keyring_format.decode(secret, ring.ring_id)
    assert (decoded.epoch, decoded.dek(0), decoded.id_key) == (1, ring.deks[0], ring.id_key)


def test_keyring_secret_truncation_and_extension_are_refused(vectors: dict[str, Any], ring: Keyring) -> None:
    secret = h(vectors["keyring"]["secret"])
    for length in range(len(secret)):
        refused(keyring_format.decode, secret[:length], ring.ring_id, expect=IntegrityError)
    for extra in (b"\0", b"\0" * 32, secret):
        refused(keyring_format.decode, secret + extra, ring.ring_id, expect=IntegrityError)


def test_keyring_secret_structural_bit_flips_are_refused(vectors: dict[str, Any], ring: Keyring) -> None:
    # The key bytes are authenticated by the slot that wraps them; magic, version and count are checked here.
    secret = h(vectors["keyring"]["secret"])
    for offset in (0, 1, 2, 3, 4, 37, 38):
        for bit in range(8):
            refused(keyring_format.decode, flip(secret, offset, bit), ring.ring_id, expect=IntegrityError)


@pytest.mark.parametrize("count", [0, 1, 3, keyring_format.MAX_EPOCHS + 1, 65535])
def test_keyring_epoch_count_must_match(vectors: dict[str, Any], ring: Keyring, count: int) -> None:
    secret = put(h(vectors["keyring"]["secret"]), 37, struct.pack(">H", count))
    refused(keyring_format.decode, secret, ring.ring_id, expect=IntegrityError)


def test_keyring_epoch_count_cap_holds_even_when_the_bytes_are_there(ring: Keyring) -> None:
    over = Keyring(ring.ring_id, ring.id_key, (b"\0" * 32,) * (keyring_format.MAX_EPOCHS + 1))
    refused(keyring_format.decode, keyring_format.encode(over), ring.ring_id, expect=IntegrityError)
    at_cap = Keyring(ring.ring_id, ring.id_key, (b"\0" * 32,) * keyring_format.MAX_EPOCHS)
    decoded = keyring_format.decode(keyring_format.encode(at_cap), ring.ring_id)
    assert decoded.epoch == keyring_format.MAX_EPOCHS - 1


@pytest.mark.parametrize(("offset", "value", "message"), [(0, b"MLVS", "magic"), (4, b"\2", "version 2")])
def test_keyring_secret_with_another_magic_or_version_is_tampering(
    vectors: dict[str, Any], ring: Keyring, offset: int, value: bytes, message: str
) -> None:
    secret = put(h(vectors["keyring"]["secret"]), offset, value)
    err = refused(keyring_format.decode, secret, ring.ring_id, expect=IntegrityError)
    assert message in str(err)
