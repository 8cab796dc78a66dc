"""The snapshot envelope (v2, signed): known-answer vectors, round trips, and every flipped, truncated,
reordered or spliced byte refused — the signature by the key-free check alone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.backup import signature, snapshot
from vault.backup.signature import Acceptance
from vault.crypto import recipient
from vault.errors import AuthenticationError, IntegrityError
from vault.formats import sealed
from vault.signing.signers import LocalSigner

VAULT_ID = bytes(range(16))
SNAPSHOT_ID = bytes(range(16, 32))
FILE_KEY = bytes(range(32, 64))
RECIPIENT = X25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
EPHEMERAL = X25519PrivateKey.from_private_bytes(bytes(range(96, 128)))
SIGNING_KEY = ec.derive_private_key(int.from_bytes(bytes(range(128, 160))), ec.SECP256R1())
PAYLOAD = snapshot.compress_json({"format": "mlvault-snapshot", "hello": "world"})
OBJECT_LIST = b"the object list as stored"
# SHA-256 of the signed message and of the envelope built from the fixed parts below (RFC 6979
# deterministic ECDSA); any change to the format changes them.
MESSAGE_SHA256 = "57cd32e1e12b812a7f78e565d0b2371f31ea836204a4d1d7d8f4e3f675a2a554"
KAT_SHA256 = "26ed2eb991a9b0f28ec876309f82c81ceb0aeb54d514b48b766bcf23b33ac218"
WHEN = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FakePublic:
    fingerprint: str


@dataclass(frozen=True)
class FakeIdentity:
    name: str
    x25519_private: X25519PrivateKey
    public: FakePublic


@dataclass(frozen=True)
class FakePrincipal:
    name: str
    kind: str
    signing_fingerprint: str
    removed_at: object = None
    expires: object = None


def identity(private: X25519PrivateKey = RECIPIENT) -> FakeIdentity:
    public = recipient.public_bytes(private)
    return FakeIdentity("recovery", private, FakePublic(hashlib.sha256(public).hexdigest()))


def key_der(key: ec.EllipticCurvePrivateKey = SIGNING_KEY) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


SIGNER_FP = hashlib.sha256(key_der()).hexdigest()
SERVICE = Acceptance.of((), [FakePrincipal("backup-job", "service", SIGNER_FP)])  # type: ignore[list-item]


def unsigned_part() -> bytes:
    public = recipient.public_bytes(RECIPIENT)
    wraps = [(recipient._wrap_from_parts(public, EPHEMERAL), public, bytes(12))]
    body = sealed._seal_from_parts(
        sealed.SNAPSHOT, FILE_KEY, VAULT_ID, 0, SNAPSHOT_ID, PAYLOAD, nonce=bytes([1] * 12)
    )
    return snapshot._seal_from_parts(VAULT_ID, SNAPSHOT_ID, FILE_KEY, wraps, body)


def vector() -> bytes:
    part = unsigned_part()
    message = signature.signed_message(VAULT_ID, SNAPSHOT_ID, part, OBJECT_LIST)
    sig = SIGNING_KEY.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return part + signature.block_from_parts(key_der(), sig)


def check(data: bytes, acceptance: Acceptance = SERVICE, object_list: bytes = OBJECT_LIST) -> str:
    return snapshot.check_signature(snapshot.parse_envelope(data), object_list, acceptance, WHEN)


def test_known_answer_vector() -> None:
    data = vector()
    assert data[:4] == b"MLVB" and data[4] == 2
    part = unsigned_part()
    assert (
        len(part) == snapshot.HEADER.size + snapshot.STANZA.size + 4 + sealed.HEADER_SIZE + len(PAYLOAD) + 16
    )
    message = signature.signed_message(VAULT_ID, SNAPSHOT_ID, part, OBJECT_LIST)
    digests = hashlib.sha256(part).digest() + hashlib.sha256(OBJECT_LIST).digest()
    assert message == b"mlvault/backup-snapshot/v1\x00" + VAULT_ID + SNAPSHOT_ID + digests
    assert hashlib.sha256(message).hexdigest() == MESSAGE_SHA256
    assert hashlib.sha256(data).hexdigest() == KAT_SHA256
    assert snapshot.open_snapshot(data, identity(), VAULT_ID, SNAPSHOT_ID) == PAYLOAD  # type: ignore[arg-type]
    assert check(data) == "service principal backup-job"


def test_round_trip_signed_and_unsigned_to_several_recipients() -> None:
    others = [X25519PrivateKey.generate() for _ in range(3)]
    publics = [recipient.public_bytes(k) for k in others]
    signed = snapshot.seal_snapshot(
        VAULT_ID, SNAPSHOT_ID, publics, PAYLOAD, OBJECT_LIST, LocalSigner(SIGNING_KEY)
    )
    for key in others:
        assert snapshot.open_snapshot(signed, identity(key), VAULT_ID, SNAPSHOT_ID) == PAYLOAD  # type: ignore[arg-type]
    assert check(signed) == "service principal backup-job"
    with pytest.raises(AuthenticationError):
        snapshot.open_snapshot(signed, identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):  # stored under another snapshot's name
        snapshot.open_snapshot(signed, identity(others[0]), VAULT_ID, bytes(16))  # type: ignore[arg-type]
    unsigned = snapshot.seal_snapshot(VAULT_ID, SNAPSHOT_ID, publics, PAYLOAD, OBJECT_LIST, None)
    assert unsigned[-1] == 0 and check(unsigned, Acceptance(frozenset())) == "unsigned"
    with pytest.raises(IntegrityError, match="not signed"):
        check(unsigned)  # the policy lists a service principal: unsigned is a downgrade


def test_every_flipped_byte_fails_the_key_free_signature_check() -> None:
    data = vector()
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        with pytest.raises(IntegrityError):
            check(bytes(tampered))


def test_every_truncation_and_an_extension_is_refused() -> None:
    data = vector()
    for cut in range(len(data)):
        with pytest.raises(IntegrityError):
            check(data[:cut])
        with pytest.raises(IntegrityError):
            snapshot.open_snapshot(data[:cut], identity(), VAULT_ID, SNAPSHOT_ID)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        check(data + b"\0")


def test_reordered_stanzas_spliced_blocks_and_swapped_lists_are_refused() -> None:
    keys = [X25519PrivateKey.generate() for _ in range(2)]
    publics = [recipient.public_bytes(k) for k in keys]
    signer = LocalSigner(SIGNING_KEY)
    data = snapshot.seal_snapshot(VAULT_ID, SNAPSHOT_ID, publics, PAYLOAD, OBJECT_LIST, signer)
    first = snapshot.HEADER.size
    second = first + snapshot.STANZA.size
    reordered = data[:first] + data[second : second + snapshot.STANZA.size] + data[first:second]
    reordered += data[second + snapshot.STANZA.size :]
    with pytest.raises(IntegrityError):
        check(reordered)
    other = snapshot.seal_snapshot(VAULT_ID, SNAPSHOT_ID, publics, PAYLOAD, OBJECT_LIST, signer)
    spliced = (
        snapshot.parse_envelope(other).signed_part + data[len(snapshot.parse_envelope(data).signed_part) :]
    )
    with pytest.raises(IntegrityError, match="does not verify"):
        check(spliced)
    with pytest.raises(IntegrityError, match="does not verify"):
        check(data, object_list=OBJECT_LIST + b"!")
    moved = snapshot.seal_snapshot(VAULT_ID, bytes(16), publics, PAYLOAD, OBJECT_LIST, signer)
    block = data[len(snapshot.parse_envelope(data).signed_part) :]
    with pytest.raises(IntegrityError, match="does not verify"):
        check(snapshot.parse_envelope(moved).signed_part + block)


def test_signers_the_vault_does_not_accept_are_refused() -> None:
    data = vector()
    with pytest.raises(IntegrityError, match="neither a service principal"):
        check(data, Acceptance(frozenset()))
    assert check(data, Acceptance(frozenset({SIGNER_FP}))) == "the admin key"
    user = Acceptance.of((), [FakePrincipal("alice", "user", SIGNER_FP)])  # type: ignore[list-item]
    with pytest.raises(IntegrityError, match="neither"):
        check(data, user)
    removed_after = Acceptance.of((), [FakePrincipal("job", "service", SIGNER_FP, WHEN + timedelta(1))])  # type: ignore[list-item]
    assert check(data, removed_after) == "service principal job"  # written before its removal
    removed_before = Acceptance.of((), [FakePrincipal("job", "service", SIGNER_FP, WHEN)])  # type: ignore[list-item]
    with pytest.raises(IntegrityError, match="neither"):
        check(data, removed_before)
    expiring = FakePrincipal("job", "service", SIGNER_FP, None, WHEN.date())
    assert check(data, Acceptance.of((), [expiring])) == "service principal job"  # type: ignore[list-item]
    expired = FakePrincipal("job", "service", SIGNER_FP, None, (WHEN - timedelta(1)).date())
    with pytest.raises(IntegrityError, match="neither"):
        check(data, Acceptance.of((), [expired]))  # type: ignore[list-item]


def test_caps_are_checked_before_allocation() -> None:
    header = snapshot.HEADER.pack(b"MLVB", 2, VAULT_ID, SNAPSHOT_ID, 17)
    with pytest.raises(IntegrityError, match="stanzas"):
        snapshot.parse_envelope(header + bytes(4096))
    for version in (1, 3):  # version 1 had no signature block
        with pytest.raises(IntegrityError, match="version"):
            snapshot.parse_envelope(
                snapshot.HEADER.pack(b"MLVB", version, VAULT_ID, SNAPSHOT_ID, 1) + bytes(200)
            )
    part = unsigned_part()
    for block in (b"\x02", b"\x01\xff\xff", b"\x01\x00\x05" + bytes(5) + b"\xff", b"\x00\x00"):
        with pytest.raises(IntegrityError):
            snapshot.parse_envelope(part + block)


def test_object_list_round_trip_and_damage() -> None:
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
