"""Fixtures for the end-to-end tests of S3 team vaults.

Everything here is real: the session's moto server on 127.0.0.1 (tests/conftest.py),
spoken to over plain HTTP (allowed because the host is loopback), the real
``mlvault`` Typer app (in-process through ``CliRunner``, or the installed console script in
a subprocess), a real SQLite or PostgreSQL catalog. The moto server, buckets and the
fault-injecting proxy come from tests/conftest.py.

Each test runs with fake AWS credentials in the environment, a home and an XDG data
directory inside ``tmp_path`` (so the SQLite catalog of an S3 vault, which lives in the
user's data directory, never touches the real one), no ``MLVAULT_*`` from the developer's
shell, and a clean working directory. moto keeps its state per process, shared with the
storage tests' server, so buckets here get their own name prefix.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2ehelpers import FAKE_CREDENTIALS, MLVAULT, PASSPHRASE, REGION
from faultproxy import FaultProxy
from typer.testing import CliRunner, Result

from mlvault_cli.main import app

if TYPE_CHECKING:
    pass


@pytest.fixture
def data_home(tmp_path: Path) -> Path:
    """The XDG data directory of this test (platformdirs' user data dir is ``data_home / "mlvault"``)."""
    return tmp_path / "xdg-data"


@pytest.fixture(autouse=True)
def user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_home: Path) -> None:
    """Fake AWS credentials, a private home and data dir, a passphrase, no stray MLVAULT_* or AWS_*.

    ``MLVAULT_TEST_*`` (the test suite's own settings, e.g. the PostgreSQL server) is kept.
    """
    for name in list(os.environ):
        if name.startswith(("MLVAULT_", "AWS_")) and not name.startswith("MLVAULT_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MLVAULT_PASSPHRASE", PASSPHRASE)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def bucket(make_bucket: Callable[[], str]) -> str:
    return make_bucket()


@pytest.fixture
def mlvault() -> Callable[..., Result]:
    """``mlvault(*args)`` runs the Typer app in-process with this test's environment."""

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def spawn() -> Callable[..., subprocess.Popen[str]]:
    """``spawn(*args)`` starts the installed console script with this test's environment."""

    def start(*args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [MLVAULT, *(str(a) for a in args)],
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start


class GetFaultProxy(FaultProxy):  # type: ignore[misc]
    """A FaultProxy that breaks only GETs: HEADs (sizes, existence) and writes get through.

    It lets a test fail the reads that follow a successful HEAD, which a proxy that picks
    its victims at random cannot aim at.
    """

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        current = threading.local()
        handler = self._server.RequestHandlerClass

        class Handler(handler):  # type: ignore[misc, valid-type]
            def _handle(self) -> None:
                current.command = self.command
                super()._handle()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server.RequestHandlerClass = Handler
        self._current = current

    def choose_fault(self) -> str | None:
        if getattr(self._current, "command", None) == "GET":
            return super().choose_fault()  # type: ignore[no-any-return]
        with self._lock:
            self.requests += 1
        return None


@pytest.fixture
def get_fault_proxy(moto_endpoint: str) -> Iterator[Any]:
    """Like ``fault_proxy``, but only GET requests are ever broken."""
    with GetFaultProxy(int(moto_endpoint.rsplit(":", 1)[1])) as proxy:
        yield proxy
