"""Command-line options shared by the commands that change hosts (kept light: no heavy imports)."""

from __future__ import annotations

import argparse


def add_apply_arguments(parser: argparse.ArgumentParser, *, verb: str) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help=f"show what {verb} would do, with diffs; change nothing")
    parser.add_argument("--limit", metavar="NAME", action="append",
                        help=f"{verb} only this LB (repeatable); the others are still checked")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_read_arguments(parser)


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --accept-new-host-keys: every command that talks to the hosts has them."""
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown SSH host keys (changed keys are always refused)")
