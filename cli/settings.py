"""Where the CLI's settings come from: flags, then environment, then ``mlvault.toml``.

Built once per invocation into a frozen :class:`Settings` and passed down; nothing below
the CLI reads the environment.
"""

from __future__ import annotations

import getpass
import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from vault.errors import AuthenticationError, ConfigurationError, UsageError


@dataclass(frozen=True)
class Settings:
    """Resolved global options."""

    vault: str | None
    catalog: str | None
    passphrase_file: Path | None
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    allow_insecure_http: bool = False


def load_toml(cwd: Path) -> dict[str, object]:
    """Settings from ``mlvault.toml`` in ``cwd``, if present."""
    path = cwd / "mlvault.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


def resolve(vault: str | None, catalog: str | None, passphrase_file: Path | None, **s3: object) -> Settings:
    """Merge flags (already merged with env by Typer) with mlvault.toml."""
    toml = load_toml(Path.cwd())
    vault = vault or _str(toml.get("vault"))
    catalog = catalog or _str(toml.get("catalog"))
    return Settings(vault, catalog, passphrase_file, **s3)  # type: ignore[arg-type]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


CONFIG_DIR_ENV = "MLVAULT_CONFIG_DIR"


def config_dir() -> Path:
    """The client's config directory (pins, keys): ``$MLVAULT_CONFIG_DIR`` or the platform's."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir("mlvault"))


def catalog_pins_file() -> Path:
    """Where this client pins each vault's catalog URL."""
    return config_dir() / "catalog-pins.json"


def require_vault(settings: Settings) -> str:
    """The vault URL, or a usage error saying how to give one."""
    if not settings.vault:
        raise UsageError(
            'no vault given: pass --vault PATH, set MLVAULT_VAULT, or add vault = "..." to mlvault.toml'
        )
    return settings.vault


def passphrase_reader(settings: Settings, *, confirm: bool = False) -> Callable[[], bytes]:
    """A callable that yields the passphrase when the vault first needs it."""

    def read() -> bytes:
        if settings.passphrase_file is not None:
            try:
                text = settings.passphrase_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise UsageError(
                    f"cannot read passphrase file {settings.passphrase_file}: {exc.strerror}"
                ) from exc
            return text.encode()
        env = os.environ.get("MLVAULT_PASSPHRASE")
        if env:
            return env.encode()
        if not sys.stdin.isatty():
            raise AuthenticationError(
                "a passphrase is needed: set MLVAULT_PASSPHRASE or use --passphrase-file "
                "(no terminal to prompt on)"
            )
        first = getpass.getpass("Vault passphrase: ")
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise UsageError("the passphrases do not match")
        return first.encode()

    return read
