"""Printing plans and deploy results for people (rich) and for CI (JSON).

Owns the dry-run view (per host: ordered steps and coloured unified diffs, secrets already masked
by the planner), the live progress of a deploy (one line per finished step under a spinner), the
summary table, and the ``--json`` document. Besides :mod:`hakeep.report` and the CLI, the only
module that imports rich.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from hakeep.execute import FinalCheck, HostOutcome, ValidationOutcome
from hakeep.releases import Release
from hakeep.report import out
from hakeep.status import HostStatus
from hakeep.steps import HostPlan, Plan, Step


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
        con.print(Text("warning: ", style="bold yellow") + Text(w, style="yellow"))
    for e in plan.errors:
        con.print(Text("preflight: ", style="bold red") + Text(e))
    for hp in plan.hosts:
        _print_host(con, hp, validations.get(hp.host) if validations else None, steps=steps)


def _print_host(con: Console, hp: HostPlan, validation: ValidationOutcome | None, *, steps: bool = True) -> None:
    role = " (holds the VIP: goes last)" if hp.holds_vip else ""
    con.print(Text(f"\n== {hp.host}{role}", style="bold"))
    for d in hp.drift:
        con.print(Text("   drift: ", style="bold magenta")
                  + Text(f"{d.path} was edited on the host since release {d.release} "
                         "(not by hakeep); the change below overwrites it", style="magenta"))
    if validation is not None:
        style = {"ok": "green", "not-installed": "yellow"}.get(validation.status, "bold red")
        label = {"ok": "new configs accepted by the host's haproxy -c and keepalived -t",
                 "not-installed": "cannot validate yet: " + validation.output.replace("\n", "; ")
                 + " (deploy installs first, then validates before replacing anything)",
                 "rejected": "the host REJECTS the new config:",
                 "error": "validation could not run:"}[validation.status]
        con.print(Text("   validate: ", style="bold") + Text(label, style=style))
        if validation.status in ("rejected", "error") and validation.output:
            con.print(Text("      " + validation.output.replace("\n", "\n      "), style="red"))
    if not hp.changed:
        con.print(Text("   no changes", style="green"))
        return
    ordered: list[Step] = ([hp.install] if hp.install else []) + list(hp.steps)
    for i, step in enumerate(ordered if steps else [], 1):
        con.print(Text(f"   {i:2}. ") + Text(step.describe))
    for ch in hp.changes:
        if ch.action == "mode":
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
        if self.status is None:
            self.status = self.console.status("connecting", spinner="dots")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def message(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def step(self, host: str, step: Step, status: str, detail: str = "") -> None:
        if status == "running":
            self.message(f"{host}: {step.describe}")
            return
        mark, style = {"ok": ("ok", "green"), "failed": ("FAILED", "bold red"),
                       "not-installed": ("skip", "yellow"), "rejected": ("REJECTED", "bold red"),
                       "error": ("ERROR", "bold red")}.get(status, (status, ""))
        line = Text(f"{host:<20} ") + Text(f"{mark:<8}", style=style) + Text(step.describe)
        self.console.print(line)
        if detail and status not in ("ok",):
            self.console.print(Text("    " + detail.replace("\n", "\n    "), style="dim"))


def summary_table(outcomes: Sequence[HostOutcome], final: FinalCheck | None, title: str = "hakeep deploy") -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("host")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("detail")
    for o in outcomes:
        style = {"changed": "green", "unchanged": "dim", "failed": "bold red", "skipped": "yellow"}[o.status]
        result = o.status
        if o.status == "failed":
            result += " (restored)" if o.restored else " (RESTORE FAILED)"
        table.add_row(o.host, Text(result, style=style), f"{o.seconds:.1f}s" if o.seconds else "",
                      o.detail.splitlines()[0] if o.detail else "")
    if final is not None:
        holders = ", ".join(final.holders) or "nobody"
        ports = " ".join(f"{p}:{'open' if ok else 'CLOSED'}" for p, ok in final.ports.items())
        table.caption = f"VIP on {holders}; through the VIP: {ports}"
    return table


def to_json(plan: Plan, outcomes: Sequence[HostOutcome] = (), final: FinalCheck | None = None,
            validations: Mapping[str, ValidationOutcome] | None = None, dry_run: bool = False) -> str:
    doc: dict[str, Any] = {
        "kind": plan.kind, "release": plan.release_id, "dry_run": dry_run, "changed": plan.changed,
        "errors": list(plan.errors), "warnings": list(plan.warnings),
        "hosts": [{
            "host": hp.host, "holds_vip": hp.holds_vip, "changed": hp.changed,
            "packages": list(hp.packages),
            "steps": [s.describe for s in ([hp.install] if hp.install else []) + list(hp.steps)],
            "files": [{"path": c.path, "action": c.action, "diff": c.diff} for c in hp.changes],
            "drift": [{"path": d.path, "since_release": d.release} for d in hp.drift],
            "validation": (validations[hp.host].status if validations and hp.host in validations else None),
        } for hp in plan.hosts],
    }
    if outcomes:
        doc["outcomes"] = [{"host": o.host, "status": o.status, "detail": o.detail, "restored": o.restored,
                            "seconds": round(o.seconds, 2)} for o in outcomes]
    if final is not None:
        doc["vip"] = {"address": plan.vip, "holders": list(final.holders),
                      "ports": {str(p): ok for p, ok in final.ports.items()}, "ok": final.ok}
    return json.dumps(doc, indent=2)


def releases_table(host: str, releases: Sequence[Release], live_id: str | None) -> Table:
    table = Table(title=f"{host}: releases in /var/lib/hakeep/releases", title_justify="left")
    for col in ("", "id", "time", "kind", "status", "operator", "what changed"):
        table.add_column(col)
    for r in releases:
        style = {"complete": "", "failed-restored": "yellow", "failed": "red", "corrupt": "red",
                 "in-progress": "yellow"}.get(r.status, "")
        table.add_row("*" if r.id == live_id else "", r.id, r.time, r.kind, Text(r.status, style=style),
                      r.operator, r.summary())
    if not releases:
        table.caption = "no releases: hakeep never changed this host"
    return table


def status_table(vip: str, rows: Sequence[HostStatus]) -> Table:
    table = Table(title=f"VIP {vip}", title_justify="left")
    for col in ("host", "address", "VIP", "VRRP", "haproxy", "keepalived", "servers up", "live release", "drift"):
        table.add_column(col)
    for r in rows:
        def unit(state: str, pid: int) -> Text:
            return Text(f"{state} ({pid})" if pid else state, style="green" if state == "active" else "bold red")

        table.add_row(r.host, r.address, Text("yes", style="bold green") if r.holds_vip else "", r.vrrp_state,
                      unit(r.haproxy, r.haproxy_pid), unit(r.keepalived, r.keepalived_pid),
                      f"{r.servers_up}/{r.servers_total}", r.live_release,
                      Text(", ".join(r.drift), style="magenta") if r.drift else "")
    return table
