"""``hakeep init``: print a commented, valid inventory to start from; never touches a host.

Without options it prints the example inventory (shipped in the wheel as
``hakeep/inventory.example.toml``). With ``--vip``, ``--lb NAME=ADDR`` and ``--master NAME=ADDR``
it writes one for that topology: the LBs get distinct priorities in the order given (the first is
the preferred VIP holder), the masters serve kube-apiserver (6443, an https check of /readyz) and an
ingress NodePort (30080). What it prints is validated as ``hakeep validate`` would before it is printed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from pathlib import Path

from hakeep.cli import exitcodes
from hakeep.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="k8s", help="the cluster's name (default: k8s)")
    parser.add_argument("--vip", metavar="CIDR", help="the floating address with its prefix, e.g. 10.0.0.10/24")
    parser.add_argument("--lb", metavar="NAME=ADDR", action="append", default=[],
                        help="an LB host (repeatable; at least two; the first is the preferred VIP holder)")
    parser.add_argument("--master", metavar="NAME=ADDR", action="append", default=[],
                        help="a Kubernetes control-plane node (repeatable)")
    parser.add_argument("--interface", default="eth0", help="the LBs' network interface (default: eth0)")


def example_path() -> Path:
    package = Path(__file__).resolve().parent.parent.parent  # hakeep/
    packaged = package / "inventory.example.toml"  # in a wheel
    return packaged if packaged.is_file() else package.parent / "inventory.example.toml"  # in a checkout


def _pairs(option: str, values: list[str]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, addr = value.partition("=")
        if not sep or not name or not addr:
            raise UsageError(f"{option} {value}: want NAME=ADDRESS")
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise UsageError(f"{option} {value}: {addr} is not an IP address") from None
        out.append((name, addr))
    return out


def generate(args: argparse.Namespace) -> str:
    if not args.vip or len(args.lb) < 2 or not args.master:
        raise UsageError("init with options needs --vip, at least two --lb and one --master",
                         hint="or run `hakeep init` alone for the commented example")
    lbs, masters = _pairs("--lb", args.lb), _pairs("--master", args.master)
    q = json.dumps  # a TOML basic string is a JSON string
    lines = [
        "# hakeep inventory, written by `hakeep init`. README.md describes every key.",
        "# Check it with `hakeep validate FILE`; put the VRRP password (at most 8 characters) in $HAKEEP_VRRP_PASS.",
        "",
        "[cluster]",
        f"{'name = ' + q(args.name):<36} # letters, digits, _ . - ; used in router_id and file headers",
        f"{'vip = ' + q(args.vip):<36} # the floating address/prefix; inside every LB's subnet",
        "virtual_router_id = 51               # 1..255, the same on all LBs, unique on the L2 segment",
        "advert_int = 1                       # VRRP advertisement interval, seconds",
        'auth_pass_env = "HAKEEP_VRRP_PASS"   # the variable that holds the VRRP password',
        "",
        "[ssh]                                # defaults for every [[lb]]; an lb's `ssh = { ... }` overrides",
        'user = "root"',
        "sudo = false                         # true: privileged commands go through sudo",
    ]
    for i, (name, addr) in enumerate(lbs):
        lines += ["", "[[lb]]", f"name = {q(name)}", f"address = {q(addr)}", f"interface = {q(args.interface)}",
                  f"priority = {100 - i}" + ("                       # the highest: the preferred VIP holder"
                                             if i == 0 else "")]
    for fe_name, port, check in (("kube-apiserver", 6443, "https"), ("ingress-http", 30080, "tcp")):
        lines += ["", "[[frontend]]", f"name = {q(fe_name)}", f"port = {port}",
                  f"check = {q(check)}" + ('                      # GET /readyz over TLS (add ca_file to verify)'
                                          if check == "https" else ""),
                  "servers = ["]
        lines += [f"  {{ name = {q(n)}, address = {q(a)}, port = {port} }}," for n, a in masters]
        lines.append("]")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import hashlib
    import tomllib

    from hakeep.cli import output
    from hakeep.inventory.load import build_inventory

    asked = args.vip or args.lb or args.master or args.name != "k8s" or args.interface != "eth0"
    text = generate(args) if asked else example_path().read_text(encoding="utf-8")
    build_inventory(tomllib.loads(text), path=Path("init.toml").resolve(),  # what validate would refuse
                    digest=hashlib.sha256(text.encode()).hexdigest())
    output.emit(text.rstrip("\n"))
    return exitcodes.OK
