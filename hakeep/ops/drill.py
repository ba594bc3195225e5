"""The failover drill: the recipe's manual check, automated and timed.

Stop keepalived on the LB that holds the VIP, measure how long until exactly one other LB holds it
and the frontends answer through it, start keepalived again and wait until the old holder is back
in MASTER or BACKUP. Every wait is bounded. Works on an open :class:`~hakeep.run.session.Session`
(locked: the drill changes the hosts for a few seconds) and returns a frozen :class:`DrillResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hakeep.errors import HakeepError
from hakeep.hosts import commands
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, Transport
from hakeep.layout import KEEPALIVED, UNIT_NAMES


@dataclass(frozen=True)
class DrillResult:
    old_holder: str
    new_holder: str | None
    vip_moved_s: float | None  # stop issued -> VIP on exactly one other LB
    frontends_s: float | None  # stop issued -> every frontend port answers through the VIP
    recovered_s: float | None  # start issued -> old holder in MASTER/BACKUP again
    final_holder: str | None
    limit_s: float

    @property
    def ok(self) -> bool:
        return (self.vip_moved_s is not None and self.vip_moved_s <= self.limit_s
                and self.frontends_s is not None and self.recovered_s is not None and self.final_holder is not None)


class DrillError(HakeepError):
    pass


def _where(transports: Mapping[str, Transport], vip: str, ports: tuple[int, ...]) -> dict[str, str]:
    script = commands.vip_check(vip, ports)
    res = parallel(lambda n: transports[n].run(script, display="where is the VIP", check=False, timeout=10),
                   list(transports))
    return {n: r.text() if isinstance(r, CommandResult) else "" for n, r in res.items()}


def holders_of(out: Mapping[str, str]) -> list[str]:
    return [n for n, text in out.items() if "holder=" in text]


def run_drill(transports: Mapping[str, Transport], vip: str, ports: tuple[int, ...], *, limit_s: float = 3.0,
              timeout_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> DrillResult:
    before = holders_of(_where(transports, vip, ()))
    if len(before) != 1:
        raise DrillError(f"the VIP {vip} is on {len(before)} LBs ({', '.join(before) or 'none'}); "
                         "a drill needs exactly one holder", hint="run `hakeep status` and fix that first")
    old = before[0]
    others = {n: t for n, t in transports.items() if n != old}
    t0 = clock()
    transports[old].run(commands.systemctl("stop", KEEPALIVED.name), display="stop keepalived (drill)")
    moved = frontends = None
    new: str | None = None
    try:
        while clock() - t0 < timeout_s and (moved is None or frontends is None):
            out = _where(others, vip, ports if moved is not None else ())
            now = clock() - t0
            hs = holders_of(out)
            if moved is None and len(hs) == 1:
                moved, new = now, hs[0]
                continue
            if moved is not None:
                vantage = next(iter(out.values()), "")
                if all(f"port={p}:open" in vantage for p in ports):
                    frontends = now
            time.sleep(0.02)
    finally:
        t1 = clock()
        transports[old].run(commands.systemctl("start", KEEPALIVED.name), display="start keepalived (drill)")
    recovered = None
    gate = commands.units_gate(dict.fromkeys(UNIT_NAMES, True))
    while clock() - t1 < timeout_s:
        if transports[old].run(gate, display="old holder back in MASTER/BACKUP", check=False).ok:
            recovered = clock() - t1
            break
        time.sleep(0.2)
    final: str | None = None
    deadline = clock() + timeout_s
    while clock() < deadline:
        hs = holders_of(_where(transports, vip, ()))
        if len(hs) == 1:
            final = hs[0]
            break
        time.sleep(0.2)
    return DrillResult(old, new, moved, frontends, recovered, final, limit_s)
