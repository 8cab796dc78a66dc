"""Key files: known-answer vector, round trips, wrong passphrase, flips, truncation, hostile params."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import AuthenticationError, ConfigurationError, IntegrityError, NotFoundError, UsageError
from vault.signing import keys

CHEAP = keys.KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = b"correct horse battery staple"
FIXED_KEY = ec.derive_private_key(
    0x1F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A7988, ec.SECP256R1()
)
KAT_SALT = bytes(range(16))
KAT_NONCE = bytes(range(100, 112))
KAT_FILE = bytes.fromhex(
    "4d4c56534b4559000101000000010000000801000102030405060708090a0b0c0d0e0f6465666768696a6b6c6d6e6f009a"
    "e252a94a9f1168d1b566d5053c464f7dadaf3a6f80d58e60ac31767d5608f7a260ded5f0f43536eb8e8c9d1310b3d56a0f"
    "37343a7fc789e9b15196254123a4f480146c8d823a08b2c3fdd76be8917e451a280311118a086fb2a6417dd59e70b9f148"
    "c57bd879d3c1e170cd4369afa1c0996016776698c910f024dbf47bc850871a0d49b4dac1973acd1b77ed21c8523f46f981"
    "d5ab7e8eb54816"
)
HEADER_LEN = 49  # magic 8, version 1, suite 1, t 4, m 4, p 1, salt 16, nonce 12, ct_len 2


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _same_key(a: ec.EllipticCurvePrivateKey, b: ec.EllipticCurvePrivateKey) -> bool:
    return a.private_numbers() == b.private_numbers()


def test_known_answer_vector_is_produced_exactly() -> None:
    produced = keys._encrypt_from_parts(_der(FIXED_KEY), PASSPHRASE, CHEAP, salt=KAT_SALT, nonce=KAT_NONCE)
    assert produced == KAT_FILE


def test_known_answer_vector_decrypts_with_the_documented_layout_and_primitives() -> None:
    """Decode the vector with argon2 + AES-GCM directly, from the layout in the keys docstring."""
    header, ciphertext = KAT_FILE[:HEADER_LEN], KAT_FILE[HEADER_LEN:]
    assert header[:8] == b"MLVSKEY\x00" and header[8] == 1 and header[9] == 1
    assert int.from_bytes(header[10:14], "big") == 1 and int.from_bytes(header[14:18], "big") == 8
    assert header[18] == 1 and header[19:35] == KAT_SALT and header[35:47] == KAT_NONCE
    assert int.from_bytes(header[47:49], "big") == len(ciphertext)
    kek = hash_secret_raw(
        PASSPHRASE, KAT_SALT, time_cost=1, memory_cost=8, parallelism=1, hash_len=32, type=Type.ID
    )
    assert AESGCM(kek).decrypt(KAT_NONCE, ciphertext, header) == _der(FIXED_KEY)
    assert _same_key(keys.decrypt_private_key(KAT_FILE, PASSPHRASE), FIXED_KEY)


def test_fingerprint_and_hint_known_answers() -> None:
    public = FIXED_KEY.public_key()
    assert keys.fingerprint(public) == "b8eab36a13db6ca186977925af75c7e983a1d83035ccb3f2db6c08edd25c6a86"
    assert keys.key_hint(public) == "64cd5d2995b462dc7d7a7ae24f126df054f6111e2115bd24e648ac23108a017c"


def test_encrypted_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = keys.generate_private_key()
    path = tmp_path / "id.key"
    keys.save_private_key(key, path, passphrase=PASSPHRASE, kdf=CHEAP)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"MLVSKEY\x00")
    assert _same_key(keys.load_private_key(path, PASSPHRASE), key)


def test_unencrypted_key_is_pkcs8_pem_with_mode_0600(tmp_path: Path) -> None:
    key = keys.generate_private_key()
    path = tmp_path / "ci.pem"
    keys.save_private_key(key, path, passphrase=None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _same_key(keys.load_private_key(path, None), key)


def test_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    path.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        keys.save_private_key(keys.generate_private_key(), path, passphrase=None)
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["id.key"]


def test_wrong_passphrase_is_an_authentication_error(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    keys.save_private_key(keys.generate_private_key(), path, passphrase=PASSPHRASE, kdf=CHEAP)
    with pytest.raises(AuthenticationError, match="wrong passphrase"):
        keys.load_private_key(path, b"Tr0ub4dor&3")
    with pytest.raises(AuthenticationError, match="passphrase is needed"):
        keys.load_private_key(path, None)


@pytest.mark.parametrize("offset", [10, 14, 18, 20, 40, HEADER_LEN, HEADER_LEN + 50, len(KAT_FILE) - 1])
def test_any_flipped_bit_after_the_magic_is_refused(offset: int) -> None:
    """Header bytes are AAD (or change the KDF output); ciphertext and tag are authenticated."""
    tampered = bytearray(KAT_FILE)
    tampered[offset] ^= 0x01
    with pytest.raises((AuthenticationError, ConfigurationError)):
        keys.decrypt_private_key(bytes(tampered), PASSPHRASE)


@pytest.mark.parametrize(
    ("offset", "error"),
    [(0, UsageError), (8, ConfigurationError), (9, ConfigurationError), (48, IntegrityError)],
)
def test_flipped_structure_bytes_have_clear_errors(offset: int, error: type[Exception]) -> None:
    tampered = bytearray(KAT_FILE)
    tampered[offset] ^= 0x02
    with pytest.raises(error):
        keys.decrypt_private_key(bytes(tampered), PASSPHRASE)


@pytest.mark.parametrize("length", [0, 8, HEADER_LEN - 1, HEADER_LEN, len(KAT_FILE) - 1])
def test_truncated_key_file_is_an_integrity_error(length: int) -> None:
    with pytest.raises((IntegrityError, UsageError)) as info:
        keys.decrypt_private_key(KAT_FILE[:length], PASSPHRASE)
    assert "truncated" in str(info.value) or "not an mlvault key file" in str(info.value)


def test_trailing_data_is_refused() -> None:
    with pytest.raises(IntegrityError, match="trailing data"):
        keys.decrypt_private_key(KAT_FILE + b"\x00", PASSPHRASE)


def test_hostile_kdf_parameters_are_refused_before_running_the_kdf() -> None:
    hostile = bytearray(KAT_FILE)
    hostile[14:18] = (100 * 1024 * 1024).to_bytes(4, "big")  # 100 GiB of Argon2 memory
    started = time.perf_counter()
    with pytest.raises(ConfigurationError, match="outside"):
        keys.decrypt_private_key(bytes(hostile), PASSPHRASE)
    assert time.perf_counter() - started < 0.5


def test_recommended_parameters_are_within_the_caps() -> None:
    default = keys.KdfParams()
    assert default == keys.KdfParams(time_cost=3, memory_kib=64 * 1024, parallelism=4)  # RFC 9106 low-memory
    assert default.check() is default and not default.is_weak


def test_public_key_helpers(tmp_path: Path) -> None:
    public_path = tmp_path / "k.pub"
    public_path.write_bytes(keys.public_key_pem(FIXED_KEY.public_key()))
    assert keys.fingerprint(keys.read_public_key_file(public_path)) == keys.fingerprint(
        FIXED_KEY.public_key()
    )
    with pytest.raises(NotFoundError):
        keys.read_public_key_file(tmp_path / "missing.pub")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    public_path.write_bytes(keys.public_key_pem(p384))
    with pytest.raises(UsageError, match="P-256"):
        keys.read_public_key_file(public_path)
    big = tmp_path / "big.pub"
    big.write_bytes(b"x" * (keys.MAX_PUBLIC_KEY_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="limit"):
        keys.read_public_key_file(big)


def test_key_made_by_model_signing_tooling_loads(tmp_path: Path) -> None:
    """A plain PKCS#8 PEM (what openssl and model-signing use) is accepted as an unencrypted key."""
    path = tmp_path / "plain.pem"
    path.write_bytes(
        FIXED_KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert _same_key(keys.load_private_key(path, None), FIXED_KEY)


def test_pem_files_other_than_unencrypted_pkcs8_are_refused_clearly() -> None:
    key = keys.generate_private_key()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(UsageError, match="encrypted PEM"):
        keys.decode_private_key(encrypted, None)
    public_pem = keys.public_key_pem(key.public_key())
    with pytest.raises(IntegrityError, match="not a valid PEM private key"):
        keys.decode_private_key(public_pem, None)
