r"""Signing keys: ECDSA P-256 generation, key files, public keys, fingerprints.

Two names for one public key, used in different places:

* **fingerprint**: SHA-256 of the DER ``SubjectPublicKeyInfo``, lowercase hex. This is what trust
  policies list and what clients pin.
* **hint**: SHA-256 of the PEM ``SubjectPublicKeyInfo``, lowercase hex. This is what
  ``model-signing`` writes into ``verificationMaterial.publicKey.hint``; it only selects a key and
  is never trusted on its own.

Private key files come in two forms, told apart by their first bytes:

* **Unencrypted**: standard unencrypted PKCS#8 PEM, created with mode 0600.
  It is the form unattended jobs use, and ``model_signing sign key`` can read it too.
* **Encrypted**: a small self-describing binary format (all integers big-endian)::

      magic   8 bytes   b"MLVSKEY\x00"
      version 1 byte    1
      suite   1 byte    1 = Argon2id + AES-256-GCM
      t_cost  4 bytes   Argon2id iterations
      m_cost  4 bytes   Argon2id memory in KiB
      lanes   1 byte    Argon2id parallelism
      salt    16 bytes
      nonce   12 bytes
      ct_len  2 bytes   length of what follows
      ct      ct_len    AES-256-GCM(PKCS#8 DER of the private key) with the 16-byte tag

  The key-encryption key is Argon2id(passphrase, salt, t_cost, m_cost, lanes) → 32 bytes; the
  AAD is everything before ``ct``, so no header byte can be changed without detection. KDF
  parameters are stored in the file and are bounded on read (``KdfParams.check``), so a hostile file
  cannot make us allocate unbounded memory or spin for hours. A failed AEAD open — wrong
  passphrase or a corrupt file, which cannot be told apart — is one ``AuthenticationError``.

KDF parameters are always passed in explicitly (``KdfParams``); nothing here reads the environment.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto.kdf import KdfParams as KdfParams  # re-exported: key files take the same parameters
from vault.crypto.kdf import stretch
from vault.errors import AuthenticationError, ConfigurationError, IntegrityError, NotFoundError, UsageError

KEY_FILE_MAGIC = b"MLVSKEY\x00"
KEY_FILE_VERSION = 1
SUITE_ARGON2ID_AES256GCM = 1
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_PUBLIC_KEY_FILE_BYTES = 64 * 1024
_HEADER = struct.Struct(">8sBBIIB16s12sH")
_SALT_LEN = 16
_NONCE_LEN = 12
_MAX_CT_LEN = 4096


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """Generate a new ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """PEM ``SubjectPublicKeyInfo`` of a public key."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER ``SubjectPublicKeyInfo``, lowercase hex."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """Compute the ``model-signing`` key hint: SHA-256 of the PEM ``SubjectPublicKeyInfo``, lowercase hex."""
    return hashlib.sha256(public_key_pem(key)).hexdigest()


def require_p256(key: object, what: str) -> ec.EllipticCurvePublicKey:
    """Return ``key`` if it is a P-256 public key, else raise ``UsageError``."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UsageError(f"{what} is not an ECDSA P-256 public key; mlvault signs with P-256 only")
    return key


def load_public_key_pem(data: bytes, what: str = "public key") -> ec.EllipticCurvePublicKey:
    """Parse a PEM ``SubjectPublicKeyInfo`` holding a P-256 key."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{what} is not a PEM public key") from exc
    return require_p256(key, what)


def read_public_key_file(path: Path | str) -> ec.EllipticCurvePublicKey:
    """Read a PEM public key file (size-capped)."""
    return load_public_key_pem(_read_capped(Path(path), MAX_PUBLIC_KEY_FILE_BYTES), f"key file {path}")


def read_public_key_pem(path: Path | str) -> bytes:
    """The public key in a PEM file, checked to be P-256 and re-encoded canonically."""
    return public_key_pem(read_public_key_file(path))


def save_private_key(
    key: ec.EllipticCurvePrivateKey,
    path: Path | str,
    *,
    passphrase: bytes | None,
    kdf: KdfParams | None = None,
) -> None:
    """Write ``key`` to a new file (mode 0600): encrypted if a passphrase is given, else PKCS#8 PEM."""
    if passphrase is None:
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        if kdf is None:
            raise UsageError("KDF parameters are needed to encrypt a key file")
        data = encrypt_private_key(key, passphrase, kdf)
    _write_new_file(Path(path), data)


