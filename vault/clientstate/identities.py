r"""Identities: an X25519 key pair (to open key slots) and an ECDSA P-256 key pair (to sign).

They live in the client's config directory, ``identities/NAME.id`` (the secret) and
``identities/NAME.pub`` (the public half, exactly what ``mlvault identity export NAME --public``
prints, for ``keys add-recipient alice.pub``).

**An identity is not a signing key.** ``keys/NAME.key`` (:mod:`vault.clientstate.signing_keys`) holds
one ECDSA key and nothing else; ``mlvault key new`` keeps making those, for signing-only uses (a
release signer, a CI signer). An identity *contains* a signing key, next to the X25519 key that
opens key slots wrapped to it, so one principal has one file and one passphrase. Wherever a
signing key name is accepted (``sign --key NAME``) an identity name may be accepted as well
(``Identity.ecdsa_private`` is an ordinary P-256 key); the two never share a file or a format.

**The public file** is UTF-8 JSON of at most :data:`MAX_PUBLIC_BYTES`, read strictly (exact keys,
exact types, no duplicates, canonical encodings)::

    {"format": "mlvault-identity", "version": 1, "name": "alice",
     "x25519": "<64 lowercase hex: the raw 32-byte public key>",
     "ecdsa_p256": "<base64 of the DER SubjectPublicKeyInfo>"}

Its fingerprint is the lowercase hex SHA-256 of the raw X25519 public key — the value an
``x25519`` key slot stores (:func:`vault.crypto.recipient.fingerprint`). Malformed public files
are ``UsageError`` (they are input handed to us; nothing authenticates them), a version other
than 1 is ``ConfigurationError``.

**The secret file** uses the signing-key scheme of :mod:`vault.signing.keys` (Argon2id with the
parameters stored in the header, AES-256-GCM, the header as AAD, one opaque
``AuthenticationError`` for a wrong passphrase or a changed byte) under its own magic, so an
identity is never mistaken for a signing key file. All integers big-endian::

    magic    8   b"MLVIDNT\x00"
    version  1   1
    suite    1   0 = unencrypted (file mode 0600, for unattended jobs), 1 = Argon2id + AES-256-GCM
    t_cost   4   \
    m_cost   4    | Argon2id parameters, salt and nonce; all zero when suite is 0
    lanes    1    |
    salt     16   |
    nonce    12  /
    pub_len  2   length of the public document
    body_len 2   length of the body
    public   pub_len   the public file, byte for byte
    body     body_len  suite 1: AES-256-GCM(secret) with its tag, AAD = every byte before it;
                       suite 0: the secret itself
    secret = X25519 raw private key (32 bytes) ‖ PKCS#8 DER of the P-256 private key

Keeping the public document inside the secret file makes ``NAME.id`` (or any file given to
``--identity FILE``) self-sufficient: listing needs no passphrase and no ``.pub``, and loading
checks that the decrypted keys are the ones the public document names (``IntegrityError`` if not).

Files are created atomically (temp file, fsync, link — an existing name is never overwritten),
secret files with mode 0600 in a 0700 directory; reads are size-capped and never follow a
symbolic link to a secret file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.crypto import aead
from vault.crypto.kdf import KdfParams, stretch
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DecryptionError,
    DestinationExistsError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from vault.signing import keys

PUBLIC_FORMAT = "mlvault-identity"
PUBLIC_VERSION = 1
MAX_PUBLIC_BYTES = 8 * 1024
MAX_SECRET_FILE_BYTES = 16 * 1024
SECRET_MAGIC = b"MLVIDNT\x00"
SECRET_VERSION = 1
SUITE_NONE = 0
SUITE_ARGON2ID_AES256GCM = 1

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_HEADER = struct.Struct(">8sBBIIB16s12sHH")
_SALT_LEN = 16
_NONCE_LEN = 12
_X25519_LEN = 32
_MAX_BODY = 4096
_PUBLIC_KEYS = ("format", "version", "name", "x25519", "ecdsa_p256")

PassphraseSource = Callable[[], bytes]


def check_identity_name(name: str) -> str:
    """Return ``name`` if it can name an identity (the signing-key name grammar), else ``UsageError``."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid identity name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)"
        )
    return name


