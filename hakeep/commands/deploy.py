"""``hakeep deploy``: preflight, install, validate, roll out with health gates, prove the VIP.

``--dry-run`` runs the same session and the same plan, validates the new configs on each host in a
private temp folder, prints the steps and diffs, and changes nothing. Exit codes: 0 done (dry-run:
nothing would change), 1 a host failed (it was restored), 2 bad input, 3 dry-run with changes
pending, 4 preflight or on-host validation refused the deploy (nothing changed). Heavy modules are
imported inside :func:`run` so ``hakeep --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hakeep import exitcodes

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hakeep.execute import FinalCheck, HostOutcome, ValidationOutcome
    from hakeep.plan import Plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="show the plan and diffs, validate on the hosts in a temp folder, change nothing")
    parser.add_argument("--limit", metavar="NAME", action="append",
                        help="deploy only this LB (repeatable); the others are still checked")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown SSH host keys (changed keys are always refused)")
    parser.add_argument("--templates", metavar="DIR", type=Path,
                        help="folder whose templates override the shipped ones")


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 - the deploy story, told in order
    from hakeep import report, report_plan
    from hakeep.errors import HakeepError, UsageError
    from hakeep.execute import HostOutcome, final_check, install, rollout, validate
    from hakeep.inventory import load_inventory
    from hakeep.inventory.lint import lint
    from hakeep.plan import CHECK_ROOT, build_plan
    from hakeep.render import render_all, resolve_secrets
    from hakeep.session import new_release_id, now_iso, open_session, operator

    inv = load_inventory(Path(args.inventory))
    if not args.json:
        report.warnings(inv.source, lint(inv))
    unknown = [n for n in args.limit or [] if n not in [lb.name for lb in inv.lbs]]
    if unknown:
        raise UsageError(f"--limit {', '.join(unknown)}: no such [[lb]] in {inv.source}")
    secrets = resolve_secrets(inv)
    desired = render_all(inv, secrets, templates=args.templates)
    release_id = new_release_id()
    check_copy = render_all(inv, secrets, templates=args.templates, root=CHECK_ROOT + release_id)
    progress = report_plan.LiveProgress(report.err() if args.json else None)
    with progress, open_session(inv, desired, lock=not args.dry_run,
                                accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = build_plan(inv, session.facts, desired, check_copy, release_id=release_id, now=now_iso(),
                          operator=operator(), limit=args.limit)
        if plan.errors:
            progress.stop()
            _show_plan(args, plan)
            report.error(HakeepError("preflight failed; no host was changed",
                                     hint="fix the problems listed above, then run the deploy again"))
            return exitcodes.PREFLIGHT
        if args.dry_run:
            progress.message("validating the new configs on the hosts")
            validations = validate(plan, session.transports, progress)
            progress.stop()
            _show_plan(args, plan, validations, dry_run=True)
            if any(v.status in ("rejected", "error") for v in validations.values()):
                return exitcodes.PREFLIGHT
            return exitcodes.CHANGES_PENDING if plan.changed else exitcodes.OK
        if not plan.changed:
            progress.message("checking the VIP")
            proof = final_check(plan, session.transports)
            progress.stop()
            return _finish(args, plan, [HostOutcome(hp.host, "unchanged") for hp in plan.hosts], proof)
        if not args.json:
            progress.stop()
            report_plan.print_plan(plan)
            if not _confirm(args):
                report.line("aborted: nothing was changed")
                return exitcodes.FAILED
            progress.start()
        failures = install(plan, session.transports, progress)
        if failures:
            raise HakeepError("\n".join(e.message for e in failures.values())
                              + "\npackage installation failed; no configuration was changed")
        validations = validate(plan, session.transports, progress)
        if any(v.status != "ok" for v in validations.values()):
            progress.stop()
            _show_plan(args, plan, validations)
            report.error(HakeepError("the hosts' own haproxy/keepalived rejected the new configs; "
                                     "no configuration was changed",
                                     hint="fix the inventory or --templates, then deploy again"))
            return exitcodes.PREFLIGHT
        outcomes = rollout(plan, session.transports, progress)
        final: FinalCheck | None = None
        if all(o.status != "failed" for o in outcomes):
            progress.message("checking the VIP")
            final = final_check(plan, session.transports)
        progress.stop()
        return _finish(args, plan, outcomes, final)


def _confirm(args: argparse.Namespace) -> bool:
    if args.yes or not sys.stdin.isatty() or os.environ.get("CI") == "true":
        return True
    answer = input("apply these changes? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _show_plan(args: argparse.Namespace, plan: Plan,
               validations: Mapping[str, ValidationOutcome] | None = None, *, dry_run: bool = False) -> None:
    from hakeep import report_plan

    if args.json:
        print(report_plan.to_json(plan, validations=validations, dry_run=dry_run))
    else:
        report_plan.print_plan(plan, validations)


def _finish(args: argparse.Namespace, plan: Plan, outcomes: list[HostOutcome], final: FinalCheck | None) -> int:
    from hakeep import report, report_plan
    from hakeep.errors import HakeepError

    if args.json:
        print(report_plan.to_json(plan, outcomes, final))
    else:
        report.out().print(report_plan.summary_table(outcomes, final))
        if not plan.changed:
            report.success("no changes: every LB already runs this inventory")
    if any(o.status == "failed" for o in outcomes):
        return exitcodes.FAILED
    if final is not None and not final.ok:
        if not args.json:
            report.error(HakeepError(f"after the deploy the VIP is on {len(final.holders)} LBs "
                                     f"({', '.join(final.holders) or 'none'}) or a frontend does not answer",
                                     hint="check VRRP between the LBs (IP protocol 112) and `hakeep status`"))
        return exitcodes.FAILED
    return exitcodes.OK
