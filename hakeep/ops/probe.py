"""A client's view of the VIP during a drill: TCP connects to VIP:port in a tight, bounded loop.

Run from the machine hakeep runs on (it must reach the VIP). Each attempt is a fresh connect with a
short timeout; the result counts failed connects and the longest time without a successful one.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

INTERVAL = 0.02  # between attempts
CONNECT_TIMEOUT = 0.3
MAX_ATTEMPTS = 20000  # a bound whatever the drill's length


@dataclass(frozen=True)
class ProbeResult:
    attempts: int
    failed: int
    longest_gap_s: float  # the longest time between two successful connects


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
        self.attempts = self.failed = 0
        self.longest_gap = 0.0

    def _loop(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set() and self.attempts < MAX_ATTEMPTS:
            ok = reachable(self.address, self.port, CONNECT_TIMEOUT)
            now = time.monotonic()
            self.attempts += 1
            if ok:
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            else:
                self.failed += 1
            self._stop.wait(INTERVAL)
        self.longest_gap = max(self.longest_gap, time.monotonic() - last_ok if self.failed else 0.0)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> ProbeResult:
        self._stop.set()
        self._thread.join(5)
        return ProbeResult(self.attempts, self.failed, round(self.longest_gap, 3))