@dataclass(frozen=True)
class PublicIdentity:
    """The public half of an identity: what others wrap keyrings to and check signatures with."""

    name: str
    x25519_public: bytes
    ecdsa_public_der: bytes
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.x25519_public) != _X25519_LEN:
            raise UsageError("an X25519 public key is 32 bytes")
        object.__setattr__(self, "fingerprint", hashlib.sha256(self.x25519_public).hexdigest())

    @property
    def signing_fingerprint(self) -> str:
        """Fingerprint of the signing key, as :func:`vault.signing.keys.fingerprint` computes it."""
        return hashlib.sha256(self.ecdsa_public_der).hexdigest()

    def ecdsa_public_key(self) -> ec.EllipticCurvePublicKey:
        """The signing key as a key object."""
        return keys.require_p256(serialization.load_der_public_key(self.ecdsa_public_der), "identity")

    def encode(self) -> bytes:
        """The public identity file (UTF-8 JSON, newline-terminated)."""
        doc = {
            "format": PUBLIC_FORMAT,
            "version": PUBLIC_VERSION,
            "name": self.name,
            "x25519": self.x25519_public.hex(),
            "ecdsa_p256": base64.b64encode(self.ecdsa_public_der).decode("ascii"),
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, what: str = "public identity") -> PublicIdentity:
        """Parse a public identity file strictly; ``UsageError`` on anything malformed."""
        if len(data) > MAX_PUBLIC_BYTES:
            raise UsageError(f"{what} is larger than {MAX_PUBLIC_BYTES // 1024} KiB")
        try:
            doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{what} is not UTF-8 JSON") from exc
        if not isinstance(doc, dict) or set(doc) != set(_PUBLIC_KEYS):
            raise UsageError(f"{what} must hold exactly the fields {', '.join(_PUBLIC_KEYS)}")
        if doc["format"] != PUBLIC_FORMAT:
            raise UsageError(f"{what} is not an mlvault identity (format {doc['format']!r})")
        version = doc["version"]
        if type(version) is not int:
            raise UsageError(f"{what}: version must be an integer")
        if version != PUBLIC_VERSION:
            raise ConfigurationError(f"{what} has version {version}; this mlvault reads version 1")
        name, x25519, ecdsa = doc["name"], doc["x25519"], doc["ecdsa_p256"]
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise UsageError(f"{what}: invalid identity name")
        if not isinstance(x25519, str) or not _HEX64_RE.fullmatch(x25519):
            raise UsageError(f"{what}: x25519 must be 64 lowercase hex digits")
        if not isinstance(ecdsa, str):
            raise UsageError(f"{what}: ecdsa_p256 must be a base64 string")
        return cls(name, bytes.fromhex(x25519), _canonical_spki(ecdsa, what))


@dataclass(frozen=True, eq=False)
class Identity:
    """An identity with its private keys, after the passphrase (if any) opened it."""

    name: str
    x25519_private: X25519PrivateKey = field(repr=False)
    ecdsa_private: ec.EllipticCurvePrivateKey = field(repr=False)
    public: PublicIdentity


