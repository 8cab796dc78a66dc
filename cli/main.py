"""The ``mlvault`` command line: mounts the command modules on :data:`cli.app.app` and runs it.

Each module of :mod:`cli.commands` registers its commands on the app when imported; errors
inside a command become one line and an exit code in :func:`cli.app.handle_errors`, and
click's own parse errors (unknown option, missing argument) in :func:`main`.

Start-up (issue 13): :func:`main` imports only the module of the command it is asked for when
that command is one of :data:`LAZY_COMMANDS` and the module registers it; anything else (help,
a group, an unknown word or option) mounts every module first. ``app`` as an attribute of this
module is the app with every module mounted (what tests and tools import).
"""

from __future__ import annotations

import importlib
import logging
import sys
import typing
from typing import Any

import typer

from . import app as app_module
from . import output
from .app import one_line

__all__ = ["app", "main"]  # noqa: F822 — app comes from __getattr__, every module mounted

COMMAND_MODULES = (
    "access",
    "attest",
    "audit",
    "backup",
    "backup_maint",
    "core",
    "identity",
    "keys",
    "namespace",
    "rekey",
    "scan",
    "sign",
    "signature",
    "trust",
    "vaultkeys",
)
# Top-level commands (not groups) whose module alone registers them; a hint only: main() checks
# the command is registered after importing the module, and mounts everything when it is not.
LAZY_COMMANDS = {
    **dict.fromkeys(("init", "push", "pull", "ls", "log", "show", "tag", "check"), "core"),
    **dict.fromkeys(("sign", "verify"), "sign"),
    **dict.fromkeys(("scan", "inspect"), "scan"),
}


def _mount(*modules: str) -> None:
    for module in modules:
        importlib.import_module(f"{__package__}.commands.{module}")


def __getattr__(name: str) -> Any:
    if name == "app":
        _mount(*COMMAND_MODULES)
        return app_module.app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _global_option_arity() -> dict[str, bool]:
    """Each global option's spellings → whether it takes a value."""
    arity = {}
    for field, (hint, _default) in app_module._GLOBAL_OPTIONS.items():
        kind, info = typing.get_args(hint)[:2]
        for spelling in ("--" + field.replace("_", "-"), *info.param_decls):
            arity[spelling] = kind is not bool
    return arity


def command_word(argv: list[str]) -> str | None:
    """The command ``argv`` names after the global options, or None when unsure."""
    arity = _global_option_arity()
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            return arg
        if arg.startswith("--") and "=" in arg and arg.split("=", 1)[0] in arity:
            continue
        if arg not in arity:
            return None  # --help, an unknown option: let click see every command
        if arity[arg] and next(args, None) is None:
            return None
    return None


def _registered(name: str) -> bool:
    return any(
        (info.name or info.callback.__name__.lower().replace("_", "-")) == name  # typer's default name
        for info in app_module.app.registered_commands
        if info.callback is not None
    )


def mount_for(argv: list[str]) -> None:
    """Mount the module of the command ``argv`` names, or every module."""
    word = command_word(argv)
    module = LAZY_COMMANDS.get(word or "")
    if module is not None:
        _mount(module)
        if word is not None and _registered(word):
            return
    _mount(*COMMAND_MODULES)


def main() -> None:
    """Console-script entry point; click's own parse errors also become one ``error:`` line."""
    # Library loggers have no handler, so Python's last-resort handler would print their records,
    # tracebacks included (e.g. SQLAlchemy closing a connection while Ctrl-C lands): the contract
    # is one line per error, from handle_errors.
    for name in ("sqlalchemy", "botocore", "urllib3"):
        logging.getLogger(name).addHandler(logging.NullHandler())
    try:
        mount_for(sys.argv[1:])
        code = app_module.app(standalone_mode=False)
    except typer.Abort:
        output.err.print("error: aborted", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:  # pragma: no cover — interrupted outside a command
        sys.exit(130)
    except Exception as exc:
        # click's ClickException (typer vendors click, so matched by shape): format_message() + exit_code.
        exit_code = getattr(exc, "exit_code", None)
        if not hasattr(exc, "format_message") or not isinstance(exit_code, int):
            raise
        if type(exc).__name__ != "NoArgsIsHelpError":  # bare `mlvault`: the help is already printed
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            output.err.print(f"error: {one_line(exc.format_message())}{hint}", markup=False)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # python -m mlvault_cli.main, as the console script
    main()
