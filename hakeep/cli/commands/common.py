"""What deploy and rollback share once a plan exists: show it, confirm, execute, prove, summarise.

Both commands build a plan from one session (see :mod:`hakeep.run.session`), then call :func:`apply`:
preflight errors stop everything (exit 4), a dry-run prints the plan (exit 0 or 3), otherwise the
plan is shown, confirmed on a terminal (drift needs confirmation, or ``--yes``), executed by
:mod:`hakeep.run.execute` and proven by the final VIP check. Imported only when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hakeep.cli import exitcodes, jsondoc, output, views
from hakeep.cli.views import LiveProgress
from hakeep.errors import HakeepError
from hakeep.hosts.facts import HostFacts
from hakeep.inventory.model import Inventory
from hakeep.layout import CHECK_ROOT
from hakeep.plan.planner import build_plan
from hakeep.plan.platform import render_versions
from hakeep.plan.steps import Plan
from hakeep.render.engine import render_all
from hakeep.render.files import HostFiles, Secrets
from hakeep.render.secrets import resolve_secrets
from hakeep.run.execute import facts_check, final_check, install, rollout, validate
from hakeep.run.results import FinalCheck, HostOutcome, Outcome, ValidationOutcome, ValidationStatus
from hakeep.run.session import Session, new_release_id, now_iso, operator


@dataclass(frozen=True)
class Rendered:
    """What a deploy (or diff) plans with: the files, their validation copy, the release id."""

    release_id: str
    desired: Mapping[str, HostFiles]
    check: Mapping[str, HostFiles]
    secrets: Secrets
    templates: Path | None

    def for_versions(self, inv: Inventory, versions: Mapping[str, Mapping[str, tuple[int, ...]]]) -> Rendered:
        """The same files rendered for each LB's haproxy/keepalived releases (known once facts are in)."""
        def render(root: str) -> dict[str, HostFiles]:
            return render_all(inv, self.secrets, templates=self.templates, root=root, versions=versions)
        return replace(self, desired=render(""), check=render(CHECK_ROOT + self.release_id))


def render_for_deploy(inv: Inventory, templates: Path | None, env: Mapping[str, str] | None = None) -> Rendered:
    """Render before connecting: a missing secret or a broken template stops here, no host touched.
    (Rendered again for each LB's versions once its facts are in: :func:`plan_deploy`.) ``env``:
    where the password variables are read (default: the environment)."""
    secrets = resolve_secrets(inv, env)
    release_id = new_release_id()
    return Rendered(release_id, render_all(inv, secrets, templates=templates),
                    render_all(inv, secrets, templates=templates, root=CHECK_ROOT + release_id), secrets, templates)


def plan_deploy(inv: Inventory, rendered: Rendered, session: Session, limit: list[str] | None,
                *, forget: Sequence[str] = (), decommission: Mapping[str, HostFacts] | None = None) -> Plan:
    rendered = rendered.for_versions(inv, render_versions(session.facts, [lb.name for lb in inv.lbs]))
    return build_plan(inv, session.facts, rendered.desired, rendered.check, release_id=rendered.release_id,
                      now=now_iso(), operator=operator(), limit=limit, unreachable=session.reasons(), forget=forget,
                      decommission=decommission)


def apply(args: argparse.Namespace, plan: Plan, session: Session, progress: LiveProgress) -> int:
    for key in session.recorded_host_keys():
        output.err().print(f"permanently added host key: {key}", style="yellow", markup=False, highlight=False)
    if plan.errors:
        progress.stop()
        show(args, plan)
        output.error(HakeepError("preflight failed; no host was changed",
                                 hint="fix the problems listed above, then run again"))
        return exitcodes.PREFLIGHT
    if args.dry_run:
        validations = None
        if any(h.validation for h in plan.hosts):
            progress.message("validating the new configs on the hosts")
            with session.phase("validate"):
                validations = validate(plan, session.transports, progress)
        progress.stop()
        show(args, plan, validations, dry_run=True, timings=session.timings)
        if validations and any(v.status.refused for v in validations.values()):
            output.error(HakeepError("the hosts' own haproxy/keepalived rejected the new configs; a deploy would "
                                     "change nothing", hint="fix the inventory or --templates, then try again"))
            return exitcodes.PREFLIGHT
        return exitcodes.CHANGES_PENDING if plan.changed else exitcodes.OK
    if not plan.changed:
        progress.message("checking the VIP")
        with session.phase("proof"):  # nothing changed: the facts of a moment ago prove it, or look again
            proof = facts_check(plan, session.facts) or final_check(plan, session.transports)
        progress.stop()
        return finish(args, plan, [HostOutcome(hp.host, Outcome.UNCHANGED) for hp in plan.hosts], proof,
                      session.timings)
    progress.stop()
    if args.json:  # (a refusal below still shows what would have changed)
        output.document(jsondoc.plan_doc(plan))
    else:
        views.print_plan(plan)
    if not confirm(args, plan):
        return _unconfirmed(plan)
    progress.start()
    with session.phase("install"):
        failures = install(plan, session.transports, progress)
    if failures:
        progress.stop()
        raise HakeepError("\n".join(e.message for e in failures.values())
                          + "\npackage installation failed; no configuration was changed")
    if any(h.validation for h in plan.hosts):
        with session.phase("validate"):
            validations = validate(plan, session.transports, progress)
        if any(v.status is not ValidationStatus.OK for v in validations.values()):
            progress.stop()
            show(args, plan, validations)
            output.error(HakeepError("the hosts' own haproxy/keepalived rejected the new configs; "
                                     "no configuration was changed",
                                     hint="fix the inventory or --templates, then deploy again"))
            return exitcodes.PREFLIGHT
    outcomes = _rollout(args, plan, session, progress)
    progress.message("checking the VIP")  # after a failure too: the user must know where the VIP is
    with session.phase("proof"):
        final: FinalCheck | None = final_check(plan, session.transports)
    progress.stop()
    return finish(args, plan, outcomes, final, session.timings)