def is_encrypted_key_file(path: Path | str) -> bool:
    """Whether the private key file at ``path`` is in the encrypted (passphrase) form."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(KEY_FILE_MAGIC)) == KEY_FILE_MAGIC
    except FileNotFoundError as exc:
        raise NotFoundError(f"key file not found: {path}") from exc


def load_private_key(path: Path | str, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """Read a private key file of either form; ``AuthenticationError`` on a wrong passphrase."""
    data = _read_capped(Path(path), MAX_KEY_FILE_BYTES)
    return decode_private_key(data, passphrase, what=f"key file {path}")


def decode_private_key(
    data: bytes, passphrase: bytes | None, *, what: str = "key file"
) -> ec.EllipticCurvePrivateKey:
    """Decode key-file bytes of either form."""
    if data.startswith(KEY_FILE_MAGIC):
        if passphrase is None:
            raise AuthenticationError(f"{what} is encrypted: a passphrase is needed")
        return decrypt_private_key(data, passphrase)
    if data.lstrip().startswith(b"-----BEGIN "):  # PEM: cryptography decides what kind
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError as exc:  # a passphrase-protected PEM: not a format mlvault writes
            raise UsageError(
                f"{what} is an encrypted PEM key; use `mlvault key new` or an unencrypted PKCS#8 key"
            ) from exc
        except ValueError as exc:
            raise IntegrityError(f"{what} is not a valid PEM private key") from exc
        return _require_p256_private(key, what)
    raise UsageError(f"{what} is not an mlvault key file nor an unencrypted PKCS#8 PEM key")


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes, kdf: KdfParams) -> bytes:
    """Encrypt a private key into the mlvault key-file format with fresh salt and nonce."""
    return _encrypt_from_parts(
        _private_der(key), passphrase, kdf, salt=os.urandom(_SALT_LEN), nonce=os.urandom(_NONCE_LEN)
    )


def decrypt_private_key(data: bytes, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """Decrypt an mlvault key file (bytes)."""
    if len(data) < _HEADER.size:
        raise IntegrityError("key file is truncated")
    magic, version, suite, t_cost, m_cost, lanes, salt, nonce, ct_len = _HEADER.unpack_from(data)
    if magic != KEY_FILE_MAGIC:
        raise UsageError("not an mlvault key file")
    if version != KEY_FILE_VERSION:
        raise ConfigurationError(f"key file version {version} is not supported (this mlvault reads 1)")
    if suite != SUITE_ARGON2ID_AES256GCM:
        raise ConfigurationError(f"key file suite {suite} is not supported")
    params = KdfParams(time_cost=t_cost, memory_kib=m_cost, parallelism=lanes).check()
    if ct_len > _MAX_CT_LEN or len(data) != _HEADER.size + ct_len:
        raise IntegrityError("key file is truncated or has trailing data")
    kek = _derive_kek(passphrase, salt, params)
    try:
        der = AESGCM(kek).decrypt(nonce, data[_HEADER.size :], data[: _HEADER.size])
    except InvalidTag as exc:
        raise AuthenticationError("wrong passphrase for the key file, or the key file is corrupt") from exc
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError as exc:
        raise IntegrityError("key file holds a corrupt private key") from exc
    return _require_p256_private(key, "key file")


def _encrypt_from_parts(der: bytes, passphrase: bytes, kdf: KdfParams, *, salt: bytes, nonce: bytes) -> bytes:
    """Encrypt with explicit salt and nonce (known-answer tests only; callers use fresh randomness)."""
    kdf.check()
    if len(salt) != _SALT_LEN or len(nonce) != _NONCE_LEN:
        raise UsageError("salt must be 16 bytes and nonce 12 bytes")
    ct_len = len(der) + 16
    if ct_len > _MAX_CT_LEN:
        raise UsageError("private key too large for the key file format")
    header = _HEADER.pack(
        KEY_FILE_MAGIC,
        KEY_FILE_VERSION,
        SUITE_ARGON2ID_AES256GCM,
        kdf.time_cost,
        kdf.memory_kib,
        kdf.parallelism,
        salt,
        nonce,
        ct_len,
    )
    return header + AESGCM(_derive_kek(passphrase, salt, kdf)).encrypt(nonce, der, header)


def _derive_kek(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return stretch(passphrase, salt, params)


def _private_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _require_p256_private(key: object, what: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UsageError(f"{what} does not hold an ECDSA P-256 private key")
    return key


def _read_capped(path: Path, cap: int) -> bytes:
    """Read a small file, refusing it from its size before reading when it exceeds ``cap``."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > cap:
                raise UsageError(f"{path} is {size} bytes, larger than the {cap}-byte limit for key files")
            data = fh.read(cap + 1)
    except FileNotFoundError as exc:
        raise NotFoundError(f"key file not found: {path}") from exc
    if len(data) > cap:
        raise UsageError(f"{path} is larger than the {cap}-byte limit for key files")
    return data


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 atomically; refuse to overwrite an existing file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise UsageError(f"{path} already exists; choose another path or remove it first") from exc
    finally:
        tmp.unlink(missing_ok=True)
