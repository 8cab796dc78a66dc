"""A small HTTP proxy in front of moto's KMS that answers chosen operations with KMS errors.

moto does not enforce key state (a disabled or pending-deletion key still decrypts), so the
errors real KMS gives are injected here: ``proxy.fail("Decrypt", "DisabledException")`` makes every
later Decrypt answer that error (HTTP 400, the KMS JSON error shape); ``proxy.hold("Decrypt")``
keeps Decrypt requests waiting (until :meth:`release` or the proxy stops), as an unreachable
region would. Everything else is forwarded unchanged. ``seen`` counts requests per operation.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}
_STATUS = {"AccessDeniedException": 400, "ThrottlingException": 400, "KMSInternalException": 500}


class KmsFaultProxy:
    """A threaded forwarding proxy; see the module docstring."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: dict[str, str] = {}
        self.held: set[str] = set()
        self.seen: Counter[str] = Counter()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, operation: str, code: str) -> None:
        self.faults[operation] = code

    def hold(self, operation: str) -> None:
        self.held.add(operation)

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> KmsFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _make_handler(proxy: KmsFaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            proxy.seen[operation] += 1
            if operation in proxy.held:
                proxy._release.wait(30)
            code = proxy.faults.get(operation)
            if code is not None:
                error = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
                self._answer(_STATUS.get(code, 400), [("Content-Type", "application/x-amz-json-1.1")], error)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                headers["Content-Length"] = str(len(body))
                upstream.request("POST", self.path, body=body, headers=headers)
                response = upstream.getresponse()
                self._answer(response.status, response.getheaders(), response.read())
            finally:
                upstream.close()

    return Handler
