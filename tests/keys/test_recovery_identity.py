"""A recovery identity the vault generates and keeps sealed under the owner key (``MLVR``).

The format: a known-answer vector, every flipped byte and truncation refused, objects swapped with
the owner identity or another slot refused. The commands: ``keys add-recovery --generate`` and
``keys export-recovery`` write an identity file that opens the vault by itself.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keyhelpers import CHEAP_KDF, PASSPHRASE
from test_cli_keys import FAST_KDF, PW, clean_environment, fails, ok, run, slots, vault_dir  # noqa: F401

import vault
from vault import layout
from vault.clientstate import ClientState
from vault.errors import IntegrityError, NotFoundError
from vault.keys import owner_identity, recovery
from vault.storage.memory import MemoryBackend

VAULT_ID = bytes(range(16))
OWNER_KEY = bytes(range(32, 64))
SLOT_ID = bytes(range(200, 216))
NONCE = bytes(range(100, 112))
X_PRIVATE = bytes(range(1, 33))
P256_SCALAR = 0x1F2E3D4C5B6A798897A6B5C4D3E2F10112233445566778899AABBCCDDEEFF001
VECTOR_SHA256 = "cc3aa60455d1825c4a8b3e680a4cd35d8671b2c8bf984990e643b61f7df99384"
VECTOR_HEADER = (
    "4d4c5652"  # "MLVR"
    "01"
    "01"
    "0000"
    "000102030405060708090a0b0c0d0e0f"  # version, suite, reserved, vault id
    "c8c9cacbcccdcecfd0d1d2d3d4d5d6d7"  # slot id
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
    return recovery._seal_from_parts(VAULT_ID, OWNER_KEY, SLOT_ID, secret(), nonce=NONCE)


def test_known_answer_vector() -> None:
    data = vector()
    assert data[: recovery.HEADER.size].hex() == VECTOR_HEADER
    assert hashlib.sha256(data).hexdigest() == VECTOR_SHA256
    identity = recovery.open_object(data, VAULT_ID, OWNER_KEY, SLOT_ID.hex())
    assert identity.name == "recovery"
    assert owner_identity.encode_secret(identity) == secret()


def test_every_flipped_byte_and_truncation_is_refused() -> None:
    data = vector()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            recovery.open_object(bytes(bad), VAULT_ID, OWNER_KEY, SLOT_ID.hex())
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            recovery.open_object(data[:n], VAULT_ID, OWNER_KEY, SLOT_ID.hex())
    with pytest.raises(IntegrityError, match="trailing"):
        recovery.open_object(data + b"\0", VAULT_ID, OWNER_KEY, SLOT_ID.hex())
    huge = recovery.HEADER.pack(b"MLVR", 1, 1, 0, VAULT_ID, SLOT_ID, NONCE, 0xFFFFFFFF)
    with pytest.raises(IntegrityError, match="impossible length"):
        recovery.open_object(huge, VAULT_ID, OWNER_KEY, SLOT_ID.hex())


def test_another_vault_slot_or_owner_key_is_refused() -> None:
    data = vector()
    with pytest.raises(IntegrityError, match="another vault"):
        recovery.open_object(data, bytes(16), OWNER_KEY, SLOT_ID.hex())
    with pytest.raises(IntegrityError, match="another slot"):
        recovery.open_object(data, VAULT_ID, OWNER_KEY, bytes(16).hex())
    with pytest.raises(IntegrityError, match="does not open"):
        recovery.open_object(data, VAULT_ID, bytes(32), SLOT_ID.hex())


def test_swapping_with_the_owner_identity_is_refused() -> None:
    backend = MemoryBackend()
    owner = owner_identity.create(backend, VAULT_ID, OWNER_KEY)
    slot = SLOT_ID.hex()
    recovery.store(backend, VAULT_ID, OWNER_KEY, slot, recovery.generate())
    owner_key_name = owner_identity.storage_key(VAULT_ID, OWNER_KEY)
    owner_bytes = backend.get(owner_key_name)
    recovery_bytes = backend.get(layout.recovery_identity_key(slot))
    assert recovery.load(backend, VAULT_ID, OWNER_KEY, slot).public != owner.public
    backend.delete(owner_key_name)
    backend.delete(layout.recovery_identity_key(slot))
    backend.put(owner_key_name, recovery_bytes)
    backend.put(layout.recovery_identity_key(slot), owner_bytes)
    with pytest.raises(IntegrityError):
        owner_identity.load(backend, VAULT_ID, OWNER_KEY)
    with pytest.raises(IntegrityError, match="unknown magic"):
        recovery.load(backend, VAULT_ID, OWNER_KEY, slot)
    # Even with the magic rewritten, the HKDF info differs: the AEAD refuses it.
    relabelled = b"MLVR" + owner_bytes[4:24] + SLOT_ID + owner_bytes[40:]
    with pytest.raises(IntegrityError, match="does not open"):
        recovery.open_object(relabelled, VAULT_ID, OWNER_KEY, slot)


def test_generated_recovery_opens_the_vault_and_goes_with_its_slot(tmp_path: Path) -> None:
    with vault.init_vault(str(tmp_path / "v"), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        slot_id = v.add_recovery(None, label="offsite")
        chosen, identity = v.kept_recovery()
        assert chosen == slot_id
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert (info.kind, info.opens, info.label) == ("x25519", "owner", "offsite")
        assert info.recipient == identity.public.fingerprint
    with vault.open_vault(str(tmp_path / "v"), identity=lambda: identity) as v:
        assert v.keys.owner_key()
        v.remove_slot(slot_id)
        assert not v.backend.exists(layout.recovery_identity_key(slot_id))
        with pytest.raises(NotFoundError, match="keeps no recovery identity"):
            v.kept_recovery()


def test_cli_generate_and_export(vault_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    base = ("--vault", str(vault_dir))
    fails(run("keys", "add-recovery", *base, env=PW), 2, "either a public identity file or --generate")
    fails(
        run("keys", "export-recovery", "--out", str(tmp_path / "r.id"), *base, env=PW), 3, "keeps no recovery"
    )
    out = ok(run("keys", "add-recovery", "--generate", *base, env=PW)).stdout
    assert "kept sealed under the owner key" in out
    recovery_slot = next(r["slot_id"] for r in slots(vault_dir) if r["kind"] == "x25519")
    plain = tmp_path / "plain.id"
    ok(run("keys", "export-recovery", "--out", str(plain), "--no-passphrase", *base, env=PW))
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o600
    fails(run("keys", "export-recovery", "--out", str(plain), "--no-passphrase", *base, env=PW), 6, "exists")
    # The exported file alone opens the vault (its slot opens the owner key): pull with it.
    ok(run("pull", "team/model", str(tmp_path / "p"), *base, "--identity", str(plain)))
    assert (tmp_path / "p" / "f").read_bytes() == b"model bytes"
    sealed = tmp_path / "sealed.id"
    env = {**PW, "MLVAULT_IDENTITY_PASSPHRASE": "offline secret"}
    ok(run("keys", "export-recovery", recovery_slot, "--out", str(sealed), *FAST_KDF, *base, env=env))
    ids = ClientState.default().identities()
    assert ids.encrypted(str(sealed)) and not ids.encrypted(str(plain))
    assert ids.public_of(str(sealed)) == ids.public_of(str(plain))
    fails(
        run("keys", "export-recovery", "zz", "--out", str(tmp_path / "x.id"), *base, env=PW),
        2,
        "invalid slot",
    )
    # A bad slot id is refused before anything is written.
    assert not (tmp_path / "x.id").exists()
