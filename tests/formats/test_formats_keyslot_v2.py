"""Key slot format version 2: a checksum tells accidental damage from a wrong passphrase.

Version 2 appends the first 16 bytes of SHA-256 over every preceding byte. Every flipped
bit, truncation, extension and splice of a version 2 slot must be refused by ``decode`` as
damage, before any Argon2 run or AEAD; an attacker who recomputes the checksum meets the
AEAD, exactly as with version 1. Version 1 slots stay readable.
"""

from __future__ import annotations

import hashlib
import struct
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from format_tampering import flip, put, refused, single_bit_flips
from make_vectors import build
from test_formats_keyslot import (
    HUNDRED_GIB_IN_KIB,
    h,
    innermost_frame,
    open_owner_slot,
    passphrase_slot_with,
    rechecksummed,
)

from vault.crypto.keyring import Keyring
from vault.errors import ConfigurationError, DecryptionError, IntegrityError
from vault.formats import keyslot


@pytest.fixture
def owner_slot_v2(vectors: dict[str, Any]) -> bytes:
    return h(vectors["owner_slot_v2"]["slot"])


@pytest.fixture
def passphrase_slot_v2(vectors: dict[str, Any]) -> bytes:
    return h(vectors["passphrase_slot_v2"]["slot"])


@pytest.mark.parametrize("section", ["owner_slot_v2", "passphrase_slot_v2"])
def test_encoder_reproduces_the_golden_v2_slots(vectors: dict[str, Any], section: str) -> None:
    assert build(vectors["inputs"])[section] == vectors[section]


@pytest.mark.parametrize(
    ("section", "nonce", "params_len"),
    [("owner_slot_v2", "owner_slot_v2_nonce", 0), ("passphrase_slot_v2", "passphrase_slot_v2_nonce", 25)],
)
def test_golden_v2_slots_from_primitives(
    vectors: dict[str, Any], inputs: dict[str, Any], section: str, nonce: str, params_len: int
) -> None:
    # Layout written out by hand: the version 1 layout with version byte 2, then SHA-256[:16].
    data = h(vectors[section]["slot"])
    body, check = data[:-16], data[-16:]
    assert data[:6] == b"MLVS" + bytes([2, 1 if params_len else 2])
    assert check == hashlib.sha256(body).digest()[:16]
    aad_len = 56 + params_len + 12 + 4
    assert body[56 + params_len : 56 + params_len + 12] == h(inputs[nonce])
    assert struct.unpack(">I", body[aad_len - 4 : aad_len])[0] == len(body) - aad_len
    slot_id = body[38:54]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=slot_id, info=b"mlvault/keyslot/v1").derive(
        h(vectors[section]["kek"])
    )
    secret = AESGCM(key).decrypt(h(inputs[nonce]), body[aad_len:], body[:aad_len])
    expected = h(vectors["keyring"]["secret"]) if section == "owner_slot_v2" else h(inputs["owner_key"])
    assert secret == expected
    slot = keyslot.decode(data)
    assert slot.version == 2 and keyslot.unwrap(slot, h(vectors[section]["kek"])) == expected


def test_new_slots_are_written_as_v2(inputs: dict[str, Any], ring: Keyring) -> None:
    blob = keyslot.encode(
        keyslot.KIND_OWNER, h(inputs["vault_id"]), ring.ring_id, b"\3" * 16, b"k" * 32, b"s"
    )
    assert blob[4] == 2 == keyslot.decode(blob).version
    assert blob[-16:] == hashlib.sha256(blob[:-16]).digest()[:16]


@pytest.mark.parametrize("section", ["owner_slot", "passphrase_slot"])
def test_v1_slots_stay_readable(vectors: dict[str, Any], section: str) -> None:
    slot = keyslot.decode(h(vectors[section]["slot"]))
    assert slot.version == 1
    assert keyslot.unwrap(slot, h(vectors[section]["kek"]))


@pytest.mark.parametrize("section", ["owner_slot_v2", "passphrase_slot_v2"])
def test_v2_every_single_bit_flip_is_reported_as_damage_before_any_kdf(
    vectors: dict[str, Any], section: str
) -> None:
    # No Argon2 run, no AEAD: decode alone refuses every flip (magic, version or checksum).
    data = h(vectors[section]["slot"])
    for offset, bit, tampered in single_bit_flips(data):
        err = refused(keyslot.decode, tampered, expect=IntegrityError)
        assert not isinstance(err, DecryptionError), (offset, bit)
        if offset >= 6:
            assert "damaged" in str(err), (offset, bit, str(err))


@pytest.mark.parametrize("section", ["owner_slot_v2", "passphrase_slot_v2"])
def test_v2_truncation_and_extension_are_refused(vectors: dict[str, Any], section: str) -> None:
    data = h(vectors[section]["slot"])
    for length in range(len(data)):
        refused(keyslot.decode, data[:length], expect=IntegrityError)
    for extra in (b"\0", b"\0" * 16, data):
        refused(keyslot.decode, data + extra, expect=IntegrityError)


def test_v2_checksum_recomputed_over_a_longer_body_is_still_refused(owner_slot_v2: bytes) -> None:
    # Extending and recomputing the checksum: the length fields still have to add up.
    refused(
        keyslot.decode,
        rechecksummed(owner_slot_v2[:-16] + b"\0" + owner_slot_v2[-16:]),
        expect=IntegrityError,
    )
    refused(keyslot.decode, rechecksummed(owner_slot_v2[:-17] + owner_slot_v2[-16:]), expect=IntegrityError)


def test_v2_slot_with_only_its_checksum_changed_is_damaged(owner_slot_v2: bytes) -> None:
    err = refused(
        keyslot.decode, put(owner_slot_v2, len(owner_slot_v2) - 16, b"\0" * 16), expect=IntegrityError
    )
    assert "damaged" in str(err)


@pytest.mark.parametrize(
    ("start", "size"),
    [(6, 16), (22, 16), (38, 16), (56, 12), (72, 40), (-32, 16)],
    ids=["vault id", "ring id", "slot id", "nonce", "ciphertext", "tag"],
)
def test_v2_fields_rewritten_with_a_fresh_checksum_meet_the_aead(
    owner_slot_v2: bytes, inputs: dict[str, Any], ring: Keyring, start: int, size: int
) -> None:
    start %= len(owner_slot_v2)
    for offset in (start, start + size - 1):
        tampered = rechecksummed(flip(owner_slot_v2, offset, 6))
        assert keyslot.decode(tampered).kind == keyslot.KIND_OWNER
        refused(open_owner_slot, tampered, h(inputs["owner_key"]), ring.ring_id, expect=DecryptionError)


def test_v2_downgraded_to_v1_is_refused_by_the_aead(
    owner_slot_v2: bytes, inputs: dict[str, Any], ring: Keyring
) -> None:
    # Version 1 has no checksum, but the version byte is in the AAD.
    downgraded = put(owner_slot_v2[:-16], 4, b"\1")
    assert keyslot.decode(downgraded).version == 1
    refused(open_owner_slot, downgraded, h(inputs["owner_key"]), ring.ring_id, expect=DecryptionError)


def test_v2_hostile_kdf_parameters_with_a_fresh_checksum_are_refused_before_argon2(
    passphrase_slot_v2: bytes,
) -> None:
    hostile = rechecksummed(passphrase_slot_with(passphrase_slot_v2, memory_kib=HUNDRED_GIB_IN_KIB))
    start = time.perf_counter()
    err = refused(keyslot.decode, hostile, expect=ConfigurationError)
    assert time.perf_counter() - start < 0.5
    assert innermost_frame(err).name == "check"
