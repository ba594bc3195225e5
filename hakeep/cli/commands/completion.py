"""``hakeep completion bash|zsh|fish``: the shell completion script, made from the parser itself
(so it always knows every command and option).

The scripts complete commands, each command's options, ``--color`` values, inventory files
(``*.toml``), the LB names of the inventory on the command line after ``--limit`` (``hakeep completion
--names INVENTORY``: reads the file only) and release ids after ``--to`` (``hakeep completion
--releases INVENTORY``: asks the hosts, as ``hakeep releases`` does). zsh uses the bash script
through ``bashcompinit``.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from hakeep.cli import exitcodes
from hakeep.errors import UsageError

RELEASE_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", nargs="?", choices=("bash", "zsh", "fish"), help="the shell")
    parser.add_argument("--names", metavar="INVENTORY", help=argparse.SUPPRESS)  # for the scripts
    parser.add_argument("--releases", metavar="INVENTORY", help=argparse.SUPPRESS)


def options_by_command() -> dict[str, list[str]]:
    from hakeep.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        out[name] = sorted({o for a in p._actions for o in a.option_strings if a.help != argparse.SUPPRESS})
    return out


def bash_script() -> str:
    """completion.bash (beside this package) with its @COMMANDS@ and @CASES@ filled in."""
    from importlib import resources

    opts = options_by_command()
    cases = "\n".join(f"        {name}) opts={shlex.quote(' '.join(o))} ;;" for name, o in opts.items())
    text = (resources.files("hakeep.cli") / "completion.bash").read_text(encoding="utf-8")
    return text.replace("@COMMANDS@", shlex.quote(" ".join(opts))).replace("@CASES@", cases)


def zsh_script() -> str:
    return ("#compdef hakeep\n# hakeep completion for zsh: `hakeep completion zsh`\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash_script())


def fish_script() -> str:
    opts = options_by_command()
    lines = ["# hakeep completion for fish: `hakeep completion fish`",
             "function __hakeep_inventory",
             "    for w in (commandline -opc)",
             "        string match -q '*.toml' -- $w; and echo $w",
             "    end",
             "end",
             "complete -c hakeep -f",
             f"complete -c hakeep -n __fish_use_subcommand -a {shlex.quote(' '.join(opts))}"]
    for name, options in opts.items():
        cond = f"__fish_seen_subcommand_from {name}"
        for o in options:
            if o.startswith("--"):
                lines.append(f"complete -c hakeep -n {shlex.quote(cond)} -l {o[2:]}")
        if name not in ("init", "completion"):
            lines.append(f"complete -c hakeep -n {shlex.quote(cond)} -F -a '(__fish_complete_suffix .toml)'")
    lines += [
        "complete -c hakeep -l limit -x -a '(hakeep completion --names (__hakeep_inventory)[-1] 2>/dev/null)'",
        "complete -c hakeep -l to -x -a '(hakeep completion --releases (__hakeep_inventory)[-1] 2>/dev/null)'",
        "complete -c hakeep -l color -x -a 'auto always never'",
        "complete -c hakeep -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output

    if args.names:
        from hakeep.inventory.load import load_inventory

        output.emit("\n".join(lb.name for lb in load_inventory(Path(args.names)).lbs))
        return exitcodes.OK
    if args.releases:
        from hakeep.inventory.load import load_inventory
        from hakeep.plan.releases import History
        from hakeep.run.session import open_session

        inv = load_inventory(Path(args.releases))
        with open_session(inv, lock=False, command="releases", limit=None, accept_new_host_keys=False) as session:
            ids = {r.id for f in session.facts.values() for r in History.of(f).releases
                   if RELEASE_ID.fullmatch(r.id)}  # a host names its folders: nothing else reaches the shell
        output.emit("\n".join(sorted(ids, reverse=True)))
        return exitcodes.OK
    scripts = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}
    if args.shell is None:
        raise UsageError("which shell? hakeep completion bash|zsh|fish")
    output.emit(scripts[args.shell]().rstrip("\n"))
    return exitcodes.OK