class Identities:
    """The identities in ``directory`` (``ClientState.root / "identities"``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def check_available(self, name: str) -> None:
        """``UsageError`` for a bad name, ``DestinationExistsError`` if the name is taken."""
        path = self._secret_path(name)
        if path.exists() or path.is_symlink():
            raise DestinationExistsError(f"identity {name} already exists at {path}; choose another name")

    def create(self, name: str, passphrase: bytes | None, kdf: KdfParams) -> PublicIdentity:
        """Generate identity ``name``, encrypted under ``passphrase`` unless it is None."""
        self.check_available(name)
        x_key = X25519PrivateKey.generate()
        e_key = keys.generate_private_key()
        public = PublicIdentity(name, x_key.public_key().public_bytes_raw(), _spki(e_key.public_key()))
        data = identity_file_bytes(Identity(name, x_key, e_key, public), passphrase, kdf)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._secret_path(name)
        if not _write_atomic(path, data, 0o600, overwrite=False):
            raise DestinationExistsError(f"identity {name} already exists at {path}; choose another name")
        _write_atomic(path.with_suffix(".pub"), public.encode(), 0o644, overwrite=True)
        return public

    def list(self) -> list[PublicIdentity]:
        """Every identity in the directory, sorted by name."""
        if not self.directory.is_dir():
            return []
        names = sorted(p.stem for p in self.directory.glob("*.id") if _NAME_RE.fullmatch(p.stem))
        return [self.public(name) for name in names]

    def public(self, name: str) -> PublicIdentity:
        """The public half of identity ``name`` (no passphrase needed)."""
        return self._read(self._secret_path(name)).public

    def public_of(self, name_or_path: str) -> PublicIdentity:
        """The public half of a named identity or an identity file (no passphrase needed)."""
        return self._read(self.find(name_or_path)).public

    def encrypted(self, name_or_path: str) -> bool:
        """Whether the identity's private keys are passphrase-encrypted."""
        return self._read(self.find(name_or_path)).kdf is not None

    def find(self, name_or_path: str) -> Path:
        """The secret file of a named identity, or else a path to an identity file."""
        if _NAME_RE.fullmatch(name_or_path):
            named = self._secret_path(name_or_path)
            if named.exists() or named.is_symlink():
                return named
        path = Path(name_or_path).expanduser()
        if path.exists() or path.is_symlink():
            return path
        raise NotFoundError(
            f"no identity {name_or_path!r} in {self.directory} "
            f"(create one with `mlvault identity new {name_or_path}`)"
        )

    def load(self, name_or_path: str, passphrase_source: PassphraseSource | None) -> Identity:
        """The identity with its private keys; asks for a passphrase only if the file is encrypted."""
        path = self.find(name_or_path)
        secret = self._read(path)
        source = passphrase_source if secret.kdf is not None else None
        return _open(secret, source() if source else None, f"identity file {path}")

    def _secret_path(self, name: str) -> Path:
        return self.directory / f"{check_identity_name(name)}.id"

    def _read(self, path: Path) -> _SecretFile:
        """Read and check a secret file; one in this directory must hold the identity it is named for."""
        secret = _parse_secret(_read_secret_file(path), f"identity file {path}")
        if path.parent == self.directory and secret.public.name != path.stem:
            raise IntegrityError(
                f"identity file {path} holds identity {secret.public.name!r}, not {path.stem!r}"
            )
        return secret


# -- the secret file ---------------------------------------------------------------------------


def identity_file_bytes(identity: Identity, passphrase: bytes | None, kdf: KdfParams) -> bytes:
    """``identity`` as a secret file (``identity new``'s format), encrypted unless ``passphrase`` is None."""
    if passphrase is not None and not passphrase:
        raise UsageError("the identity passphrase must not be empty (use --no-passphrase instead)")
    secret = identity.x25519_private.private_bytes_raw() + identity.ecdsa_private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(_SALT_LEN), aead.new_nonce()
    return _seal_from_parts(identity.public.encode(), secret, passphrase, kdf, salt=salt, nonce=nonce)


def _seal_from_parts(
    public: bytes, secret: bytes, passphrase: bytes | None, kdf: KdfParams, *, salt: bytes, nonce: bytes
) -> bytes:
    """Build a secret file with explicit salt and nonce (known-answer tests; callers pass fresh ones)."""
    if len(salt) != _SALT_LEN or len(nonce) != _NONCE_LEN:
        raise UsageError("salt must be 16 bytes and nonce 12 bytes")
    if passphrase is None:
        return _prefix(SUITE_NONE, KdfParams(0, 0, 0), bytes(16), bytes(12), public, len(secret)) + secret
    prefix = _prefix(SUITE_ARGON2ID_AES256GCM, kdf.check(), salt, nonce, public, len(secret) + aead.TAG_SIZE)
    return prefix + aead.seal(stretch(passphrase, salt, kdf), nonce, secret, prefix)


def _prefix(suite: int, kdf: KdfParams, salt: bytes, nonce: bytes, public: bytes, body_len: int) -> bytes:
    """Header and public document: everything before the body, and the AAD of a sealed body."""
    if len(public) > MAX_PUBLIC_BYTES or body_len > _MAX_BODY:
        raise UsageError("identity too large for the identity file format")
    params = (kdf.time_cost, kdf.memory_kib, kdf.parallelism)
    return (
        _HEADER.pack(SECRET_MAGIC, SECRET_VERSION, suite, *params, salt, nonce, len(public), body_len)
        + public
    )


@dataclass(frozen=True)
class _SecretFile:
    """A parsed, checked secret file; ``body`` is still sealed when ``kdf`` is set."""

    kdf: KdfParams | None
    salt: bytes
    nonce: bytes
    aad: bytes
    public: PublicIdentity
    body: bytes


