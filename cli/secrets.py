"""Passphrases, read one way for the vault and for signing keys: file, then environment, then prompt.

A passphrase file is read only if it is a regular file, a pipe (``--passphrase-file <(pass x)``) or
a terminal, and never more than :data:`MAX_SECRET_BYTES` of it: ``--passphrase-file /dev/zero``
(a character device that never ends) or a multi-gigabyte file is a usage error, not an endless
read. Trailing newlines (``\\n``, ``\\r``) are dropped, as ``echo pw > file`` adds one.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from vault.errors import AuthenticationError, UsageError

MAX_SECRET_BYTES = 64 * 1024


def read_secret_file(path: Path, label: str) -> bytes:
    """The secret in ``path`` (trailing newlines dropped); ``UsageError`` if it cannot be one."""
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise UsageError(f"{label} file {path} is not a regular file, pipe or terminal")
        with open(path, "rb") as fh:
            if stat.S_ISCHR(mode) and not os.isatty(fh.fileno()):
                raise UsageError(f"{label} file {path} is a device, not a regular file, pipe or terminal")
            if stat.S_ISREG(mode) and os.fstat(fh.fileno()).st_size > MAX_SECRET_BYTES:
                raise UsageError(f"{label} file {path} is larger than {MAX_SECRET_BYTES // 1024} KiB")
            data = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {label} file {path}: {exc.strerror}") from exc
    if len(data) > MAX_SECRET_BYTES:
        raise UsageError(f"{label} file {path} is larger than {MAX_SECRET_BYTES // 1024} KiB")
    return data.rstrip(b"\r\n")


def read_secret(
    file: Path | None,
    *,
    label: str,
    env_var: str,
    file_option: str,
    prompt: str,
    needed_for: str,
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The secret from ``file``, else ``$env_var``, else a terminal prompt (twice if ``confirm``).

    ``needed_for`` starts the error when there is no terminal to prompt on ("a passphrase is needed").
    """
    if file is not None:
        return read_secret_file(file, label)
    env = (os.environ if environ is None else environ).get(env_var)
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise AuthenticationError(
            f"{needed_for}: set {env_var} or use {file_option} (no terminal to prompt on)"
        )
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UsageError("the passphrases do not match")
    return first.encode()
