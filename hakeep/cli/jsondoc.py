"""Every ``--json`` document hakeep prints, built one way: a function per command's result, one dumper.

Each function takes the typed results a command produced and returns plain data (enums as their
values, tuples as lists); :func:`envelope` wraps it in the fields every document has
(``schema_version``, ``command``, ``exit_code``, ``error``) and :func:`dump` writes it with the same
settings everywhere. The shapes are hakeep's interface: each command's is a JSON Schema in
``hakeep/schemas/`` (tests check every document against it); a change that breaks a reader bumps
:data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from enum import Enum
from typing import TYPE_CHECKING, Any

from hakeep.errors import HakeepError, InventoryError, Problem
from hakeep.plan.releases import History
from hakeep.plan.steps import Plan
from hakeep.run.results import FinalCheck, HostOutcome, ValidationOutcome

if TYPE_CHECKING:  # (a deploy's documents need none of these)
    from hakeep.inventory.model import Inventory
    from hakeep.ops.drill import DrillResult
    from hakeep.ops.status import PairStatus
    from hakeep.render.files import HostFiles

Doc = dict[str, Any]
SCHEMA_VERSION = 1  # of every document; hakeep/schemas/<command>.schema.json describe them


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dump(doc: object, *, compact: bool = False) -> str:
    """Indented, or one line (``compact``: a stream of documents, one per line)."""
    return json.dumps(_plain(doc), separators=(",", ":")) if compact else json.dumps(_plain(doc), indent=2)


def envelope(command: str, body: Mapping[str, Any] | None, error: HakeepError | None, exit_code: int) -> Doc:
    """The one document a ``--json`` run prints: the command's fields, its exit code, and the error
    it printed (``null`` when none), so a failed or refused run is a document too, never nothing."""
    return {"schema_version": SCHEMA_VERSION, "command": command, **(body or {}), "exit_code": exit_code,
            "error": None if error is None else error_doc(error)}


def error_doc(error: HakeepError) -> Doc:
    """An inventory's problems each with its key path, under a one-line message."""
    if isinstance(error, InventoryError):
        n = len(error.problems)
        return {"message": f"{error.source}: not a usable inventory: {n} problem{'s' if n != 1 else ''}",
                "hint": error.hint, "problems": [problem_doc(p) for p in error.problems]}
    return {"message": error.message, "hint": error.hint, "problems": []}


def problem_doc(problem: Problem, severity: str = "error") -> Doc:
    return {"path": problem.path, "message": problem.message, "severity": severity}


def plan_doc(plan: Plan, outcomes: Sequence[HostOutcome] = (), final: FinalCheck | None = None, *,
             validations: Mapping[str, ValidationOutcome] | None = None, dry_run: bool = False,
             timings: Mapping[str, float] | None = None) -> Doc:
    doc: Doc = {
        "kind": plan.kind, "release": plan.release_id, "dry_run": dry_run, "changed": plan.changed,
        "errors": plan.errors, "warnings": plan.warnings, "side_by_side": plan.side_by_side,
        "hosts": [{
            "host": hp.host, "holds_vip": hp.holds_vip, "changed": hp.changed, "packages": hp.packages,
            "versions": {v.package: {"version": v.version or None, "source": v.source or None} for v in hp.versions},
            "steps": [s.describe for s in hp.ordered],
            "files": [{"path": c.path, "action": c.action, "diff": c.diff} for c in hp.changes],
            "drift": [{"path": d.path, "since_release": d.release} for d in hp.drift],
            "validation": validations[hp.host].status if validations and hp.host in validations else None,
        } for hp in plan.hosts],
    }
    if outcomes:
        doc["outcomes"] = [{"host": o.host, "status": o.status, "detail": o.detail, "restored": o.restored,
                            "seconds": round(o.seconds, 2)} for o in outcomes]
    if final is not None:
        doc["vip"] = {"address": plan.vip, "holders": final.holders,
                      "ports": {str(p): ok for p, ok in final.ports.items()}, "ok": final.ok,
                      "outside": final.outside,
                      "others": [{"name": name, "address": address, "holders": c.holders,
                                  "ports": {str(p): ok for p, ok in c.ports.items()}, "ok": c.ok, "outside": c.outside}
                                 for name, address, c in final.others]}
    if timings:
        doc["timings"] = dict(timings)  # seconds per phase: connect, lock, facts, install, validate, rollout, proof
    return doc


