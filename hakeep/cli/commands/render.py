"""``hakeep render``: write or print the files every LB would get; never touches a host."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hakeep.cli import exitcodes
from hakeep.errors import UsageError

if TYPE_CHECKING:
    from hakeep.render.files import HostFiles

LEXERS = {".cfg": "ini", ".conf": "nginx", ".sh": "bash"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="DIR", type=Path,
                        help="write DIR/<lb name>/<remote path> instead of printing")
    parser.add_argument("--templates", metavar="DIR", type=Path,
                        help="folder whose templates override the shipped ones")
    parser.add_argument("--show-secrets", action="store_true",
                        help="print passwords instead of ******** (only without -o)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory
    from hakeep.render.engine import render_all
    from hakeep.render.secrets import resolve_secrets

    inv = load_inventory(Path(args.inventory))
    output.warnings(inv.source, lint(inv))
    hosts = render_all(inv, resolve_secrets(inv), templates=args.templates)
    if args.output is None:
        for name, host in hosts.items():
            for f in host.files:
                text = f.content.decode() if args.show_secrets else f.masked_text()
                output.file_listing(f"{name}:{f.path} (mode {f.mode:04o})", text,
                                    LEXERS.get(Path(f.path).suffix, "text"))
        return exitcodes.OK
    written = write_tree(args.output, hosts)
    for path in written:
        output.line(str(path))
    output.success(f"wrote {len(written)} files for {len(hosts)} LBs under {args.output}")
    return exitcodes.OK


def write_tree(root: Path, hosts: dict[str, HostFiles]) -> list[Path]:
    """Write every host's files under ``root/<lb>/`` with their remote modes."""
    written = []
    for name, host in hosts.items():
        for f in host.files:
            target = root / name / f.path.lstrip("/")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".hakeep-tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(f.content)
                os.chmod(tmp, f.mode)
                os.replace(tmp, target)
            except OSError as exc:
                raise UsageError(f"cannot write {target}: {exc.strerror}") from None
            written.append(target)
    return written
