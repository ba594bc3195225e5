"""``hakeep render``: write or print the files every LB would get; never touches a host."""

from __future__ import annotations

import argparse
import contextlib
import errno
import grp
import os
import pwd
import secrets
import stat
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
    parser.add_argument("--json", action="store_true",
                        help="print a JSON report (every LB's files, modes and contents, masked) instead of text")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import jsondoc, output
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory
    from hakeep.render.engine import render_all
    from hakeep.render.secrets import resolve_secrets

    inv = load_inventory(Path(args.inventory))
    warnings = list(lint(inv))
    output.warnings(inv.source, warnings)
    hosts = render_all(inv, resolve_secrets(inv), templates=args.templates)
    if args.json and args.output is None:
        output.document(jsondoc.render_doc(hosts, warnings, show_secrets=args.show_secrets))
        return exitcodes.OK
    if args.output is None:
        for name, host in hosts.items():
            for f in host.files:
                text = f.content.decode() if args.show_secrets else f.masked_text()
                output.file_listing(f"{name}:{f.path} (mode {f.mode:04o})", text,
                                    LEXERS.get(Path(f.path).suffix, "text"))
        return exitcodes.OK
    written = write_tree(args.output, hosts)
    if args.json:
        output.document(jsondoc.render_doc(hosts, warnings, show_secrets=False, output=str(args.output),
                                           written={k: str(v) for k, v in written.items()}))
        return exitcodes.OK
    for path in written.values():
        output.line(str(path))
    output.success(f"wrote {len(written)} files for {len(hosts)} LBs under {args.output}")
    return exitcodes.OK


def write_tree(root: Path, hosts: dict[str, HostFiles]) -> dict[tuple[str, str], Path]:
    """Write every host's files under ``root/<lb>/`` with their remote modes and return (LB, remote
    path) -> the file written; safely in a folder others may have prepared: ``root`` and every folder
    below it must be writable by its owner only (this user or root); no symbolic link is followed
    below ``root``; each file is written to a new temp file of its own (``O_CREAT|O_EXCL|O_NOFOLLOW``)
    and renamed over the final name (a link planted there is replaced, never written through)."""
    written: dict[tuple[str, str], Path] = {}
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        try:
            root.mkdir(mode=0o755, parents=True)
            top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise UsageError(f"cannot create {root}: {exc.strerror}") from None
    except OSError as exc:
        raise UsageError(f"cannot open {root}: {exc.strerror}") from None
    try:
        _check_private(top, root)
        for name, host in hosts.items():
            for f in host.files:
                target = root / name / f.path.lstrip("/")
                folder = _open_folder(top, root, target.relative_to(root).parts[:-1])
                try:
                    _write_file(folder, target, f.content, f.mode)
                finally:
                    os.close(folder)
                written[(name, f.path)] = target
    finally:
        os.close(top)
    return written


def _check_private(fd: int, shown: Path) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (os.getuid(), 0):
        raise UsageError(f"{shown} belongs to another user (uid {st.st_uid}); not writing there",
                         hint="render into a folder of your own")
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and not _own_private_group(st.st_gid)):
        raise UsageError(f"{shown} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); not writing "
                         "secrets there", hint=f"chmod go-w {shown}, or render into a folder only you can write to")


def _own_private_group(gid: int) -> bool:
    """A user private group (umask 002 makes folders group-writable): named like this user, this
    user's primary group, no other member."""
    try:
        me = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == me.pw_gid and group.gr_name == me.pw_name and set(group.gr_mem) <= {me.pw_name}


def _open_folder(top: int, root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of ``root/parts...``, made where missing; a link or a folder others may write
    to on the way is refused."""
    fd = os.dup(top)
    shown = root
    try:
        for part in parts:
            shown = shown / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UsageError(f"{shown} is a symbolic link or not a folder; not following it",
                                     hint="remove it, or render into an empty folder") from None
                raise UsageError(f"cannot open {shown}: {exc.strerror}") from None
            os.close(fd)
            fd = child
            _check_private(fd, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_file(folder: int, target: Path, content: bytes, mode: int) -> None:
    tmp = ""
    try:
        for _ in range(100):
            tmp = f".{target.name}.{secrets.token_hex(6)}.hakeep-tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
                break
            except FileExistsError:
                continue
        else:
            raise UsageError(f"cannot write {target}: no free temp file name")
        with os.fdopen(fd, "wb") as fh:
            # this user's own group, not a setgid folder's: the group may read a file with a password
            os.fchown(fh.fileno(), -1, os.getegid())
            fh.write(content)
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        tmp = ""
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
