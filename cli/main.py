"""The ``mlvault`` command line: mounts the command modules on :data:`cli.app.app` and runs it.

Each module of :mod:`cli.commands` registers its commands on the app when imported; errors
inside a command become one line and an exit code in :func:`cli.app.handle_errors`, and
click's own parse errors (unknown option, missing argument) in :func:`main`.
"""

from __future__ import annotations

import logging
import sys

import typer

from . import output
from .app import app, one_line
from .commands import (  # noqa: F401 — importing a command module registers its commands
    access,
    attest,
    audit,
    backup,
    backup_maint,
    core,
    identity,
    keys,
    namespace,
    rekey,
    scan,
    sign,
    signature,
    trust,
    vaultkeys,
)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point; click's own parse errors also become one ``error:`` line."""
    # Library loggers have no handler, so Python's last-resort handler would print their records,
    # tracebacks included (e.g. SQLAlchemy closing a connection while Ctrl-C lands): the contract
    # is one line per error, from handle_errors.
    for name in ("sqlalchemy", "botocore", "urllib3"):
        logging.getLogger(name).addHandler(logging.NullHandler())
    try:
        code = app(standalone_mode=False)
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
