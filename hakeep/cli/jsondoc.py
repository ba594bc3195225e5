"""Every ``--json`` document hakeep prints, built one way: a function per command's result, one dumper.

Each function takes the typed results a command produced and returns plain data (enums as their
values, tuples as lists); :func:`dump` writes it with the same settings everywhere. Field names are
part of hakeep's interface (README.md); change them only with care.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from enum import Enum
from typing import TYPE_CHECKING, Any

from hakeep.plan.releases import History
from hakeep.plan.steps import Plan
from hakeep.run.results import FinalCheck, HostOutcome, ValidationOutcome

if TYPE_CHECKING:  # (a deploy's documents need neither)
    from hakeep.ops.drill import DrillResult
    from hakeep.ops.status import PairStatus

Doc = dict[str, Any]


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dump(doc: object) -> str:
    return json.dumps(_plain(doc), indent=2)


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
                      "outside": final.outside}
    if timings:
        doc["timings"] = dict(timings)  # seconds per phase: connect, lock, facts, install, validate, rollout, proof
    return doc


def status_doc(pair: PairStatus) -> Doc:
    return {"vip": pair.vip, "verdict": pair.verdict, "reasons": pair.reasons, "holders": pair.holders,
            "healthy": pair.verdict.value == "healthy",
            "hosts": [{**asdict(r), "healthy": r.healthy} for r in pair.hosts],
            "probes": [asdict(p) for p in pair.probes],
            "arp": [asdict(a) for a in pair.arp]}  # each LB's own MAC, and the MACs answering ARP for the VIP


def releases_doc(histories: Mapping[str, History]) -> list[Doc]:
    return [{"host": host, "live": h.live.id if h.live else None, "releases": [
        {"id": r.id, "time": r.time, "kind": r.kind, "status": r.status, "operator": r.operator,
         "hakeep_version": r.hakeep_version, "inventory_digest": r.inventory_digest,
         "changed": r.changed_paths(), "rolls_back": r.rolls_back} for r in h.releases],
        "drift": [d.path for d in h.drift]} for host, h in histories.items()]


def drill_doc(result: DrillResult) -> Doc:
    return {**asdict(result), "ok": result.ok}  # probe: None, or {attempts, failed, longest_gap_s}
