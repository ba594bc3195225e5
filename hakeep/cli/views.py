"""Plans, progress and results for people (rich): what the commands that talk to hosts print.

Owns the dry-run view (per host: ordered steps and coloured unified diffs, secrets already masked
by the planner), the live progress of a deploy (one line per finished step under a spinner), and
the summary, releases and status tables. With :mod:`.output`, the only modules that import rich;
the JSON documents are :mod:`.jsondoc`'s.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hakeep.cli.output import out, reader_gone
from hakeep.layout import RELEASES_DIR
from hakeep.plan.releases import Release, ReleaseStatus
from hakeep.plan.steps import ChangeKind, HostPlan, Plan, Step
from hakeep.run.results import (
    FinalCheck,
    HostOutcome,
    Outcome,
    StepStatus,
    ValidationOutcome,
    ValidationStatus,
)

if TYPE_CHECKING:  # (imported where they are used: a deploy needs neither, nor a spinner off a terminal)
    from rich.status import Status

    from hakeep.ops.drill import DrillResult
    from hakeep.ops.status import PairStatus

_VALIDATION_STYLE = {ValidationStatus.OK: "green", ValidationStatus.NOT_INSTALLED: "yellow",
                     ValidationStatus.REJECTED: "bold red", ValidationStatus.ERROR: "bold red"}
_PROGRESS_MARK: dict[StepStatus | ValidationStatus, tuple[str, str]] = {
    StepStatus.OK: ("ok", "green"), StepStatus.FAILED: ("FAILED", "bold red"),
    ValidationStatus.OK: ("ok", "green"), ValidationStatus.NOT_INSTALLED: ("skip", "yellow"),
    ValidationStatus.REJECTED: ("REJECTED", "bold red"), ValidationStatus.ERROR: ("ERROR", "bold red")}
_OUTCOME_STYLE = {Outcome.CHANGED: "green", Outcome.UNCHANGED: "dim", Outcome.FAILED: "bold red",
                  Outcome.SKIPPED: "yellow"}
_RELEASE_STYLE = {ReleaseStatus.FAILED_RESTORED: "yellow", ReleaseStatus.FAILED: "red",
                  ReleaseStatus.CORRUPT: "red", ReleaseStatus.IN_PROGRESS: "yellow"}


def diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append(line, style=style)
    return text


def print_plan(plan: Plan, validations: Mapping[str, ValidationOutcome] | None = None,
               console: Console | None = None, *, steps: bool = True) -> None:
    con = console or out()
    for w in plan.warnings:
        con.print(Text.assemble(("warning: ", "bold yellow")) + Text(w))
    for e in plan.errors:
        con.print(Text.assemble(("preflight: ", "bold red")) + Text(e))
    if plan.side_by_side:
        con.print(Text("no LB serves traffic yet (no VIP, haproxy and keepalived stopped everywhere): "
                       "the LBs are set up side by side, each behind its own health gate"))
    for hp in plan.hosts:
        _print_host(con, hp, validations.get(hp.host) if validations else None, steps=steps)


def _print_host(con: Console, hp: HostPlan, validation: ValidationOutcome | None, *, steps: bool = True) -> None:
    role = (" (leaves the set: goes first)" if hp.leaving else " (holds the VIP: goes last)" if hp.holds_vip
            else "")
    con.print(Text(f"\n== {hp.host}{role}", style="bold"))
    if hp.versions:
        con.print(Text("   " + ", ".join(v.describe() for v in hp.versions), style="dim"))
    for d in hp.drift:
        con.print(Text("   drift: ", style="bold magenta")
                  + Text(f"{d.path} was edited on the host since release {d.release} "
                         "(not by hakeep); the change below overwrites it", style="magenta"))
    if validation is not None:
        label = {ValidationStatus.OK: "new configs accepted by the host's haproxy -c and keepalived -t",
                 ValidationStatus.NOT_INSTALLED: "cannot validate yet: " + validation.output.replace("\n", "; ")
                 + " (deploy installs first, then validates before replacing anything)",
                 ValidationStatus.REJECTED: "the host REJECTS the new config:",
                 ValidationStatus.ERROR: "validation could not run:"}[validation.status]
        con.print(Text.assemble(("   validate: ", "bold")) + Text(label, style=_VALIDATION_STYLE[validation.status]))
        if validation.status.refused and validation.output:
            con.print(Text("      " + validation.output.replace("\n", "\n      "), style="red"))
    if not hp.changed:
        con.print(Text("   no changes", style="green"))
        return
    for i, step in enumerate(hp.ordered if steps else (), 1):
        con.print(Text(f"   {i:2}. ") + Text(step.describe))
    for ch in hp.changes:
        if ch.action is ChangeKind.MODE:
            con.print(Text(f"   ~ {ch.path}: mode {ch.old_mode or 0:04o} -> {ch.new_mode:04o}", style="yellow"))
        elif ch.diff:
            con.print(diff_text(ch.diff), end="")


class LiveProgress:
    """The executor's observer: a spinner on the current step, one line per finished step."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or out()
        self.status: Status | None = None

    def __enter__(self) -> LiveProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.status is None and self.console.is_terminal:  # off a terminal a spinner shows nothing
            self.status = self.console.status("connecting", spinner="dots")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def message(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None:
        if status is StepStatus.RUNNING:
            self.message(f"{host}: {step.describe}")
            return
        mark, style = _PROGRESS_MARK[status]
        line = Text(f"{host:<20} ") + Text(f"{mark:<8}", style=style) + Text(step.describe)
        self.console.print(line)
        if detail and mark != "ok":
            self.console.print(Text("    " + detail.replace("\n", "\n    "), style="dim"))


def summary_table(outcomes: Sequence[HostOutcome], final: FinalCheck | None, title: str = "hakeep deploy") -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("host", overflow="fold")
    table.add_column("result", overflow="fold")
    table.add_column("time", justify="right", overflow="fold")
    table.add_column("detail", overflow="fold")
    for o in outcomes:
        style = _OUTCOME_STYLE[o.status]
        result = o.status.value
        if o.status is Outcome.FAILED:
            result += " (restored)" if o.restored else " (RESTORE FAILED)"
        table.add_row(o.host, Text(result, style=style), f"{o.seconds:.1f}s" if o.seconds else "",
                      o.detail.splitlines()[0] if o.detail else "")
    if final is not None:
        holders = ", ".join(final.holders) or "nobody"
        ports = " ".join(f"{p}:{'open' if ok else 'CLOSED'}" for p, ok in final.ports.items())
        table.caption = f"VIP on {holders}; through the VIP: {ports}" + (
            f"; ALSO answered for by a host outside the set: {', '.join(final.outside)}" if final.outside else "")
        for name, address, check in final.others:
            through = " ".join(f"{p}:{'open' if ok else 'CLOSED'}" for p, ok in check.ports.items())
            table.caption += (f"\nVIP {name} {address} on {', '.join(check.holders) or 'nobody'}; through it: {through}"
                              + (f"; ALSO answered for by a host outside the set: {', '.join(check.outside)}"
                                 if check.outside else ""))
    return table


def releases_table(host: str, releases: Sequence[Release], live_id: str | None) -> Table:
    table = Table(title=f"{host}: releases in {RELEASES_DIR}", title_justify="left")
    for col in ("", "id", "time", "kind", "status", "operator", "what changed"):
        table.add_column(col, overflow="fold")
    for r in releases:
        style = _RELEASE_STYLE.get(r.status, "")
        table.add_row("*" if r.id == live_id else "", r.id, r.time, r.kind.value, Text(r.status.value, style=style),
                      r.operator, r.summary())
    if not releases:
        table.caption = "no releases: hakeep never changed this host"
    return table


_VERDICT_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "split brain": "bold red",
                  "VIP lost": "bold red", "unreachable": "bold red"}


