"""The stored checkpoint format: a known-answer vector, caps, and flip/truncate/splice refusals."""

from __future__ import annotations

import calendar
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from auditfakes import VAULT_ID, VERIFIER

from vault.audit.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_SIGNER_BYTES,
    Checkpoint,
    SignedCheckpoint,
    decode_checkpoint,
    encode_checkpoint,
)
from vault.errors import IntegrityError, MlvaultError, UsageError

AT = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
KAT = SignedCheckpoint(VAULT_ID, Checkpoint(1000, bytes(range(32, 64))), AT, "p-owner", b"\xaa" * 8)
KAT_HEX = (
    "4d4c5641" "01" "000000" "000102030405060708090a0b0c0d0e0f" "00000000000003e8" "00064c0953885240"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "0007" "702d6f776e6572" "0008" "aaaaaaaaaaaaaaaa"
)  # fmt: skip


def test_known_answer_vector() -> None:
    micros = calendar.timegm(AT.timetuple()) * 1_000_000 + AT.microsecond
    by_hand = (
        b"MLVA"
        + bytes([1, 0, 0, 0])
        + VAULT_ID
        + (1000).to_bytes(8, "big")
        + micros.to_bytes(8, "big", signed=True)
        + bytes(range(32, 64))
        + (7).to_bytes(2, "big")
        + b"p-owner"
        + (8).to_bytes(2, "big")
        + b"\xaa" * 8
    )
    assert encode_checkpoint(KAT) == by_hand == bytes.fromhex(KAT_HEX)
    assert decode_checkpoint(by_hand) == KAT
    assert KAT.signed_bytes() == by_hand[: -2 - 8]


def test_round_trip_keeps_the_instant_whatever_the_zone() -> None:
    local = dataclasses.replace(
        KAT, at=AT.astimezone(timezone(timedelta(hours=-7))), signer="ø-ops", signature=b""
    )
    decoded = decode_checkpoint(encode_checkpoint(local))
    assert decoded == dataclasses.replace(local, at=AT) and decoded.at.tzinfo is UTC
    before_epoch = dataclasses.replace(KAT, at=datetime(1960, 1, 1, tzinfo=UTC))
    assert decode_checkpoint(encode_checkpoint(before_epoch)) == before_epoch


def signed() -> SignedCheckpoint:
    return VERIFIER.sign(dataclasses.replace(KAT, signer="owner", signature=b""))


def test_every_flipped_bit_is_refused_or_fails_the_signature() -> None:
    data = encode_checkpoint(signed())
    for index in range(len(data)):
        for bit in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[index] ^= bit
            try:
                decoded = decode_checkpoint(bytes(damaged))
            except IntegrityError:
                continue
            with pytest.raises(MlvaultError):
                VERIFIER.verify_checkpoint(decoded)


def test_every_truncation_and_any_trailing_byte_is_refused() -> None:
    data = encode_checkpoint(signed())
    for length in range(len(data)):
        with pytest.raises(IntegrityError):
            decode_checkpoint(data[:length])
    with pytest.raises(IntegrityError, match="trailing"):
        decode_checkpoint(data + b"\x00")


def test_splices_of_two_checkpoints_are_refused_or_fail_the_signature() -> None:
    one = encode_checkpoint(signed())
    two = encode_checkpoint(
        VERIFIER.sign(dataclasses.replace(KAT, signer="owner", checkpoint=Checkpoint(7, bytes(32))))
    )
    assert len(one) == len(two)
    for cut in range(1, len(one)):
        for spliced in (one[:cut] + two[cut:], two[:cut] + one[cut:]):
            if spliced in (one, two):
                continue
            try:
                decoded = decode_checkpoint(spliced)
            except IntegrityError:
                continue
            with pytest.raises(MlvaultError):
                VERIFIER.verify_checkpoint(decoded)


def patched(offset: int, value: bytes) -> bytes:
    data = bytearray(encode_checkpoint(KAT))
    data[offset : offset + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (patched(0, b"MLVB"), "bad magic"),
        (patched(4, b"\x02"), "version 2"),
        (patched(5, b"\x01"), "reserved"),
        (patched(24, bytes(8)), "out of range"),  # seq 0
        (patched(24, b"\x80" + bytes(7)), "out of range"),  # seq 2**63
        (patched(32, b"\x7f" + bytes(7)), "malformed signer or time"),  # a time past year 9999
        (patched(72, b"\x00\x00"), "out of range"),  # empty signer
        (patched(72, (MAX_SIGNER_BYTES + 1).to_bytes(2, "big")), "out of range"),
        (patched(72, b"\x00\x50"), "truncated"),  # signer length past the end
        (patched(74, b"\xff"), "malformed signer"),  # invalid UTF-8
        (patched(81, (MAX_SIGNATURE_BYTES + 1).to_bytes(2, "big")), "over its cap"),
        (patched(81, b"\x00\x09"), "truncated"),
        (b"\x00" * (MAX_CHECKPOINT_BYTES + 1), "too large"),
    ],
)
def test_malformed_checkpoints_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(IntegrityError, match=why):
        decode_checkpoint(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"signer": ""},
        {"signer": "x" * (MAX_SIGNER_BYTES + 1)},
        {"signer": "\udc80"},
        {"signature": b"s" * (MAX_SIGNATURE_BYTES + 1)},
        {"vault_id": bytes(15)},
        {"checkpoint": Checkpoint(0, bytes(32))},
        {"checkpoint": Checkpoint(1, bytes(31))},
        {"at": datetime(2026, 3, 2)},
    ],
)
def test_encoding_refuses_fields_out_of_range(changes: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        encode_checkpoint(dataclasses.replace(KAT, **changes))  # type: ignore[arg-type]
