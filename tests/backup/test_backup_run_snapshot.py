"""The snapshot envelope: a known-answer vector, round trips, and every flipped or truncated byte refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.backup import snapshot
from vault.crypto import recipient
from vault.errors import AuthenticationError, IntegrityError
from vault.formats import sealed

VAULT_ID = bytes(range(16))
SNAPSHOT_ID = bytes(range(16, 32))
FILE_KEY = bytes(range(32, 64))
RECIPIENT = X25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
EPHEMERAL = X25519PrivateKey.from_private_bytes(bytes(range(96, 128)))
PAYLOAD = snapshot.compress_json({"format": "mlvault-snapshot", "hello": "world"})
# SHA-256 of the envelope built from the fixed parts below; any change to the format changes it.
KAT_SHA256 = "fb2a8276f8830e2ab4a79baa0366c6b3c2c4fe2d793a0bb67d8bc5a4a164d125"


@dataclass(frozen=True)
class FakePublic:
    fingerprint: str


@dataclass(frozen=True)
class FakeIdentity:
    name: str
    x25519_private: X25519PrivateKey
    public: FakePublic


def identity(private: X25519PrivateKey = RECIPIENT) -> FakeIdentity:
    public = recipient.public_bytes(private)
    return FakeIdentity("recovery", private, FakePublic(hashlib.sha256(public).hexdigest()))


def vector() -> bytes:
    public = recipient.public_bytes(RECIPIENT)
    wraps = [(recipient._wrap_from_parts(public, EPHEMERAL), public, bytes(12))]
    body = sealed._seal_from_parts(
        sealed.SNAPSHOT, FILE_KEY, VAULT_ID, 0, SNAPSHOT_ID, PAYLOAD, nonce=bytes([1] * 12)
    )
    return snapshot._seal_from_parts(VAULT_ID, SNAPSHOT_ID, FILE_KEY, wraps, body)


def test_known_answer_vector() -> None:
    data = vector()
    assert data[:4] == b"MLVB" and data[4] == 1
    assert (
        len(data) == snapshot.HEADER.size + snapshot.STANZA.size + 4 + sealed.HEADER_SIZE + len(PAYLOAD) + 16
    )
    assert hashlib.sha256(data).hexdigest() == KAT_SHA256
    assert snapshot.open_snapshot(data, identity(), VAULT_ID, SNAPSHOT_ID) == PAYLOAD  # type: ignore[arg-type]


def test_round_trip_to_several_recipients() -> None:
    others = [X25519PrivateKey.generate() for _ in range(3)]
    data = snapshot.seal_snapshot(VAULT_ID, SNAPSHOT_ID, [recipient.public_bytes(k) for k in others], PAYLOAD)
    for key in others:
        assert snapshot.open_snapshot(data, identity(key), VAULT_ID, SNAPSHOT_ID) == PAYLOAD  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError):
        snapshot.open_snapshot(data, identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):  # stored under another snapshot's name
        snapshot.open_snapshot(data, identity(others[0]), VAULT_ID, bytes(16))  # type: ignore[arg-type]


def test_every_flipped_byte_is_refused() -> None:
    data = vector()
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        # A flipped recipient fingerprint names nobody we hold: "not sealed to you" (exit 4);
        # everything else fails authentication or parsing (exit 5).
        with pytest.raises((IntegrityError, AuthenticationError)):
            snapshot.open_snapshot(bytes(tampered), identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]


def test_every_truncation_and_an_extension_is_refused() -> None:
    data = vector()
    for cut in range(len(data)):
        with pytest.raises(IntegrityError):
            snapshot.open_snapshot(data[:cut], identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        snapshot.open_snapshot(data + b"\0", identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]


def test_caps_are_checked_before_allocation() -> None:
    header = snapshot.HEADER.pack(b"MLVB", 1, VAULT_ID, SNAPSHOT_ID, 17)
    with pytest.raises(IntegrityError, match="stanzas"):
        snapshot.parse_envelope(header + bytes(4096))
    with pytest.raises(IntegrityError, match="version"):
        snapshot.parse_envelope(snapshot.HEADER.pack(b"MLVB", 2, VAULT_ID, SNAPSHOT_ID, 1) + bytes(200))


def test_object_list_round_trip_and_damage() -> None:
    from datetime import UTC, datetime

    listing = snapshot.ObjectList(
        "ab" * 16, "cd" * 16, datetime(2025, 1, 1, tzinfo=UTC), "n", 2, 3, 40, {"config": 10}
    )
    assert snapshot.ObjectList.decode(listing.encode(), "cd" * 16) == listing
    with pytest.raises(IntegrityError):
        snapshot.ObjectList.decode(listing.encode(), "ef" * 16)
    with pytest.raises(IntegrityError):
        snapshot.ObjectList.decode(b"not zstd", "cd" * 16)
    assert snapshot.new_snapshot_id(datetime(2025, 1, 1, tzinfo=UTC)) < snapshot.new_snapshot_id(
        datetime(2025, 1, 2, tzinfo=UTC)
    )
