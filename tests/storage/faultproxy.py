"""A small HTTP proxy that injects S3-style faults in front of the moto server.

``FaultProxy(upstream_port)`` listens on 127.0.0.1 (random port) and forwards every
request to ``127.0.0.1:upstream_port``. On a fraction ``fault_rate`` of requests it
instead injects one of ``faults``:

- ``"503"``: 503 SlowDown (the S3 throttling answer)
- ``"500"``: 500 InternalError
- ``"reset"``: reset the connection (RST) before forwarding
- ``"reset_after"``: forward, then reset instead of answering (the write happened, the
  client does not know: exercises ambiguous retried writes)
- ``"truncate"``: forward, send the headers and half the body, then reset (a GET body cut
  mid-stream; other requests fall back to ``reset_after``)

``deny = True`` answers every request with 403 InvalidAccessKeyId ("wrong credentials").
The settings are plain attributes so a test can change them while the proxy runs.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALL_FAULTS = ("503", "500", "reset", "reset_after", "truncate")

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}

_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
)


class FaultProxy:
    """A threaded forwarding proxy with configurable fault injection; see the module docstring."""

    def __init__(self, upstream_port: int, *, seed: int = 1234) -> None:
        self.upstream_port = upstream_port
        self.fault_rate = 0.0
        self.faults: tuple[str, ...] = ALL_FAULTS
        self.deny = False
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def choose_fault(self) -> str | None:
        """Count the request and decide whether (and how) to break it."""
        with self._lock:
            self.requests += 1
            if self.deny:
                return "403"
            if self.fault_rate and self._random.random() < self.fault_rate:
                fault = self._random.choice(self.faults)
                self.injected[fault] += 1
                return fault
            return None


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _error(self, status: int, code: str, message: str) -> None:
            body = _ERROR_XML.format(code=code, message=message).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            finally:
                upstream.close()

        def _handle(self) -> None:
            body = self._read_body()
            fault = proxy.choose_fault()
            if fault == "403":
                self._error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
                return
            if fault == "503":
                self._error(503, "SlowDown", "Please reduce your request rate.")
                return
            if fault == "500":
                self._error(500, "InternalError", "We encountered an internal error. Please try again.")
                return
            if fault == "reset":
                self._reset()
                return
            status, headers, data = self._forward(body)
            if fault == "reset_after" or (fault == "truncate" and (self.command == "HEAD" or len(data) < 2)):
                self._reset()
                return
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command == "HEAD":
                length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                self.send_header("Content-Length", length)
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fault == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._reset()
                return
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
