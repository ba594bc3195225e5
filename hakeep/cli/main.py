"""The ``hakeep`` command line: argument parsing, dispatch, error printing and exit codes.

Every exit code is a constant of :mod:`hakeep.cli.exitcodes`: a command returns the one its result
calls for, and this module maps the errors that escape a command (a
:class:`~hakeep.errors.HakeepError` is printed as one ``error:`` line plus its hint, never a
traceback). Each subcommand lives in ``hakeep/cli/commands/<verb>.py``; its module is imported to
add its options, but it imports the heavy libraries (rich, jinja2, fabric, paramiko) only inside
``run()``, so ``hakeep --help`` loads none of them. argparse (stdlib) keeps start-up light.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from hakeep import __version__
from hakeep.cli import exitcodes
from hakeep.errors import HakeepError, UnreachableError, UsageError

COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "check an inventory: every error with its key path, then lint warnings",
        """examples:
  hakeep validate inventory.toml
  hakeep validate tests/lab/inventory.toml
  hakeep validate inventory.toml --json --offline   # the summary and every problem, as JSON; no env checks

Exits 0 when the inventory is usable (warnings are printed in yellow), 2 when it is not:
one line per problem, `FILE: KEY.PATH: what is wrong`.
""",
    ),
    "deploy": (
        "preflight, install, validate on the hosts, roll out with health gates, prove the VIP",
        """examples:
  hakeep deploy inventory.toml --dry-run       # steps and diffs per host; changes nothing
  hakeep deploy inventory.toml                 # asks before changing anything (on a terminal)
  hakeep deploy inventory.toml --yes --json    # for CI
  hakeep deploy inventory.toml --limit loadbalance-left
  hakeep deploy tests/lab/inventory.toml --accept-new-host-keys

Exit codes: 0 done (dry-run: nothing would change), 1 a host failed its step or health gate
(it was restored to its previous files), 2 bad input, 3 dry-run: changes pending,
4 preflight or the hosts' own haproxy -c / keepalived -t refused: nothing was changed.
The VRRP password comes from the variable named by auth_pass_env; a sudo password from
HAKEEP_SUDO_PASSWORD or a prompt.
""",
    ),
    "rollback": (
        "put back the state saved before the live release (or --to ID) on every LB, safely",
        """examples:
  hakeep rollback inventory.toml --dry-run            # steps and diffs; changes nothing
  hakeep rollback inventory.toml                      # undo the live release on every LB
  hakeep rollback inventory.toml --to 20261127T050230Z-c2a63d   # undo that release and all after it
  hakeep rollback inventory.toml --limit loadbalance-left --yes

The same safe path as deploy: files from the hosts' release backups, validated on the host,
replaced atomically, units reloaded/restarted/stopped as they were, the VIP holder last, health
gates; the rollback records a release itself, so it can be rolled back. Exit codes as for deploy.
""",
    ),
    "releases": (
        "list each LB's release history and mark the live release",
        """examples:
  hakeep releases inventory.toml
  hakeep releases inventory.toml --json
  hakeep releases inventory.toml --limit lb2     # while lb1 cannot be reached

Exit codes: 0 listed, 5 an LB cannot be reached (use --limit for the others).
""",
    ),
    "diff": (
        "show what a deploy would change on each LB, and files edited on the hosts (drift)",
        """examples:
  HAKEEP_VRRP_PASS=s3cret hakeep diff inventory.toml
  hakeep diff inventory.toml --json

Exit codes: 0 every LB matches the inventory, 3 a deploy would change something or drift exists,
5 an LB cannot be reached (use --limit for the others).
""",
    ),
    "status": (
        "where the VIP is and one verdict for the pair; works with LBs down; changes nothing",
        """examples:
  hakeep status inventory.toml
  hakeep status tests/lab/inventory.toml --json
  hakeep status inventory.toml --watch          # refresh every 2 s until Ctrl-C
  hakeep status inventory.toml --watch --json   # one JSON document per refresh, one per line
  hakeep status inventory.toml --limit lb1      # ask lb1 only (the verdict is then at best degraded)

Every LB is asked at once; one that cannot be reached is shown with why (timeout, refused, auth,
host key), within connect_timeout + 2 s. The VIP's frontend ports are probed from every LB reached
and from here. Exit codes (one per verdict): 0 healthy, 6 degraded (the VIP is served, but an LB is
unreachable or unwell, a backend server is down, or drift), 7 split brain (the VIP on two or more
LBs), 8 VIP lost (on no LB, or not answering), 5 unreachable (no LB reached).
""",
    ),
    "drill": (
        "failover drills on a healthy pair: take the VIP holder out, time the handover, bring it back",
        """examples:
  hakeep drill inventory.toml
  hakeep drill inventory.toml --probe --rounds 3         # from where clients are: counts failed connects
  hakeep drill inventory.toml --mode crash --json        # SIGKILL keepalived on the holder
  hakeep drill inventory.toml --mode link --allow-ssh-loss   # the holder's link down, a timer brings it back

Refused unless `hakeep status` says healthy (exit 5/6/7/8 as status), and with exit 4 when --probe
cannot reach the VIP from here or --mode link would cut hakeep's own path to the holder (nothing was
changed). Exit 0 when every round moved
the VIP to exactly one other LB within --max-seconds, the frontends answered through it and the old
holder came back; 1 otherwise. The LBs are locked during the drill.
""",
    ),
    "render": (
        "render every LB's haproxy.cfg, keepalived.conf and check script",
        """examples:
  HAKEEP_VRRP_PASS=s3cret hakeep render inventory.toml            # print (secrets masked)
  HAKEEP_VRRP_PASS=s3cret hakeep render inventory.toml -o out     # out/<lb>/etc/...
  HAKEEP_VRRP_PASS=s3cret hakeep render inventory.toml --json     # every file, path, mode, content (masked)
  hakeep render inventory.toml -o out --templates my-templates/

