"""The failover drill: the recipe's manual check, automated, timed, and seen as a client sees it.

On a healthy pair only (see :mod:`.status`), each round takes the VIP holder out one way: ``stop``
(systemctl stop keepalived: it says goodbye), ``crash`` (SIGKILL: it says nothing; a timer set on
the host first restarts it) or ``link`` (its VRRP interface down; a timer set on the host *before*
the link goes down brings it back, so a lost SSH session cannot leave it down). Then it measures:
the VIP on exactly one other LB, the frontends answering through it, the old holder back in
MASTER/BACKUP, and the fail-back when it takes the VIP back (preemption); with a
:class:`~.probe.Prober`, the failed client connects and the longest gap. Every wait is bounded.
Works on an open, locked session; returns frozen results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts import commands
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, Transport
from hakeep.layout import KEEPALIVED, UNIT_NAMES
from hakeep.ops.probe import Prober, ProbeResult

LINK_TIMER_UNIT = "hakeep-drill-link-up"
RESTART_TIMER_UNIT = "hakeep-drill-restart"


class Mode(StrEnum):
    STOP = "stop"
    CRASH = "crash"
    LINK = "link"


@dataclass(frozen=True)
class DrillResult:
    round: int
    mode: Mode
    old_holder: str
    new_holder: str | None
    vip_moved_s: float | None  # fault -> VIP on exactly one other LB
    frontends_s: float | None  # fault -> every frontend port answers through the VIP
    recovered_s: float | None  # old holder restored -> back in MASTER/BACKUP
    failback_s: float | None  # old holder restored -> VIP back on it (None: it did not take it back)
    final_holder: str | None
    limit_s: float
    probe: ProbeResult | None = None

    @property
    def ok(self) -> bool:
        return (self.vip_moved_s is not None and self.vip_moved_s <= self.limit_s
                and self.frontends_s is not None and self.recovered_s is not None and self.final_holder is not None)


class DrillError(HakeepError):
    pass


class DrillRefused(DrillError):
    """The drill did not start: nothing was changed."""


def where(transports: Mapping[str, Transport], vip: str, ports: Sequence[int] = ()) -> dict[str, str]:
    script = commands.vip_check(vip, ports, probe_timeout=1)
    res = parallel(lambda n: transports[n].run(script, display="where is the VIP", check=False, timeout=10),
                   list(transports))
    return {n: r.text() if isinstance(r, CommandResult) else "" for n, r in res.items()}


def holders_of(out: Mapping[str, str]) -> list[str]:
    return [n for n, text in out.items() if "holder=" in text]


def _wait(cond: Callable[[], bool], timeout_s: float, clock: Callable[[], float], interval: float = 0.05) -> bool:
    deadline = clock() + timeout_s
    while clock() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def _ok(t: Transport, script: str, display: str) -> bool:
    """Whether a check passes on the host; a host that cannot be asked (yet) does not pass."""
    try:
        return t.run(script, display=display, check=False, timeout=10).ok
    except HakeepError:
        return False


def run_drill(transports: Mapping[str, Transport], vip: str, ports: tuple[int, ...], *, mode: Mode = Mode.STOP,
              interface: str = "", link_s: float = 10.0, limit_s: float = 3.0, timeout_s: float = 30.0,
              probe: Prober | None = None, round_no: int = 1,
              clock: Callable[[], float] = time.monotonic) -> DrillResult:
    before = holders_of(where(transports, vip))
    if len(before) != 1:
        raise DrillRefused(f"the VIP {vip} is on {len(before)} LBs ({', '.join(before) or 'none'}); "
                           "a drill needs exactly one holder", hint="run `hakeep status` and fix that first")
    old = before[0]
    others = {n: t for n, t in transports.items() if n != old}
    moved = frontends = None
    new: str | None = None
    if probe is not None:
        probe.start()
    try:
        t0 = clock()
        try:
            _fault(transports[old], mode, interface, link_s)
            signals.test_pause(old, "fault", None)
            while clock() - t0 < timeout_s and (moved is None or frontends is None):
                out = where(others, vip, ports if moved is not None else ())
                hs = holders_of(out)
                if moved is None and len(hs) == 1:
                    moved, new = clock() - t0, hs[0]
                    continue
                if moved is not None and all(f"port={p}:open" in next(iter(out.values()), "") for p in ports):
                    frontends = clock() - t0
                time.sleep(0.02)
        finally:  # also on Ctrl-C, SIGTERM, SIGHUP: the old holder gets keepalived back first
            with signals.shielded():
                t1 = _restore(transports[old], mode, t0 + link_s, clock)
        gate = commands.units_gate(dict.fromkeys(UNIT_NAMES, True))
        recovered = failback = None
        if _wait(lambda: _ok(transports[old], gate, "old holder back in MASTER/BACKUP"), timeout_s, clock, 0.2):
            recovered = clock() - t1
        if _wait(lambda: holders_of(where(transports, vip)) == [old], min(timeout_s, 10.0), clock, 0.1):
            failback = clock() - t1
        _wait(lambda: len(holders_of(where(transports, vip))) == 1, timeout_s, clock, 0.2)
        final = holders_of(where(transports, vip))
    finally:
        result = probe.stop() if probe is not None else None
    return DrillResult(round_no, mode, old, new, moved, frontends, recovered, failback,
                       final[0] if len(final) == 1 else None, limit_s, result)


def _fault(t: Transport, mode: Mode, interface: str, link_s: float) -> None:
    if mode is Mode.STOP:
        t.run(commands.systemctl("stop", KEEPALIVED.name), display="stop keepalived (drill)")
    elif mode is Mode.CRASH:
        t.run(commands.kill_unit(KEEPALIVED.name, link_s, RESTART_TIMER_UNIT),
              display=f"SIGKILL keepalived, a timer on the host restarts it in {link_s:g}s (drill)")
    else:
        t.run(commands.link_down_for(interface, link_s, LINK_TIMER_UNIT),
              display=f"{interface} down for {link_s:g}s, brought back by a timer on the host (drill)")


def _restore(t: Transport, mode: Mode, link_back_at: float, clock: Callable[[], float]) -> float:
    """Undo the fault; the time the old holder was given back (for recovery and fail-back times).
    Its recorded VRRP state is dropped first, so recovery is what keepalived reports afterwards
    (after a SIGKILL the file still says MASTER)."""
    if mode is Mode.LINK:  # the host's own timer (accurate to 0.1 s) brings the link back at that moment
        time.sleep(max(0.0, link_back_at - clock()))
        return clock()
    t.run(commands.forget_vrrp_state(), display="forget the recorded VRRP state (drill)")
    t1 = clock()
    t.run(commands.systemctl("start", KEEPALIVED.name), display="start keepalived again (drill)")
    return t1
