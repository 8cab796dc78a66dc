"""vault.backup.ping against a real HTTP server on 127.0.0.1 that records what it receives, a
closed port, and a server that does not answer before the timeout (held by an Event, not a sleep)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import vault
from vault.backup.ping import MAX_BODY_BYTES, HealthcheckPinger
from vault.errors import UsageError


@dataclass
class Recorder:
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    status: int = 200
    hold: threading.Event | None = None  # when set, handlers wait for it before answering
    released: threading.Event = field(default_factory=threading.Event)


class PingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(("127.0.0.1", 0), PingHandler)
        self.recorder = recorder

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class PingHandler(BaseHTTPRequestHandler):
    server: PingServer

    def _answer(self) -> None:
        recorder = self.server.recorder
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorder.requests.append((self.command, self.path, body))
        if recorder.hold is not None:
            recorder.hold.wait(timeout=10)
        self.send_response(recorder.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[PingServer]:
    srv = PingServer(Recorder())
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        if srv.recorder.hold is not None:
            srv.recorder.hold.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_start_success_and_fail(server: PingServer) -> None:
    pinger = HealthcheckPinger(f"{server.base}/ping/abc-123/", timeout=2)
    assert pinger.start() is None
    assert pinger.success("copied 3 objects") is None
    assert pinger.fail("storage unreachable") is None
    assert server.recorder.requests == [
        ("POST", "/ping/abc-123/start", b""),
        ("POST", "/ping/abc-123", b"copied 3 objects"),
        ("POST", "/ping/abc-123/fail", b"storage unreachable"),
    ]


def test_query_string_is_kept_and_bodies_are_capped(server: PingServer) -> None:
    pinger = HealthcheckPinger(f"{server.base}/ping/key/nightly?create=1", timeout=2)
    assert pinger.fail("x" * (MAX_BODY_BYTES + 500)) is None
    method, path, body = server.recorder.requests[0]
    assert (method, path, len(body)) == ("POST", "/ping/key/nightly/fail?create=1", MAX_BODY_BYTES)


def test_an_http_error_is_a_warning_that_hides_the_secret_path(server: PingServer) -> None:
    server.recorder.status = 404
    warning = HealthcheckPinger(f"{server.base}/secret-uuid", timeout=2).success()
    assert warning is not None
    assert "HTTP 404" in warning and "carries on" in warning
    assert "secret-uuid" not in warning and f"127.0.0.1:{server.server_address[1]}" in warning


def test_an_unreachable_url_is_a_warning() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    warning = HealthcheckPinger(f"http://127.0.0.1:{port}/uuid", timeout=2).start()
    assert warning is not None and "failed" in warning and "uuid" not in warning


def test_a_server_that_does_not_answer_cannot_hang_the_backup(server: PingServer) -> None:
    server.recorder.hold = threading.Event()
    pinger = HealthcheckPinger(f"{server.base}/uuid", timeout=0.3)
    began = time.monotonic()
    warning = pinger.start()
    elapsed = time.monotonic() - began
    assert warning is not None and "no answer within 0.3 s" in warning
    assert elapsed < 2
    server.recorder.hold.set()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/x",
        "hc-ping.com/uuid",
        "https:///no-host",
        "http://example.org:99999/x",
        "",
    ],
)
def test_bad_urls_are_refused_up_front(url: str) -> None:
    with pytest.raises(UsageError, match="--ping-url"):
        HealthcheckPinger(url)


def test_credentials_never_appear_in_messages() -> None:
    with pytest.raises(UsageError) as info:
        HealthcheckPinger("ftp://user:hunter2@example.org/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_a_non_positive_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(UsageError, match="timeout"):
        HealthcheckPinger("https://hc-ping.com/uuid", timeout=timeout)


def test_a_refused_backup_job_pings_fail(server: PingServer, make_vault: Callable[..., vault.Vault]) -> None:
    from vault.backup.job import BackupJob
    from vault.backup.signature import Acceptance
    from vault.errors import ConfigurationError

    v = make_vault()
    # A policy listing a service principal, and a job with no identity: refused before anything runs.
    acceptance = Acceptance(frozenset(), (("f" * 64, "backup-job", None, None),))
    with pytest.raises(ConfigurationError, match="backup-job"):
        v.backup_runner().run_due(ping_url=f"{server.base}/ping/abc", job=BackupJob(None, acceptance))
    ((method, path, body),) = server.recorder.requests
    assert (method, path) == ("POST", "/ping/abc/fail") and body.startswith(
        b"refused: this vault's access policy"
    )