With -o, writes DIR/<lb name>/etc/haproxy/haproxy.cfg, DIR/<lb name>/etc/keepalived/keepalived.conf
(mode 0600) and DIR/<lb name>/etc/keepalived/hakeep-check-haproxy.sh. Files in --templates DIR
override the shipped templates of the same name.
""",
    ),
    "import": (
        "take over a pair set up by hand: read its live configs, write the inventory, show the first deploy",
        """examples:
  hakeep import --lb lb1=10.0.0.11 --lb lb2=10.0.0.12 -o inventory.toml
  hakeep import --lb lb1=10.0.0.11 --lb lb2=10.0.0.12 --user ops --sudo --ssh-config ~/.ssh/config -o inv.toml

Reads /etc/keepalived/keepalived.conf (its includes too) and /etc/haproxy/haproxy.cfg on each LB
(read-only), writes an inventory that reproduces them, with a comment block listing what it does not
carry, what hakeep writes its own way and where the LBs disagree; then prints what
`hakeep deploy FILE` would change (validated on the hosts). The VRRP password stays out of the
file unless --include-secrets. Exit codes: as deploy --dry-run (3: the first deploy changes
something), 2 a config it cannot read (naming host, file and line), 5 an LB cannot be reached.
""",
    ),
    "init": (
        "print a commented, valid inventory to start from (the example, or one for --vip/--lb/--master)",
        """examples:
  hakeep init > inventory.toml
  hakeep init --vip 10.0.0.10/24 --lb lb1=10.0.0.11 --lb lb2=10.0.0.12 \\
              --master m1=10.0.0.21 --master m2=10.0.0.22 --master m3=10.0.0.23 > inventory.toml
""",
    ),
    "completion": (
        "print the shell completion script for bash, zsh or fish",
        """examples:
  hakeep completion bash > ~/.local/share/bash-completion/completions/hakeep
  hakeep completion zsh > "${fpath[1]}/_hakeep"
  hakeep completion fish > ~/.config/fish/completions/hakeep.fish

Completes commands and options, the LB names of the inventory on the line for --limit, and, for
rollback --to, the release ids `hakeep releases INVENTORY --json` reports (that asks the hosts).
""",
    ),
}


NO_INVENTORY = ("init", "completion", "import")


def module_name(command: str) -> str:
    """The module of a command: its name, with a ``_`` after a Python keyword (``import_``)."""
    import keyword

    return f"{command}_" if keyword.iskeyword(command) else command


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error on a ``--json`` line is a JSON document on stdout too."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors and any("--json" in a.option_strings for a in self._actions):
            from hakeep.cli import jsondoc

            command = self.prog.split()[1] if len(self.prog.split()) > 1 else ""
            with contextlib.suppress(OSError):
                print(jsondoc.dump(jsondoc.envelope(command, None, UsageError(message, hint=f"{self.prog} --help"),
                                                    exitcodes.INVALID)), flush=True)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hakeep", allow_abbrev=False,
        description="HAProxy + Keepalived in front of a Kubernetes control plane, from one TOML "
        "inventory, over plain SSH.",
        epilog="Run `hakeep COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"hakeep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(command_parser=None)
    for name, (summary, examples) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary, epilog=examples, allow_abbrev=False,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(command_parser=p)
        if name not in NO_INVENTORY:
            p.add_argument("inventory", metavar="INVENTORY", help="path of the inventory TOML file")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="print each remote command as it ends: host, what it was, seconds, exit code")
        p.add_argument("--debug", action="store_true",
                       help="-v, and the SSH library's own log in a file (its path is printed first)")
        p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                       help="colour the output: auto (on a terminal, unless NO_COLOR is set; FORCE_COLOR forces "
                            "it), always, never")
        module = importlib.import_module(f"hakeep.cli.commands.{module_name(name)}")
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage, not the top level's
        (args.command_parser or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return exitcodes.INVALID
    from hakeep import signals
    from hakeep.cli import output

    output.set_color(args.color)
    if args.verbose or args.debug:
        output.verbose(debug=args.debug)
    signals.install()
    if getattr(args, "json", False):
        output.json_document(args.command, lines=getattr(args, "watch", None) is not None)
    try:
        code, failure = _run(args)
    except Exception as exc:  # a bug: its traceback follows, but a --json reader still gets its document
        output.finish_document(exitcodes.FAILED, HakeepError(f"internal error: {type(exc).__name__}: {exc}",
                                                             hint="please report it, with the traceback"))
        raise
    output.finish_document(code, failure)
    return code


def _run(args: argparse.Namespace) -> tuple[int, HakeepError | None]:
    """The command's exit code, and what ended it when that was not an error it printed itself."""
    from hakeep import signals
    from hakeep.cli import output

    try:
        module = importlib.import_module(f"hakeep.cli.commands.{module_name(args.command)}")
        code: int = module.run(args)
        return code, None
    except UsageError as exc:
        output.error(exc)
        return exitcodes.INVALID, None
    except UnreachableError as exc:
        output.error(exc)
        return exitcodes.UNREACHABLE, None
    except HakeepError as exc:
        output.error(exc)
        return exitcodes.FAILED, None
    except signals.Interrupted as exc:
        with contextlib.suppress(OSError):
            print(f"interrupted ({exc.name})", file=sys.stderr)
        return exitcodes.SIGNALS.get(exc.signum, exitcodes.INTERRUPTED), HakeepError(f"interrupted ({exc.name})")
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED, HakeepError("interrupted")
