"""A client's view of the VIP during a drill: fresh connects, or HTTP(S) requests, to VIP:port in a
tight, bounded loop.

Run from the machine hakeep runs on (it must reach the VIP). Each attempt is a fresh connection with a
short timeout; the result counts failed attempts (no connection, no answer), answers that were errors
(HTTP status not 2xx), the longest time without a good attempt and the span from the first bad
attempt to the last.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

INTERVAL = 0.02  # between attempts
CONNECT_TIMEOUT = 0.3
HTTP_TIMEOUT = 1.0
MAX_ATTEMPTS = 20000  # a bound whatever the drill's length


@dataclass(frozen=True)
class ProbeResult:
    attempts: int
    failed: int  # no connection, or no answer
    longest_gap_s: float  # the longest time between two good attempts
    errors: int = 0  # HTTP answers that were not 2xx
    bad_span_s: float = 0.0  # the first bad attempt (failed or error) -> the last one; 0 when none


def reachable(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class Prober:
    """Connect to ``address:port`` every 20 ms in a thread, from :meth:`start` to :meth:`stop`."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hakeep-probe", daemon=True)
        self.attempts = self.failed = self.errors = 0
        self.longest_gap = 0.0
        self.first_bad: float | None = None  # time.monotonic() of the first bad attempt
        self._last_bad = 0.0

    def attempt(self) -> bool | None:
        """True: good; False: failed; None: answered with an error."""
        return reachable(self.address, self.port, CONNECT_TIMEOUT)

    def _loop(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set() and self.attempts < MAX_ATTEMPTS:
            got = self.attempt()
            now = time.monotonic()
            self.attempts += 1
            if got:
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            else:
                self.failed += got is False
                self.errors += got is None
                self.first_bad = now if self.first_bad is None else self.first_bad
                self._last_bad = now
            self._stop.wait(INTERVAL)
        if self.failed or self.errors:
            self.longest_gap = max(self.longest_gap, time.monotonic() - last_ok)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> ProbeResult:
        self._stop.set()
        self._thread.join(5)
        span = self._last_bad - self.first_bad if self.first_bad is not None else 0.0
        return ProbeResult(self.attempts, self.failed, round(self.longest_gap, 3), self.errors, round(span, 3))


class HttpProber(Prober):
    """``GET path`` on ``address:port`` every 20 ms, each on a new connection (over TLS when ``tls``:
    the chain verified against ``ca_file`` when given, else not verified; the name never, as the
    VIP may not be in the certificate): what a client of the frontend sees."""

    def __init__(self, address: str, port: int, path: str, *, tls: bool, ca_file: Path | None = None) -> None:
        super().__init__(address, port)
        self.path = path
        self.context: ssl.SSLContext | None = None
        if tls:  # the certificate need not name the VIP (an apiserver's may name only a DNS endpoint)
            self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
            self.context.check_hostname = False
            if ca_file is None:
                self.context.verify_mode = ssl.CERT_NONE

    def attempt(self) -> bool | None:
        return self.ask()[0]

    def ask(self) -> tuple[bool | None, str]:
        """One request: (as :meth:`attempt`, what went wrong: the status or the error)."""
        conn: http.client.HTTPConnection
        if self.context is not None:
            conn = http.client.HTTPSConnection(self.address, self.port, timeout=HTTP_TIMEOUT, context=self.context)
        else:
            conn = http.client.HTTPConnection(self.address, self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return False, str(exc) or type(exc).__name__
        finally:
            conn.close()
        return (True, "") if 200 <= resp.status < 300 else (None, f"HTTP {resp.status}")