def _rollout(args: argparse.Namespace, plan: Plan, session: Session, progress: LiveProgress) -> list[HostOutcome]:
    settled: list[HostOutcome] = []
    try:
        with session.phase("rollout"):
            return rollout(plan, session.transports, progress, settled)
    except BaseException:  # interrupted (the host being changed was restored): say which hosts were done
        if args.json:
            output.document(jsondoc.plan_doc(plan, settled, timings=session.timings))
        raise


def _unconfirmed(plan: Plan) -> int:
    if not _interactive():
        hint = (f"no terminal to ask on: a {plan.kind} without one must say it means it; review the plan "
                "(--dry-run), then run again with --yes")
    elif plan.drift:
        hint = ("files were edited on the hosts since the last release (drift): review the diff, then run "
                "again with --yes")
    else:
        hint = None
    output.error(HakeepError("aborted: nothing was changed", hint=hint))
    return exitcodes.PREFLIGHT


def _interactive() -> bool:
    return sys.stdin.isatty() and os.environ.get("CI") != "true"


def confirm(args: argparse.Namespace, plan: Plan) -> bool:
    """--yes, or a person's "y" on a terminal. Without a terminal (a pipeline, cron, CI) and without
    --yes, a change is refused, as Terraform's apply without -auto-approve."""
    if args.yes:
        return True
    for host, d in plan.drift:
        output.err().print(f"drift: {host}: {d.path} was edited on the host since release {d.release}; "
                           "this run overwrites it", style="yellow", markup=False, highlight=False)
    if not _interactive():
        return False
    sys.stderr.write(f"apply this {plan.kind}? [y/N] ")  # not stdout: that may be a --json file or a pipe
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def show(args: argparse.Namespace, plan: Plan, validations: Mapping[str, ValidationOutcome] | None = None,
         *, dry_run: bool = False, timings: Mapping[str, float] | None = None) -> None:
    if args.json:
        output.document(jsondoc.plan_doc(plan, validations=validations, dry_run=dry_run, timings=timings))
    else:
        views.print_plan(plan, validations)


def finish(args: argparse.Namespace, plan: Plan, outcomes: list[HostOutcome], final: FinalCheck | None,
           timings: Mapping[str, float] | None = None) -> int:
    if args.json:
        output.document(jsondoc.plan_doc(plan, outcomes, final, timings=timings))
    else:
        output.out().print(views.summary_table(outcomes, final, title=f"hakeep {plan.kind}"))
        if not plan.changed:
            output.success("no changes: every LB already runs this inventory")
    if any(o.status is Outcome.FAILED for o in outcomes):
        return exitcodes.FAILED
    if final is not None and not final.ok:
        first = f" {plan.vip}" if final.others else ""
        for name, check in [(first, final), *((f" {n} ({a})", c) for n, a, c in final.others)]:
            if check.own_ok:
                continue
            if check.outside:
                output.error(HakeepError(f"split brain outside the set: a host that is no LB of this inventory "
                                         f"answers for the VIP{name} too: {', '.join(check.outside)}",
                                         hint="find that host by its MAC and remove the VIP from it (a dropped LB: "
                                              "stop its keepalived)"))
            else:
                want = "exactly one LB" if check.expect_vip else "no LB"
                output.error(HakeepError(f"the VIP{name} should be on {want}; it is on {len(check.holders)} "
                                         f"({', '.join(check.holders) or 'none'}), or a frontend does not answer",
                                         hint="check VRRP between the LBs (IP protocol 112) and the units' logs"))
        return exitcodes.FAILED
    return exitcodes.OK