def status_table(pair: PairStatus) -> Table:
    table = Table(title=f"VIP {pair.name} {pair.vip}" if pair.others else f"VIP {pair.vip}", title_justify="left")
    for col in ("host", "address", "reached", "VIP", "VRRP", "haproxy", "keepalived", "servers up", "live release",
                "drift"):
        table.add_column(col, overflow="fold")

    def unit(state: str, pid: int) -> Text:
        return Text(f"{state} ({pid})" if pid else state, style="green" if state == "active" else "bold red")

    for r in pair.hosts:
        if not r.reachable:
            table.add_row(r.host, r.address, Text(f"no: {r.reason}", style="bold red"), "?", "?", "?", "?", "?", "?",
                          "?")
            continue
        table.add_row(r.host, r.address, "yes", Text("yes", style="bold green") if r.holds_vip else "", r.vrrp_state,
                      unit(r.haproxy, r.haproxy_pid), unit(r.keepalived, r.keepalived_pid),
                      f"{r.servers_up}/{r.servers_total}", r.live_release,
                      Text(", ".join(r.drift), style="magenta") if r.drift else "")
    seen: dict[str, list[str]] = {}
    for p in pair.probes:
        seen.setdefault(p.vantage, []).append(f"{p.port} {p.result}")
    caption = ["; ".join(f"VIP from {where}: {', '.join(res)}" for where, res in seen.items())]
    for other in pair.others:  # the other VIPs: where each is, and what answers through it
        states = ", ".join(f"{r.host} {r.vrrp_state}" for r in other.hosts if r.reachable)
        ports: dict[int, list[str]] = {}
        for p in other.probes:
            if p.result == "open":
                ports.setdefault(p.port, []).append(p.vantage)
        through = ", ".join(f"{port} open" for port in sorted(ports)) or "no port open"
        caption.append(f"VIP {other.name} {other.vip} on {', '.join(other.holders) or 'no LB'} "
                       f"(VRRP: {states}); through it: {through}")
    table.caption = "\n".join(caption)
    return table


