"""The failover drill: the recipe's manual check, automated, timed, and seen as a client sees it.

On a healthy pair only (see :mod:`.status`), each round takes the VIP holder out one way: ``stop``
(systemctl stop keepalived: it says goodbye), ``crash`` (SIGKILL: it says nothing; systemd restarts
it, a timer set on the host first is the backstop), ``link`` (its VRRP interface down; a timer set on
the host *before* the link goes down brings it back, so a lost SSH session cannot leave it down),
``haproxy-stop`` or ``haproxy-crash`` (haproxy stopped, or SIGKILLed with its workers: systemd's
restart races the failover, and both are timed). Then it measures: the VIP on exactly one other LB,
the frontends answering through it, the failed unit back, the old holder back in MASTER/BACKUP, and
the fail-back when it takes the VIP back (preemption); with a :class:`~.probe.Prober`, the failed
client connects and the longest gap. ``master-unhealthy`` (:func:`watch_master`) changes nothing: it
watches one master leave haproxy's rotation on the holder and come back while someone makes it
unhealthy, and counts what HTTP clients of the VIP got meanwhile. Every wait is bounded. Works on an
open, locked session; returns frozen results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts import commands
from hakeep.hosts.factlines import parse_stat
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, Transport
from hakeep.layout import HAPROXY, KEEPALIVED, UNIT_NAMES
from hakeep.ops.probe import Prober, ProbeResult

LINK_TIMER_UNIT = "hakeep-drill-link-up"
RESTART_TIMER_UNIT = "hakeep-drill-restart"


class Mode(StrEnum):
    STOP = "stop"
    CRASH = "crash"
    LINK = "link"
    HAPROXY_STOP = "haproxy-stop"
    HAPROXY_CRASH = "haproxy-crash"
    MASTER_UNHEALTHY = "master-unhealthy"


CRASHES = (Mode.CRASH, Mode.HAPROXY_CRASH)  # the unit comes back by itself (systemd's Restart=)
FAULTED_UNIT = {Mode.STOP: KEEPALIVED.name, Mode.CRASH: KEEPALIVED.name, Mode.HAPROXY_STOP: HAPROXY.name,
                Mode.HAPROXY_CRASH: HAPROXY.name}


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
    unit_back_s: float | None = None  # the unit taken out: inactive -> active again (systemd's own clock)
    auto_restarted: bool | None = None  # crash modes: whether systemd's Restart= brought it back (not the drill)
    master: str | None = None  # master-unhealthy: the master watched
    out_s: float | None = None  # master-unhealthy: the clients' first bad answer -> haproxy took it out of rotation
    back_s: float | None = None  # master-unhealthy: out of rotation -> back in
    vip: str = "vip"  # the VIP drilled: its [[vip]] name ("vip" for the [cluster] vip form)

    @property
    def ok(self) -> bool:
        if self.mode is Mode.MASTER_UNHEALTHY:
            return (self.out_s is not None and self.back_s is not None and self.final_holder is not None
                    and self.probe is not None and self.probe.bad_span_s <= self.limit_s)
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


def _one_holder(transports: Mapping[str, Transport], vip: str) -> str:
    """The one LB holding the VIP; a drill on any other pair is refused."""
    before = holders_of(where(transports, vip))
    if len(before) != 1:
        raise DrillRefused(f"the VIP {vip} is on {len(before)} LBs ({', '.join(before) or 'none'}); "
                           "a drill needs exactly one holder", hint="run `hakeep status` and fix that first")
    return before[0]


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
              probe: Prober | None = None, round_no: int = 1, failback_s: float = 10.0,
              clock: Callable[[], float] = time.monotonic) -> DrillResult:
    """One round. ``failback_s``: how long to wait for the old holder to take the VIP back (0: it
    will not: preempt = false)."""
    old = _one_holder(transports, vip)
    others = {n: t for n, t in transports.items() if n != old}
    moved = frontends = None
    new: str | None = None
    unit = FAULTED_UNIT.get(mode)
    pre = _unit_times(transports[old], unit) if unit else {}
    if probe is not None:
        probe.start()
    try:
        t0 = tf = clock()
        try:
            _fault(transports[old], mode, interface, link_s)
            tf = clock()  # the fault's command is done: the unit is down by now
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
        finally:  # also on Ctrl-C, SIGTERM, SIGHUP: the old holder gets its unit back first
            with signals.shielded():
                t1, back, auto = _restore(transports[old], mode, t0, link_s, pre=pre, tf=tf, clock=clock)
        gate = commands.units_gate(dict.fromkeys(UNIT_NAMES, True))
        recovered = failback = None
        if _wait(lambda: _ok(transports[old], gate, "old holder back in MASTER/BACKUP"), timeout_s, clock, 0.2):
            recovered = clock() - t1
        if failback_s and _wait(lambda: holders_of(where(transports, vip)) == [old], failback_s, clock, 0.1):
            failback = clock() - t1
        _wait(lambda: len(holders_of(where(transports, vip))) == 1, timeout_s, clock, 0.2)
        final = holders_of(where(transports, vip))
    finally:
        result = probe.stop() if probe is not None else None
    return DrillResult(round_no, mode, old, new, moved, frontends, recovered, failback,
                       final[0] if len(final) == 1 else None, limit_s, result, unit_back_s=back,
                       auto_restarted=auto)


def _fault(t: Transport, mode: Mode, interface: str, link_s: float) -> None:
    if mode is Mode.STOP:
        t.run(commands.systemctl("stop", KEEPALIVED.name), display="stop keepalived (drill)")
    elif mode in CRASHES:
        unit = FAULTED_UNIT[mode]
        t.run(commands.kill_unit(unit, link_s, RESTART_TIMER_UNIT),
              display=f"SIGKILL {unit}, a timer on the host starts it in {link_s:g}s should systemd not (drill)")
    elif mode is Mode.HAPROXY_STOP:
        t.run(commands.stop_unit_for(HAPROXY.name, link_s, RESTART_TIMER_UNIT),
              display=f"stop haproxy, a timer on the host starts it in {link_s:g}s should hakeep not (drill)")
    else:
        t.run(commands.link_down_for(interface, link_s, LINK_TIMER_UNIT),
              display=f"{interface} down for {link_s:g}s, brought back by a timer on the host (drill)")


def _unit_times(t: Transport, unit: str) -> dict[str, int]:
    """The unit's automatic restarts and state-change times (µs), and ``active`` 1/0; {} when it
    cannot be asked."""
    try:
        res = t.run(commands.unit_times(unit), display=f"{unit}'s state and restarts (drill)", check=False,
                    timeout=10)
    except HakeepError:
        return {}
    kv = dict(line.split("=", 1) for line in res.text().splitlines() if "=" in line)
    out = {k: int(v) for k, v in kv.items() if v.isdigit()}
    out["active"] = int(kv.get("ActiveState") == "active")
    return out


def _restore(t: Transport, mode: Mode, t0: float, link_s: float, *, pre: Mapping[str, int], tf: float,
             clock: Callable[[], float]) -> tuple[float, float | None, bool | None]:
    """Undo the fault: (the time the old holder was given back, for recovery and fail-back times;
    how long the unit taken out was inactive, by systemd's own clock; whether systemd's Restart=
    brought it back). ``pre``: the unit's :func:`_unit_times` before the fault; ``tf``: when the
    fault's command was done. A crashed unit is given until shortly before the host's backstop timer
    to come back by itself; the drill then starts it (a no-op when it runs) and only then cancels
    the timer. keepalived's recorded VRRP state is dropped before the drill starts it, so recovery
    is what keepalived reports afterwards (after a SIGKILL the file still says MASTER)."""
    if mode is Mode.LINK:  # the host's own timer (accurate to 0.1 s) brings the link back at that moment
        time.sleep(max(0.0, t0 + link_s - clock()))
        return clock(), None, None
    unit = FAULTED_UNIT[mode]
    auto = None
    if mode in CRASHES:
        def restarted() -> bool:
            now = _unit_times(t, unit)
            return bool(now.get("active")) and now.get("NRestarts", 0) > pre.get("NRestarts", 0)
        auto = _wait(restarted, max(0.0, t0 + link_s - 0.5 - clock()), clock, 0.05)
    if unit == KEEPALIVED.name and not auto:
        t.run(commands.forget_vrrp_state(), display="forget the recorded VRRP state (drill)")
    t1 = clock()
    t.run(commands.start_then_cancel(unit, RESTART_TIMER_UNIT),
          display=f"start {unit} again, then cancel the drill's backstop timer")
    times = _unit_times(t, unit)
    left, back = times.get("ActiveExitTimestampMonotonic", 0), times.get("ActiveEnterTimestampMonotonic", 0)
    fresh = left > pre.get("ActiveExitTimestampMonotonic", 0)  # it did leave active this round
    down = round((back - left) / 1e6, 3) if times.get("active") and fresh and 0 < left < back else None
    if auto and down is not None:  # given back when systemd restarted it (the drill only looked later)
        t1 = min(t1, tf + down)
    return t1, down, auto


def watch_master(transports: Mapping[str, Transport], vip: str, backend: str, master: str, probe: Prober, *,
                 observe_s: float, limit_s: float, clock: Callable[[], float] = time.monotonic) -> DrillResult:
    """While someone makes ``master`` unhealthy and healthy again (its kube-apiserver restarted, or the
    lab's hook): when haproxy on the VIP holder takes it out of rotation, when it puts it back, and what
    ``probe`` (HTTP through the VIP) got meanwhile. Changes nothing; ends once it is back, or after
    ``observe_s``."""
    old = _one_holder(transports, vip)
    holder = transports[old]
    states = commands.server_states()

    def state() -> str:
        try:
            res = holder.run(states, display=f"{backend}/{master} in haproxy (drill)", check=False, timeout=5)
        except HakeepError:
            return ""
        return parse_stat(res.text().splitlines()).get(backend, {}).get(master, "") if res.ok else ""

    def in_rotation(st: str) -> bool:
        return st.startswith(("UP", "no check"))  # "UP 1/2": failing, still in; "DOWN 1/3": passing, still out

    probe.start()
    out = back = None
    try:
        t0 = clock()
        down_at = None
        while clock() - t0 < observe_s and back is None:
            st = state()
            if down_at is None and st and not in_rotation(st):
                down_at = clock()
            elif down_at is not None and in_rotation(st):
                back = clock() - down_at
            time.sleep(0.1)
        if down_at is not None:
            out = max(0.0, down_at - (probe.first_bad if probe.first_bad is not None else down_at))
    finally:
        result = probe.stop()
    final = holders_of(where(transports, vip))
    return DrillResult(1, Mode.MASTER_UNHEALTHY, old, None, None, None, None, None,
                       final[0] if len(final) == 1 else None, limit_s, result, master=master,
                       out_s=round(out, 3) if out is not None else None,
                       back_s=round(back, 3) if back is not None else None)
