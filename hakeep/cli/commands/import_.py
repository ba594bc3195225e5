"""``hakeep import``: read a pair set up by hand (the live keepalived.conf and haproxy.cfg of each
LB, over SSH, read-only) and write the inventory that reproduces it; then show what the first
deploy would change (the same dry-run plan, validated on the hosts).

The hosts are reached with the same transport and host-key rules as every command; the reading,
parsing and mapping live in :mod:`hakeep.takeover`. The live passwords are used in memory for the
dry-run and written only with ``--include-secrets``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hakeep.cli import exitcodes
from hakeep.errors import UsageError

if TYPE_CHECKING:
    from hakeep.hosts.remote import Transport
    from hakeep.inventory.model import LoadBalancer
    from hakeep.takeover.assemble import LiveLB

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
HAPROXY_CONF_D = "/etc/haproxy/conf.d/*.cfg"  # Fedora/RHEL's unit reads these too


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lb", metavar="NAME=ADDRESS", action="append", default=[], required=True,
                        help="an LB of the pair, by the name the inventory will give it (at least two)")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path,
                        help="write the inventory here (refused if it exists), then show the first deploy's "
                             "dry-run; without it, the inventory goes to stdout")
    parser.add_argument("--name", help="the cluster's name (default: the vrrp_instance's, without -vip)")
    parser.add_argument("--ssh-config", metavar="FILE", type=Path, help="OpenSSH config file to connect with")
    parser.add_argument("--user", help="SSH user (default: as ssh_config says)")
    parser.add_argument("--port", type=int, help="SSH port (default: as ssh_config says)")
    parser.add_argument("--identity-file", metavar="FILE", type=Path, help="SSH private key")
    parser.add_argument("--sudo", action="store_true", help="read the configs through sudo")
    parser.add_argument("--include-secrets", action="store_true",
                        help="write the live VRRP (and stats) passwords into the inventory (default: their "
                             "variables' names only)")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown SSH host keys (changed keys are always refused)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output

    lbs = _lbs(args)
    if args.output is not None and args.output.exists():
        raise UsageError(f"{args.output} exists; not overwriting it", hint="name a new file with -o")
    live = _read_all(args, lbs)
    from hakeep.takeover.assemble import build
    from hakeep.takeover.toml_out import render

    ssh = _ssh_table(args)
    imported = build(live, name=args.name, ssh=ssh, include_secrets=args.include_secrets)
    text = render(imported, sources=[f"{lb.name} ({lb.address})" for lb in lbs],
                  when=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                  secrets_written=args.include_secrets and bool(imported.secrets))
    if args.include_secrets and imported.secrets:
        output.warn("the inventory holds the live passwords (--include-secrets): keep it private")
    if args.output is None:
        output.emit(text.rstrip("\n"))
        return exitcodes.OK
    _write_new(args.output, text, private=args.include_secrets)
    from hakeep.errors import InventoryError
    from hakeep.inventory.load import load_inventory

    try:
        load_inventory(args.output)
    except InventoryError:
        output.warn(f"wrote {args.output}, but it is not a usable inventory yet: fix what follows, then run "
                    f"`hakeep deploy {args.output} --dry-run`")
        raise
    output.success(f"wrote {args.output}: {len(imported.unmapped)} statement(s) not carried, "
                   f"{len(imported.disagreements)} disagreement(s) between the LBs (listed at its top)")
    return _dry_run(args, imported.secrets)


def _lbs(args: argparse.Namespace) -> list[LoadBalancer]:
    from hakeep.inventory.fields import NAME_RE
    from hakeep.inventory.model import LoadBalancer, SSHSettings

    if len(args.lb) < 2:
        raise UsageError("--lb: name at least two LBs (NAME=ADDRESS), the pair to take over")
    ssh = SSHSettings(user=args.user, port=args.port, identity_file=args.identity_file, config=args.ssh_config,
                      sudo=args.sudo, connect_timeout=10.0)
    out = []
    for spec in args.lb:
        name, _, address = spec.partition("=")
        if not NAME_RE.fullmatch(name):
            raise UsageError(f"--lb {spec}: {name!r} is not a usable LB name (letters, digits, _ . -)")
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise UsageError(f"--lb {spec}: {address!r} is not an IPv4 address") from None
        out.append(LoadBalancer(name=name, address=ip, interface="-", priority=100, ssh=ssh))
    if len({lb.name for lb in out}) != len(out) or len({lb.address for lb in out}) != len(out):
        raise UsageError("--lb: each LB needs a name and an address of its own")
    return out


def _read_all(args: argparse.Namespace, lbs: list[LoadBalancer]) -> list[LiveLB]:
    from hakeep.hosts.group import parallel
    from hakeep.run.session import connect_hosts

    transports = connect_hosts(lbs, accept_new_host_keys=args.accept_new_host_keys)
    try:
        read = parallel(lambda n: _read_one(next(lb for lb in lbs if lb.name == n), transports[n]), list(transports))
    finally:
        for t in transports.values():
            t.close()
    errors = [r for r in read.values() if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return [r for r in (read[lb.name] for lb in lbs) if not isinstance(r, BaseException)]


def _read_one(lb: LoadBalancer, t: Transport) -> LiveLB:
    from hakeep.hosts import commands
    from hakeep.takeover import haproxy_cfg, keepalived_conf
    from hakeep.takeover.assemble import LiveLB
    from hakeep.takeover.haproxy_map import read_haproxy
    from hakeep.takeover.mapping import HostValues, read_keepalived

    def fetch(patterns: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        done = t.run(commands.read_configs(patterns), display="read the live configs", check=True, timeout=60)
        try:
            return commands.parse_read(done.text())
        except ValueError as exc:
            raise UsageError(f"{lb.name}: {exc}") from None

    files, addresses = fetch([HAPROXY_CFG, KEEPALIVED_CONF, HAPROXY_CONF_D])
    found = dict(files)
    more = sorted(p for p in found if p.startswith(HAPROXY_CONF_D.rsplit("/", 1)[0] + "/"))
    if more:
        raise UsageError(f"{lb.name}: haproxy also reads {', '.join(more)} (the RHEL unit's -f /etc/haproxy/conf.d), "
                         "which hakeep import does not follow",
                         hint="move those sections into haproxy.cfg, then import")
    for path in (HAPROXY_CFG, KEEPALIVED_CONF):
        if path not in found:
            raise UsageError(f"{lb.name}: {path} is missing: not a pair set up by hand from the recipe")
    values = HostValues(lb.name)
    root = keepalived_conf.parse(found[KEEPALIVED_CONF], KEEPALIVED_CONF, lambda p: fetch([p])[0], host=lb.name)
    read_keepalived(lb.name, root, values)
    read_haproxy(lb.name, haproxy_cfg.parse(found[HAPROXY_CFG], HAPROXY_CFG, host=lb.name), values)
    vip = str(values.keepalived.get("vip", "")).split("/")[0]
    return LiveLB(lb.name, str(lb.address), values, tuple(addresses),
                  holds_vip=any(_same_ip(cidr.split("/")[0], vip) for _, cidr in addresses))


def _same_ip(a: str, b: str) -> bool:
    """Whether two addresses as written are one (IPv6 has many spellings)."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _ssh_table(args: argparse.Namespace) -> dict[str, Any]:
    """The [ssh] table: the options given, with paths relative to the output file's folder."""
    base = (args.output.parent if args.output is not None else Path.cwd()).resolve()
    table: dict[str, Any] = {}
    for key, value in (("user", args.user), ("port", args.port)):
        if value is not None:
            table[key] = value
    for key, path in (("identity_file", args.identity_file), ("config", args.ssh_config)):
        if path is not None:
            table[key] = os.path.relpath(path.expanduser().resolve(), base)
    if args.sudo:
        table["sudo"] = True
    return table


def _write_new(path: Path, text: str, *, private: bool) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _dry_run(args: argparse.Namespace, secrets: dict[str, str]) -> int:
    """``hakeep deploy OUTPUT --dry-run``, with the live passwords where their variables are unset."""
    from hakeep.cli import output, views
    from hakeep.cli.commands.common import apply, plan_deploy, render_for_deploy
    from hakeep.inventory.load import load_inventory
    from hakeep.run.session import open_session
    from hakeep.takeover.mapping import PASSWORD_ENV, STATS_PASSWORD_ENV

    inv = load_inventory(args.output)
    env = dict(os.environ)
    for var, key in ((PASSWORD_ENV, "vrrp"), (STATS_PASSWORD_ENV, "stats")):
        if not env.get(var) and key in secrets:
            env[var] = secrets[key]
    rendered = render_for_deploy(inv, None, env=env)
    output.line(f"\nwhat `hakeep deploy {args.output}` would change:", style="bold")
    progress = views.LiveProgress(None)
    dry = argparse.Namespace(dry_run=True, json=False, yes=False)
    with progress, open_session(inv, lock=False, command="deploy",
                                accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = plan_deploy(inv, rendered, session, None)
        return apply(dry, plan, session, progress)