def print_verdict(pair: PairStatus, console: Console | None = None) -> None:
    con = console or out()
    where = ", ".join(pair.holders) or "no LB"
    style = _VERDICT_STYLE[pair.verdict.value]
    others = "".join(f", VIP {o.name} {o.vip} on {', '.join(o.holders) or 'no LB'}" for o in pair.others)
    first = f"VIP {pair.name} {pair.vip}" if pair.others else f"VIP {pair.vip}"
    con.print(Text.assemble((f"{pair.verdict.value}: ", style), f"{first} on {where}{others}"))
    for reason in pair.reasons:
        con.print(Text("  - " + reason))
    for note in pair.notes:
        con.print(Text("  note: " + note, style="yellow"))


def watch_status(snapshot: Callable[[], PairStatus], interval: float) -> PairStatus | None:
    """Refresh the status table in place until Ctrl-C; print each change of VIP holder or verdict with
    the time."""
    last: PairStatus | None = None
    con = out()
    try:
        with Live(Text("asking the LBs..."), console=con, auto_refresh=False) as live:
            while True:
                pair = snapshot()
                for o, old in zip(pair.others, last.others if last is not None else (), strict=False):
                    if o.holders != old.holders:
                        live.console.print(Text(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} VIP {o.name} {o.vip}: "
                                                f"{', '.join(old.holders) or 'no LB'} -> "
                                                f"{', '.join(o.holders) or 'no LB'}", style=_VERDICT_STYLE[
                                                    o.verdict.value]))
                if last is not None and (pair.holders, pair.verdict) != (last.holders, last.verdict):
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                    now = ", ".join(pair.holders) or "no LB"
                    line = (f"{stamp} VIP {pair.vip}: {', '.join(last.holders) or 'no LB'} -> {now} "
                            f"({pair.verdict.value})" if pair.holders != last.holders else
                            f"{stamp} VIP {pair.vip} on {now}: {last.verdict.value} -> {pair.verdict.value}")
                    live.console.print(Text(line, style=_VERDICT_STYLE[pair.verdict.value]))
                last = pair
                grid = Table.grid()
                grid.add_row(status_table(pair))
                verdict = Text(f"{pair.verdict.value}: ", style=_VERDICT_STYLE[pair.verdict.value])
                verdict.append("; ".join(pair.reasons) or f"VIP on {', '.join(pair.holders)}")
                grid.add_row(verdict)
                grid.add_row(Text(f"{time.strftime('%H:%M:%S')}: refreshing every {interval:g}s; Ctrl-C to stop",
                                  style="dim"))
                live.update(grid, refresh=True)
                if reader_gone():  # `| head`: nobody to print for
                    break
                time.sleep(interval)
    except KeyboardInterrupt as exc:  # Ctrl-C ends watching; SIGTERM and SIGHUP end hakeep
        if getattr(exc, "signum", signal.SIGINT) != signal.SIGINT:
            raise
    if last is not None and not con.is_terminal:  # a pipe or a log saw no live table: leave the last one
        con.print(status_table(last))
        print_verdict(last, con)
    return last


