"""``hakeep releases``: list each host's release history (marking the live one); changes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.commands.options import add_read_arguments

    add_read_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from hakeep import exitcodes, report, report_plan
    from hakeep.inventory import load_inventory
    from hakeep.releases import drift, history, live
    from hakeep.session import open_session

    inv = load_inventory(Path(args.inventory))
    with open_session(inv, lock=False, accept_new_host_keys=args.accept_new_host_keys) as session:
        facts = session.facts
    doc = []
    for lb in inv.lbs:
        rels = history(facts[lb.name])
        current = live(rels)
        if args.json:
            doc.append({"host": lb.name, "live": current.id if current else None, "releases": [
                {"id": r.id, "time": r.time, "kind": r.kind, "status": r.status, "operator": r.operator,
                 "hakeep_version": r.hakeep_version, "inventory_digest": r.inventory_digest,
                 "changed": r.changed_paths(), "rolls_back": r.rolls_back} for r in rels],
                "drift": [d.path for d in drift(facts[lb.name], rels)]})
        else:
            report.out().print(report_plan.releases_table(lb.name, rels, current.id if current else None))
            for d in drift(facts[lb.name], rels):
                report.line(f"  drift: {d.path} edited on the host since release {d.release}", style="magenta")
    if args.json:
        print(json.dumps(doc, indent=2))
    return exitcodes.OK
