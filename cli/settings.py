"""Where the CLI's settings come from: flags, then environment, then ``mlvault.toml``.

Built once per invocation into a frozen :class:`Settings` and passed down; nothing below
the CLI reads the environment. A global option given after the subcommand
(``mlvault ls --vault ./v``) is merged over the one given before it with :meth:`Settings.merged`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vault.errors import ConfigurationError, UsageError

from .secrets import read_secret

PASSPHRASE_ENV = "MLVAULT_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret


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
    allow_slow_kdf: bool = False
    identity: str | None = None
    kms: bool = False

    def merged(self, **given: object) -> Settings:
        """These settings with every option that was given (not ``None``, not ``False``) replaced."""
        changes = {name: value for name, value in given.items() if value is not None and value is not False}
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


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


def require_vault(settings: Settings) -> str:
    """The vault URL, or a usage error saying how to give one."""
    if not settings.vault:
        raise UsageError(
            'no vault given: pass --vault PATH, set MLVAULT_VAULT, or add vault = "..." to mlvault.toml'
        )
    return settings.vault


def passphrase_reader(settings: Settings, *, confirm: bool = False) -> Callable[[], bytes]:
    """A callable that yields the vault passphrase when the vault first needs it."""

    def read() -> bytes:
        return read_secret(
            settings.passphrase_file,
            label="passphrase",
            env_var=PASSPHRASE_ENV,
            file_option="--passphrase-file",
            prompt="Vault passphrase: ",
            needed_for="a passphrase is needed",
            confirm=confirm,
        )

    return read