def _secs(v: float | None) -> str:
    return f"{v:.2f}s" if v is not None else "-"


def drill_line(r: DrillResult) -> Text:
    """One round as it finishes."""
    from hakeep.ops.drill import FAULTED_UNIT, Mode

    if r.mode is Mode.MASTER_UNHEALTHY:
        clean = r.probe is not None and not (r.probe.failed or r.probe.errors)
        text = Text(f"{r.master}: out of rotation on {r.old_holder} "
                    + ((("before any client saw a bad answer" if clean else
                         f"{_secs(r.out_s)} after the clients' first bad answer") + f", back after {_secs(r.back_s)}")
                       if r.out_s is not None else "never (it did not leave rotation while watched)")
                    + ("" if r.out_s is None or r.back_s is not None else " (not back while watched)"))
    else:
        unit = FAULTED_UNIT.get(r.mode)
        text = Text(("" if r.vip == "vip" else f"VIP {r.vip}: ")
                    + f"round {r.round} ({r.mode.value}): {r.old_holder} out; VIP on {r.new_holder or 'no other LB'} "
                    f"after {_secs(r.vip_moved_s)}, frontends after {_secs(r.frontends_s)}; "
                    + (f"{unit} down for {_secs(r.unit_back_s)}" + _by_systemd(r.auto_restarted) if unit else "")
                    + f"{r.old_holder} back after {_secs(r.recovered_s)}")
    if r.probe is not None:
        what = "requests" if r.mode is Mode.MASTER_UNHEALTHY else "connects"
        text.append(f"; client: {r.probe.failed}/{r.probe.attempts} {what} failed"
                    + (f", {r.probe.errors} bad answers" if r.mode is Mode.MASTER_UNHEALTHY else "")
                    + f", bad for {r.probe.bad_span_s:.2f}s, longest gap {r.probe.longest_gap_s:.2f}s")
    return text


def _by_systemd(auto: bool | None) -> str:
    if auto is None:
        return "; "
    return " (restarted by systemd); " if auto else " (systemd did not restart it: the drill did); "


def drill_table(results: Sequence[DrillResult]) -> Table:
    from hakeep.ops.drill import Mode

    table = Table(title="hakeep drill", title_justify="left")
    for col in ("round", "mode", "from", "to", "failover", "frontends", "unit down", "client gap",
                "failed/errors", "fail-back", "result"):
        table.add_column(col, overflow="fold")
    for r in results:
        master = r.mode is Mode.MASTER_UNHEALTHY
        table.add_row(str(r.round) if r.vip == "vip" else f"{r.vip} {r.round}",
                      r.mode.value + (f" {r.master}" if master else ""), r.old_holder,
                      r.new_holder or "-", _secs(r.out_s if master else r.vip_moved_s),
                      _secs(r.frontends_s), _secs(r.back_s if master else r.unit_back_s),
                      _secs(r.probe.longest_gap_s) if r.probe else "-",
                      f"{r.probe.failed}+{r.probe.errors}/{r.probe.attempts}" if r.probe else "-",
                      _secs(r.failback_s), Text("ok", style="green") if r.ok else Text("FAILED", style="bold red"))
    return table
