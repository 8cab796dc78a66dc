"""Healthchecks-style pings around a backup run, which never fail or hang the backup.

``backup run --ping-url URL`` tells a dead-man's-switch service (healthchecks.io, Uptime Kuma,
Cronitor, a self-hosted healthchecks) what happens: ``URL/start`` when a run starts, ``URL`` when
it succeeds, ``URL/fail`` when it fails (the error text as the request body, capped at
:data:`MAX_BODY_BYTES`). The service alerts when the success ping stops coming, which is the one
failure no exit code can report: the cron job that never ran.

A ping is advice, never a dependency of the backup:

- Each call returns ``None`` on success or a one-line warning to print; it never raises.
- Each call takes at most ``timeout`` seconds in total (default 5): the request runs on a daemon
  thread that the caller stops waiting for at the deadline, so a slow DNS lookup, a server that
  accepts and never answers or one that trickles bytes cannot stall the run. (urllib's own
  timeout bounds each socket operation, not the whole request.)
- The URL is checked once, when :class:`HealthcheckPinger` is built from the option: only
  ``http`` and ``https`` URLs with a host are accepted (no ``file:`` or ``ftp:`` via urllib), and
  a bad one is a :class:`UsageError` before any backup starts.
- Warnings show only the scheme and host: the path of a ping URL is its secret.

Only the standard library is used (``urllib.request``, which honours the usual proxy variables).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from vault.errors import UsageError

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_BODY_BYTES = 10_000
_USER_AGENT = "mlvault-backup"
_NO_ANSWER = "no answer"  # a sentinel: compared by identity, never shown


@dataclass(frozen=True)
class HealthcheckPinger:
    """Pings ``url`` (the success URL) and its ``/start`` and ``/fail`` siblings."""

    url: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise UsageError(f"--ping-url has an invalid port: {self._shown()}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--ping-url must be an http:// or https:// URL with a host, not {self._shown()}"
            )
        if not self.timeout > 0:
            raise UsageError(f"the ping timeout must be positive, not {self.timeout}")

    def start(self) -> str | None:
        """Ping ``/start``; a warning or None."""
        return self._ping("/start", b"")

    def success(self, message: str = "") -> str | None:
        """Ping the base URL; a warning or None."""
        return self._ping("", message.encode()[:MAX_BODY_BYTES])

    def fail(self, message: str = "") -> str | None:
        """Ping ``/fail`` with ``message`` as the body; a warning or None."""
        return self._ping("/fail", message.encode()[:MAX_BODY_BYTES])

    def endpoint(self, suffix: str) -> str:
        """The URL for ``suffix`` ("", "/start" or "/fail"), keeping any query string."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))

    def _ping(self, suffix: str, body: bytes) -> str | None:
        outcome: list[str | None] = []
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __post_init__
            self.endpoint(suffix), data=body, method="POST", headers={"User-Agent": _USER_AGENT}
        )
        worker = threading.Thread(
            target=self._send, args=(request, outcome), name="mlvault-ping", daemon=True
        )
        worker.start()
        worker.join(self.timeout)
        what = f"ping {suffix.lstrip('/') or 'success'} to {self._shown()}"
        if not outcome or outcome[0] is _NO_ANSWER:
            return f"{what} gave no answer within {self.timeout:g} s; the backup carries on"
        problem = outcome[0]
        return None if problem is None else f"{what} failed: {problem}; the backup carries on"

    def _send(self, request: urllib.request.Request, outcome: list[str | None]) -> None:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read(1024)
            outcome.append(None)
        except urllib.error.HTTPError as exc:
            exc.close()
            outcome.append(f"HTTP {exc.code}")
        except urllib.error.URLError as exc:
            timed_out = isinstance(exc.reason, TimeoutError)
            outcome.append(_NO_ANSWER if timed_out else str(exc.reason))
        except TimeoutError:  # the socket's own deadline can fire just before join() gives up
            outcome.append(_NO_ANSWER)
        except Exception as exc:  # noqa: BLE001 - a ping must never fail a backup
            outcome.append(f"{type(exc).__name__}: {exc}".replace(self.url, self._shown()))

    def _shown(self) -> str:
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]  # never show user:password@
        return f"{parts.scheme}://{host}/…" if parts.scheme and host else "a URL without scheme or host"