def _parse_secret(data: bytes, what: str) -> _SecretFile:
    """Check a secret file's header and lengths and parse its public document."""
    if len(data) < _HEADER.size:
        raise IntegrityError(f"{what} is truncated")
    magic, version, suite, t_cost, m_cost, lanes, salt, nonce, pub_len, body_len = _HEADER.unpack_from(data)
    if magic != SECRET_MAGIC:
        raise UsageError(f"{what} is not an mlvault identity file")
    if version != SECRET_VERSION:
        raise ConfigurationError(f"{what} has version {version}; this mlvault reads version 1")
    kdf: KdfParams | None = None
    if suite == SUITE_ARGON2ID_AES256GCM:
        kdf = KdfParams(time_cost=t_cost, memory_kib=m_cost, parallelism=lanes).check()
    elif suite != SUITE_NONE:
        raise ConfigurationError(f"{what} uses suite {suite}, which this mlvault does not support")
    elif (t_cost, m_cost, lanes, salt, nonce) != (0, 0, 0, bytes(16), bytes(12)):
        raise IntegrityError(f"{what} is damaged (unencrypted, yet with KDF parameters)")
    if pub_len > MAX_PUBLIC_BYTES or body_len > _MAX_BODY or len(data) != _HEADER.size + pub_len + body_len:
        raise IntegrityError(f"{what} is truncated or has trailing data")
    start = _HEADER.size + pub_len
    try:
        public = PublicIdentity.parse(data[_HEADER.size : start], what)
    except UsageError as exc:
        raise IntegrityError(f"{what} is damaged: {exc}") from exc
    return _SecretFile(kdf, salt, nonce, data[:start], public, data[start:])


def _open(secret: _SecretFile, passphrase: bytes | None, what: str) -> Identity:
    """Decrypt (if sealed) and check the private keys against the public document."""
    body, public = secret.body, secret.public
    if secret.kdf is not None:
        if passphrase is None:
            raise AuthenticationError(f"identity {public.name} is encrypted: a passphrase is needed")
        kek = stretch(passphrase, secret.salt, secret.kdf)
        try:
            body = aead.open_sealed(kek, secret.nonce, body, secret.aad)
        except DecryptionError as exc:
            raise AuthenticationError(
                f"wrong passphrase for identity {public.name}, or {what} is corrupt"
            ) from exc
    try:
        x_key = X25519PrivateKey.from_private_bytes(body[:_X25519_LEN])
        e_key = serialization.load_der_private_key(body[_X25519_LEN:], password=None)
    except ValueError as exc:
        raise IntegrityError(f"{what} holds a corrupt private key") from exc
    if not isinstance(e_key, ec.EllipticCurvePrivateKey) or not isinstance(e_key.curve, ec.SECP256R1):
        raise IntegrityError(f"{what} does not hold an ECDSA P-256 private key")
    e_der = _spki(e_key.public_key())
    if x_key.public_key().public_bytes_raw() != public.x25519_public or e_der != public.ecdsa_public_der:
        raise IntegrityError(f"{what}: the private keys do not match its public part")
    return Identity(public.name, x_key, e_key, public)


# -- files and small parsers --------------------------------------------------------------------


def _read_secret_file(path: Path) -> bytes:
    """Read an identity secret file: never through a symlink, only a regular file, size-capped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise NotFoundError(f"identity file not found: {path}") from exc
    except OSError as exc:  # ELOOP: the last component is a symlink
        if os.path.islink(path):
            raise UsageError(f"{path} is a symbolic link; identity files are never read through one") from exc
        raise UsageError(f"cannot read identity file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path} is not a regular file")
        if st.st_size > MAX_SECRET_FILE_BYTES:
            raise UsageError(f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
        data = fh.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise UsageError(f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    return data


def _write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool) -> bool:
    """Write ``path`` through a fsynced temp file; without ``overwrite``, False if it already exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and never overwrites: a concurrent create loses here
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate field {key!r}")
        doc[key] = value
    return doc


def _canonical_spki(text: str, what: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a P-256 key, given in canonical base64 and canonical DER."""
    try:
        der = base64.b64decode(text.encode("ascii"), validate=True)
        key = serialization.load_der_public_key(der)
    except (UnicodeEncodeError, binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{what}: ecdsa_p256 is not a base64 DER public key") from exc
    if _spki(keys.require_p256(key, what)) != der or base64.b64encode(der).decode("ascii") != text:
        raise UsageError(f"{what}: ecdsa_p256 is not in canonical form")
    return der


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
