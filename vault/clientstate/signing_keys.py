"""Named signing keys in the client's config directory: ``keys/NAME.key`` and ``keys/NAME.pub``.

A name is a short file-name-safe word (``release-signer``); wherever a command takes a key name it
also takes a path to a key file, so keys kept elsewhere work too. The private key file is written
by :func:`vault.signing.keys.save_private_key` (Argon2id-encrypted, or PKCS#8 PEM with mode 0600
for unattended jobs); the public half is written beside it so listing and exporting keys never
needs a passphrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vault.crypto.kdf import KdfParams
from vault.errors import DestinationExistsError, NotFoundError, UsageError
from vault.signing import keys
from vault.signing.signers import LocalSigner

_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

PassphraseSource = Callable[[], bytes]


@dataclass(frozen=True)
class KeyInfo:
    """One named key, as ``mlvault key list`` shows it."""

    name: str
    fingerprint: str | None
    encrypted: bool
    path: str


def check_key_name(name: str) -> str:
    """Return ``name`` if it can name a key file, else ``UsageError``."""
    if not _KEY_NAME_RE.match(name):
        raise UsageError(f"invalid key name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


class SigningKeys:
    """The named signing keys under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find(self, name: str) -> Path:
        """The private key file for ``name``: a named key, or else a path to a key file."""
        if _KEY_NAME_RE.match(name):
            named = self.directory / f"{name}.key"
            if named.is_file():
                return named
        path = Path(name).expanduser()
        if path.is_file():
            return path
        raise NotFoundError(
            f"no signing key {name!r} in {self.directory} (create one with `mlvault key new {name}`)"
        )

    def create(self, name: str, passphrase: PassphraseSource | None, kdf: KdfParams) -> tuple[Path, str]:
        """Generate a key named ``name`` (encrypted unless ``passphrase`` is None); (path, fingerprint)."""
        path = self.directory / f"{check_key_name(name)}.key"
        if path.exists():
            raise DestinationExistsError(f"key {name} already exists at {path}; choose another name")
        secret = passphrase() if passphrase is not None else None
        if secret is not None and not secret:
            raise UsageError("the key passphrase must not be empty (use --unencrypted for an unattended key)")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = keys.generate_private_key()
        keys.save_private_key(private, path, passphrase=secret, kdf=kdf)
        path.with_suffix(".pub").write_bytes(keys.public_key_pem(private.public_key()))
        return path, keys.fingerprint(private.public_key())

    def signer(self, name: str, passphrase: PassphraseSource) -> LocalSigner:
        """A signer for a named key or key file; asks for the passphrase only if the file is encrypted."""
        path = self.find(name)
        secret = passphrase() if keys.is_encrypted_key_file(path) else None
        return LocalSigner(keys.load_private_key(path, secret))

    def public_pem(self, name: str, passphrase: PassphraseSource) -> bytes:
        """The public key PEM of ``name``: from its ``.pub`` file, else from the private key."""
        public_path = self.find(name).with_suffix(".pub")
        if public_path.is_file():
            return keys.public_key_pem(keys.read_public_key_file(public_path))
        return self.signer(name, passphrase).public_key_pem()

    def list(self) -> list[KeyInfo]:
        """Every named key, sorted by name."""
        found = sorted(self.directory.glob("*.key")) if self.directory.is_dir() else []
        rows = []
        for path in found:
            public_path = path.with_suffix(".pub")
            fp = keys.fingerprint(keys.read_public_key_file(public_path)) if public_path.is_file() else None
            rows.append(KeyInfo(path.stem, fp, keys.is_encrypted_key_file(path), str(path)))
        return rows
