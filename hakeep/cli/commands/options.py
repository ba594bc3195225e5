"""Command-line options shared by the commands that talk to hosts (kept light: no heavy imports)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hakeep.errors import UsageError

if TYPE_CHECKING:
    from hakeep.inventory.model import Inventory


def add_apply_arguments(parser: argparse.ArgumentParser, *, verb: str) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help=f"show what {verb} would do, with diffs; change nothing")
    add_limit_argument(parser, verb=verb)
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_read_arguments(parser)


def add_limit_argument(parser: argparse.ArgumentParser, *, verb: str) -> None:
    parser.add_argument("--limit", metavar="NAMES", action="append",
                        help=f"{verb} only these LBs: names, comma lists and shell globs ('lb*', lb1,lb3; "
                             "repeatable); the others are checked when they can be reached, and an unreachable "
                             "one does not stop the run")


def checked_limit(inv: Inventory, limit: list[str] | None) -> list[str] | None:
    """``--limit`` values (each a comma list of LB names or shell globs) -> the LBs they name, in
    inventory order; a name or glob that matches no LB is an error listing the valid names."""
    if not limit:
        return None
    import fnmatch

    names = [lb.name for lb in inv.lbs]
    chosen: set[str] = set()
    unknown: list[str] = []
    for value in limit:
        for word in (w.strip() for w in value.split(",")):
            if not word:
                continue
            matched = [n for n in names if fnmatch.fnmatchcase(n, word)]
            if not matched:
                unknown.append(word)
            chosen.update(matched)
    if unknown:
        raise UsageError(f"--limit {', '.join(unknown)}: no such LB in {inv.source}",
                         hint=f"the LBs are: {', '.join(names)}")
    if not chosen:
        raise UsageError("--limit names no LB", hint=f"the LBs are: {', '.join(names)}")
    return [n for n in names if n in chosen]


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --accept-new-host-keys: every command that talks to the hosts has them."""
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown SSH host keys (changed keys are always refused)")
