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
    parser.add_argument("--limit", metavar="NAME", action="append",
                        help=f"{verb} only this LB (repeatable); the others are checked when they can be "
                             "reached, and an unreachable one does not stop the run")


def checked_limit(inv: Inventory, limit: list[str] | None) -> list[str] | None:
    """``--limit`` as given, once every name is known to be an LB of the inventory."""
    unknown = [n for n in limit or [] if n not in [lb.name for lb in inv.lbs]]
    if unknown:
        raise UsageError(f"--limit {', '.join(unknown)}: no such [[lb]] in {inv.source}")
    return limit


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --accept-new-host-keys: every command that talks to the hosts has them."""
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown SSH host keys (changed keys are always refused)")
