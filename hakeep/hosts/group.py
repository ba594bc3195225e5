"""Run one function for many hosts at once and keep every host's outcome (fabric's ThreadingGroup idea).

An exception that is a :class:`~hakeep.errors.HakeepError` is an outcome like any result, so one
unreachable host never hides what the others said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hakeep.errors import HakeepError

T = TypeVar("T")


def parallel(fn: Callable[[str], T], hosts: Sequence[str], workers: int = 16) -> dict[str, T | HakeepError]:
    """Run ``fn(host)`` for every host at once; keep every outcome (an exception is an outcome)."""
    def guarded(host: str) -> T | HakeepError:
        try:
            return fn(host)
        except HakeepError as exc:
            return exc

    if not hosts:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(workers, len(hosts)))
    try:
        results = list(pool.map(guarded, hosts))
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM): do not wait for the hosts here; closing the session stops
        # what they still run on the hosts (Transport.cancel), which ends these threads too
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return dict(zip(hosts, results, strict=True))