def status_doc(pair: PairStatus) -> Doc:
    return {"vip": pair.vip, "verdict": pair.verdict, "reasons": pair.reasons, "holders": pair.holders,
            "healthy": pair.verdict.value == "healthy",
            "hosts": [{**asdict(r), "healthy": r.healthy} for r in pair.hosts],
            "probes": [asdict(p) for p in pair.probes],
            "arp": [asdict(a) for a in pair.arp],  # each LB's own MAC, and the MACs answering ARP for the VIP
            "notes": pair.notes,
            # every VIP (the first is the one above), each judged alone; "verdict" above is the worst
            "vips": [{"name": p.name, "vip": p.vip, "verdict": p.verdict, "holders": p.holders, "reasons": p.reasons,
                      "states": {h.host: h.vrrp_state for h in p.hosts if h.reachable},
                      "probes": [asdict(x) for x in p.probes]} for p in pair.every_vip]}


def releases_doc(histories: Mapping[str, History], unreachable: Mapping[str, str]) -> Doc:
    return {"hosts": [{"host": host, "live": h.live.id if h.live else None, "releases": [
        {"id": r.id, "time": r.time, "kind": r.kind, "status": r.status, "operator": r.operator,
         "hakeep_version": r.hakeep_version, "inventory_digest": r.inventory_digest,
         "changed": r.changed_paths(), "rolls_back": r.rolls_back} for r in h.releases],
        "drift": [d.path for d in h.drift]} for host, h in histories.items()],
        "unreachable": [{"host": n, "reason": why} for n, why in unreachable.items()]}


def drill_doc(mode: str, before: PairStatus | None, results: Sequence[DrillResult], *, rounds: int,
              finished: bool = False) -> Doc:
    """The pair as the drill found it (``null``: it did not get that far), then every round done;
    ``ok`` only when the drill ran to its end, every round asked for was done, and each moved the
    VIP in time and came back (a drill refused, failed or interrupted after a good round is not ok)."""
    return {"mode": mode, "rounds_asked": rounds, "status": status_doc(before) if before is not None else None,
            "rounds": [{**asdict(r), "ok": r.ok} for r in results],  # probe: None, or {attempts, failed, longest_gap_s}
            "ok": finished and len(results) == rounds and all(r.ok for r in results)}


def validate_doc(source: str, inv: Inventory | None, errors: Sequence[Problem] = (), warnings: Sequence[Problem] = (),
                 *, offline: bool, valid: bool = False) -> Doc:
    """``inventory`` is ``null`` when the file could not be read into one; ``valid`` as the exit code says."""
    return {"source": source, "valid": valid, "offline": offline,
            "inventory": None if inv is None else {
                "cluster": inv.cluster.name, "vip": str(inv.cluster.vip),
                "virtual_router_id": inv.cluster.virtual_router_id,
                "lbs": [{"name": lb.name, "address": str(lb.address), "interface": lb.interface,
                         "priority": lb.priority} for lb in inv.lbs],
                "frontends": [{"name": fe.name, "port": fe.port, "check": fe.check,
                               "servers": len(fe.servers)} for fe in inv.frontends]},
            "problems": [problem_doc(p) for p in errors] + [problem_doc(p, "warning") for p in warnings]}


def render_doc(hosts: Mapping[str, HostFiles], warnings: Sequence[Problem], *, show_secrets: bool,
               output: str | None = None, written: Mapping[tuple[str, str], str] | None = None) -> Doc:
    """Every LB's files with their modes; contents masked unless ``show_secrets`` (and always when
    written to ``output``: the files on disk have them). ``written``: (LB, remote path) -> local path."""
    return {"output": output, "problems": [problem_doc(p, "warning") for p in warnings], "hosts": [{
        "host": name, "files": [{"path": f.path, "mode": f"{f.mode:04o}",
                                 "content": f.content.decode() if show_secrets and output is None else f.masked_text(),
                                 "written": (written or {}).get((name, f.path))} for f in host.files]}
        for name, host in hosts.items()]}
