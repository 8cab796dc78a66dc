"""Plain helpers for the signing CLI tests: constants, the key-directory view and result checks.

A module of its own (not ``conftest``) so test files import it by name: every test directory has
a ``conftest``, and ``from conftest import`` picks whichever one was imported first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typer.testing import Result

PASSPHRASE = "signing cli passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
ARTIFACT = "team/vision/resnet"
KEY_NAMES = ("signer", "second", "other", "admin")

Run = Callable[..., Result]


@dataclass(frozen=True)
class Keys:
    """Key names made by ``mlvault key new`` and their exported public keys."""

    directory: Path

    def pub(self, name: str) -> Path:
        return self.directory / f"{name}.pub"

    def fingerprint(self, name: str) -> str:
        from vault.signing.keys import fingerprint, read_public_key_file

        return fingerprint(read_public_key_file(self.pub(name)))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, *fragments: str) -> str:
    """The command failed with ``code`` and one ``error:`` line holding every fragment."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
