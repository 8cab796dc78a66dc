"""The sealed owner identity (``MLVO``): a known-answer vector, and every byte flipped, every
truncation, trailing data, a huge length and objects spliced from another vault or owner key refused
as IntegrityError (exit 5) before anything is allocated or decrypted."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault import layout
from vault.errors import IntegrityError
from vault.keys import owner_identity
from vault.storage.memory import MemoryBackend

VAULT_ID = bytes(range(16))
OWNER_KEY = bytes(range(32, 64))
NONCE = bytes(range(100, 112))
X_PRIVATE = bytes(range(1, 33))
P256_SCALAR = 0x1F2E3D4C5B6A798897A6B5C4D3E2F10112233445566778899AABBCCDDEEFF001

# SHA-256 of the vector below; the header is spelled out so a change to the layout shows where.
VECTOR_SHA256 = "e48e61322b5cbe4db3da22998fcc645fb6c9664f375c766394c4e15de4051b9d"
VECTOR_HEADER = (
    "4d4c564f"
    "01"
    "01"
    "0000"
    "000102030405060708090a0b0c0d0e0f"  # magic, version, suite, reserved, vault id
    "4c522c34b4332782bbf2c552778a2fd6"  # object id = HKDF(owner key, vault id, name label)[:16]
    "6465666768696a6b6c6d6e6f"
    "000000ba"  # nonce, ciphertext length (170)
)


def secret() -> bytes:
    e_key = ec.derive_private_key(P256_SCALAR, ec.SECP256R1())
    der = e_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return X_PRIVATE + der


def vector() -> bytes:
    return owner_identity._seal_from_parts(VAULT_ID, OWNER_KEY, secret(), nonce=NONCE)


def test_known_answer_vector() -> None:
    data = vector()
    assert data[: owner_identity.HEADER.size].hex() == VECTOR_HEADER
    assert hashlib.sha256(data).hexdigest() == VECTOR_SHA256
    identity = owner_identity.open_object(data, VAULT_ID, OWNER_KEY)
    assert identity.name == "owner"
    assert (
        identity.public.x25519_public
        == X25519PrivateKey.from_private_bytes(X_PRIVATE).public_key().public_bytes_raw()
    )
    assert owner_identity.encode_secret(identity) == secret()


def test_round_trip_through_storage_and_one_name_per_owner_key() -> None:
    backend = MemoryBackend()
    made = owner_identity.create(backend, VAULT_ID, OWNER_KEY)
    again = owner_identity.create(backend, VAULT_ID, OWNER_KEY)  # a racing creator loads the winner's
    assert again.public == made.public
    loaded = owner_identity.load(backend, VAULT_ID, OWNER_KEY)
    assert loaded is not None and loaded.public == made.public
    (key,) = backend.list(layout.OWNER_IDENTITY_PREFIX)
    assert layout.parse_owner_identity_key(key) == owner_identity.object_id(VAULT_ID, OWNER_KEY).hex()
    assert owner_identity.load(backend, VAULT_ID, bytes(32)) is None  # another owner key: another name


def test_every_flipped_byte_is_refused() -> None:
    data = vector()
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(IntegrityError):
                owner_identity.open_object(bytes(bad), VAULT_ID, OWNER_KEY)


def test_every_truncation_and_trailing_data_are_refused() -> None:
    data = vector()
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            owner_identity.open_object(data[:n], VAULT_ID, OWNER_KEY)
    with pytest.raises(IntegrityError, match="trailing"):
        owner_identity.open_object(data + b"\0", VAULT_ID, OWNER_KEY)


def test_a_huge_length_is_refused_before_anything_else() -> None:
    header = owner_identity.HEADER.pack(
        b"MLVO", 1, 1, 0, VAULT_ID, owner_identity.object_id(VAULT_ID, OWNER_KEY), NONCE, 0xFFFFFFFF
    )
    with pytest.raises(IntegrityError, match="impossible length"):
        owner_identity.open_object(header, VAULT_ID, OWNER_KEY)


def test_unknown_version_or_suite_is_tampering() -> None:
    data = bytearray(vector())
    for offset, value in ((4, 2), (5, 2), (6, 1)):
        bad = bytearray(data)
        bad[offset] = value
        with pytest.raises(IntegrityError, match="unknown magic, version or suite"):
            owner_identity.open_object(bytes(bad), VAULT_ID, OWNER_KEY)


def test_spliced_from_another_vault_or_owner_key_is_refused() -> None:
    data = vector()
    with pytest.raises(IntegrityError, match="another vault"):
        owner_identity.open_object(data, bytes(16), OWNER_KEY)
    with pytest.raises(IntegrityError, match="another name"):
        owner_identity.open_object(data, VAULT_ID, bytes(32))
    # Re-labelled for another vault (header rewritten): the AEAD still refuses it.
    header = owner_identity.HEADER
    fields = list(header.unpack_from(data))
    fields[4] = bytes(16)
    fields[5] = owner_identity.object_id(bytes(16), OWNER_KEY)
    relabelled = header.pack(*fields) + data[header.size :]
    with pytest.raises(IntegrityError, match="does not open"):
        owner_identity.open_object(relabelled, bytes(16), OWNER_KEY)


def test_a_secret_that_is_not_an_identity_is_refused() -> None:
    for bad in (bytes(owner_identity.MIN_SECRET), X_PRIVATE + b"\x30" * 80):
        data = owner_identity._seal_from_parts(VAULT_ID, OWNER_KEY, bad, nonce=NONCE)
        with pytest.raises(IntegrityError, match=r"corrupt private key|P-256"):
            owner_identity.open_object(data, VAULT_ID, OWNER_KEY)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    data = owner_identity._seal_from_parts(VAULT_ID, OWNER_KEY, X_PRIVATE + p384, nonce=NONCE)
    with pytest.raises(IntegrityError, match="P-256"):
        owner_identity.open_object(data, VAULT_ID, OWNER_KEY)
    assert struct.calcsize(">4sBBH16s16s12sI") == owner_identity.HEADER.size == 56
