"""The ``mlvault`` Typer app and what every command shares.

* :data:`app`, on which the modules of :mod:`cli.commands` register their commands;
* :func:`handle_errors`: every error becomes one line on stderr and an exit code, here and only
  here; the codes belong to the exception classes in ``vault/errors.py``;
* the global options (``--vault``, ``--catalog``, ...), each defined once as an ``Annotated`` alias
  and accepted both before the subcommand (on the app callback) and after it
  (:func:`global_options` adds them to a command and merges what was given over the callback's);
* :func:`open_vault` / :func:`init_vault`: the vault the global options name, with this client's state.

This module imports no command module, so command modules import it freely (no cycle).
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

import vault
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import MlvaultError
from vault.storage import StorageOptions

from . import output
from .coercion import PlainCoercionGroup
from .secrets import read_secret
from .settings import PASSPHRASE_ENV, Settings, passphrase_reader, require_vault, resolve

if TYPE_CHECKING:
    from vault.clientstate.identities import Identity, PublicIdentity

app = typer.Typer(
    name="mlvault",
    help="An encrypted, deduplicating vault for ML models and datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=PlainCoercionGroup,  # no pydantic at start-up (issue 13)
)

F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

# -- global options: one definition each --------------------------------------------------------

_PANEL = "Global options"
IDENTITY_ENV = "MLVAULT_IDENTITY"
IDENTITY_PASSPHRASE_ENV = "MLVAULT_IDENTITY_PASSPHRASE"  # noqa: S105 — the variable's name, not a secret


def _global(*decls: str, help: str, envvar: str | None = None) -> Any:
    return typer.Option(*decls, help=help, envvar=envvar, rich_help_panel=_PANEL)


def vault_option(envvar: str | None = None) -> Any:
    """``--vault/-V``."""
    return _global("--vault", "-V", help="Vault path or s3://bucket/prefix.", envvar=envvar)


def catalog_option(envvar: str | None = None) -> Any:
    """``--catalog``."""
    return _global("--catalog", help="Catalog URL (overrides the vault's).", envvar=envvar)


def endpoint_url_option(envvar: str | None = None) -> Any:
    """``--endpoint-url``."""
    return _global("--endpoint-url", help="S3-compatible endpoint.", envvar=envvar)


def identity_option(envvar: str | None = None) -> Any:
    """``--identity``."""
    return _global(
        "--identity",
        help="Open the vault with this identity (a name in the config dir or an identity file); "
        "its passphrase comes from MLVAULT_IDENTITY_PASSPHRASE or a prompt.",
        envvar=envvar,
    )


# After the subcommand an option counts only when typed (no envvar), so the environment, which
# the app callback reads, never hides an option typed before the subcommand.
VaultOpt = Annotated[str | None, vault_option()]
CatalogOpt = Annotated[str | None, catalog_option()]
EndpointUrlOpt = Annotated[str | None, endpoint_url_option()]
PassphraseFileOpt = Annotated[
    Path | None, _global("--passphrase-file", help="Read the passphrase from this file.")
]
ProfileOpt = Annotated[str | None, _global("--profile", help="AWS profile for S3 vaults.")]
RegionOpt = Annotated[str | None, _global("--region", help="AWS region for S3 vaults.")]
AllowInsecureHttpOpt = Annotated[
    bool, _global("--allow-insecure-http", help="Allow a plain-http, non-loopback S3 endpoint.")
]
AllowSlowKdfOpt = Annotated[
    bool,
    _global("--allow-slow-kdf", help="Create or try key slots whose Argon2 cost exceeds 4x the default."),
]
IdentityOpt = Annotated[str | None, identity_option()]
KmsOpt = Annotated[
    bool,
    _global(
        "--kms",
        help="Open the vault with an AWS KMS key slot and the ambient AWS credentials (tried "
        "automatically when no passphrase or identity is given).",
    ),
]

# Settings field → (annotation, default), for :func:`global_options`.
_GLOBAL_OPTIONS: dict[str, tuple[Any, Any]] = {
    "vault": (VaultOpt, None),
    "catalog": (CatalogOpt, None),
    "passphrase_file": (PassphraseFileOpt, None),
    "endpoint_url": (EndpointUrlOpt, None),
    "profile": (ProfileOpt, None),
    "region": (RegionOpt, None),
    "allow_insecure_http": (AllowInsecureHttpOpt, False),
    "allow_slow_kdf": (AllowSlowKdfOpt, False),
    "identity": (IdentityOpt, None),
    "kms": (KmsOpt, False),
}
_PARAM_PREFIX = "global_"


def global_options(func: F) -> F:
    """Accept the global options after the subcommand too; ``ctx.obj`` holds the merged settings."""
    signature = inspect.signature(func, eval_str=True)
    params = list(signature.parameters.values())
    ctx_name = next((p.name for p in params if p.annotation is typer.Context), None)
    added = [
        inspect.Parameter(
            _PARAM_PREFIX + name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
        )
        for name, (hint, default) in _GLOBAL_OPTIONS.items()
    ]
    if ctx_name is None:
        added.append(
            inspect.Parameter(_PARAM_PREFIX + "ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(_PARAM_PREFIX + name) for name in _GLOBAL_OPTIONS}
        ctx: typer.Context = kwargs[ctx_name] if ctx_name else kwargs.pop(_PARAM_PREFIX + "ctx")
        ctx.obj = settings_of(ctx).merged(**given)
        return func(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*params, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*params, *added]}
    return wrapper  # type: ignore[return-value]


def settings_of(ctx: typer.Context) -> Settings:
    """The settings of this invocation (resolved by the app callback)."""
    settings = ctx.obj
    if not isinstance(settings, Settings):  # a command invoked without the app callback
        settings = resolve(None, None, None)
    return settings


@app.callback()
def main_options(
    ctx: typer.Context,
    vault_url: Annotated[str | None, vault_option("MLVAULT_VAULT")] = None,
    catalog: Annotated[str | None, catalog_option("MLVAULT_CATALOG")] = None,
    passphrase_file: PassphraseFileOpt = None,
    endpoint_url: Annotated[str | None, endpoint_url_option("MLVAULT_ENDPOINT_URL")] = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    allow_insecure_http: AllowInsecureHttpOpt = False,
    allow_slow_kdf: AllowSlowKdfOpt = False,
    identity: Annotated[str | None, identity_option(IDENTITY_ENV)] = None,
    kms: KmsOpt = False,
) -> None:
    """Global options (also accepted after the command); every command also reads mlvault.toml."""
    ctx.obj = handle_errors(resolve)(
        vault_url,
        catalog,
        passphrase_file,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        allow_insecure_http=allow_insecure_http,
        allow_slow_kdf=allow_slow_kdf,
        identity=identity,
        kms=kms,
    )


# -- errors -------------------------------------------------------------------------------------


def one_line(exc: object) -> str:
    """An error message on one line (driver messages from psycopg or botocore can span several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def handle_errors(func: F) -> F:
    """Map every error to one stderr line and its exit code; never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlvaultError as exc:
            output.err.print(f"error: {one_line(exc)}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.err.print("interrupted; nothing was committed", markup=False)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 — the last line of defence against a traceback
            if os.environ.get("MLVAULT_DEBUG"):
                traceback.print_exc()
            output.err.print(
                f"error: unexpected {type(exc).__name__}: {one_line(exc)} (set MLVAULT_DEBUG=1 for details)",
                markup=False,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# -- the vault the options name -----------------------------------------------------------------


def storage_options(settings: Settings) -> StorageOptions:
    """S3 options from the settings (warns about --allow-insecure-http)."""
    if settings.allow_insecure_http:
        output.err.print("warning: --allow-insecure-http: S3 traffic is not protected by TLS", markup=False)
    return StorageOptions(
        settings.endpoint_url, settings.profile, settings.region, settings.allow_insecure_http
    )


def identity_loader(name: str) -> Callable[[], Identity]:
    """Loads identity ``name`` (a name or a file) when the vault first needs a key."""

    def passphrase() -> bytes:
        return read_secret(
            None,
            label="identity passphrase",
            env_var=IDENTITY_PASSPHRASE_ENV,
            file_option="an unencrypted identity (identity new --no-passphrase)",
            prompt=f"Passphrase for identity {name}: ",
            needed_for=f"identity {name} needs a passphrase",
        )

    def load() -> Identity:
        return ClientState.default().identities().load(name, passphrase)

    return load


def identity_public(name: str) -> Callable[[], PublicIdentity]:
    """The public half of identity ``name``, which the capability check needs (no passphrase)."""
    return lambda: ClientState.default().identities().public_of(name)


def open_vault(ctx: typer.Context) -> vault.Vault:
    """Open the vault the settings name; keys are unlocked only when they are needed.

    Unlock order: ``--identity`` / ``MLVAULT_IDENTITY``, then a KMS slot (``--kms``, or
    automatically when nothing else is given), then the passphrase (file, environment, prompt).
    With ``--identity`` every command acts as that identity's principal of the access policy
    (vault.access.gate); without one, as the vault owner.
    """
    settings = settings_of(ctx)
    return vault.open_vault(
        require_vault(settings),
        passphrase=passphrase_reader(settings),
        passphrase_is_prompt=settings.passphrase_file is None and not os.environ.get(PASSPHRASE_ENV),
        identity=identity_loader(settings.identity) if settings.identity else None,
        caller=identity_public(settings.identity) if settings.identity else None,
        use_kms=settings.kms,
        catalog_url=settings.catalog,
        storage_options=storage_options(settings),
        client_state=ClientState.default(),
        allow_slow_kdf=settings.allow_slow_kdf,
    )


def init_vault(ctx: typer.Context, path: str, kdf: KdfParams) -> vault.Vault:
    """Create a vault at ``path`` with the settings' catalog and storage options."""
    settings = settings_of(ctx)
    return vault.init_vault(
        path,
        passphrase=passphrase_reader(settings, confirm=True),
        kdf=kdf,
        catalog_url=settings.catalog,
        storage_options=storage_options(settings),
        client_state=ClientState.default(),
        allow_slow_kdf=settings.allow_slow_kdf,
    )
