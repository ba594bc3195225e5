"""The pairs ``hakeep import`` is tested on without hosts: the recipe's own files (tests/data/takeover/
recipe/, copied from ../shared/seed/) and variants of them, each a pair of hosts' files; and the
inputs it must refuse. tests/test_takeover.py maps each to an inventory and compares it with its
golden file (tests/data/takeover/golden/<case>.toml)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RECIPE = Path(__file__).resolve().parent / "data" / "takeover" / "recipe"
HAPROXY = "/etc/haproxy/haproxy.cfg"
KEEPALIVED = "/etc/keepalived/keepalived.conf"
LBS = (("loadbalance-left", "10.220.62.32", "left"), ("loadbalance-right", "10.220.62.33", "right"))


def recipe(side: str) -> dict[str, str]:
    return {HAPROXY: (RECIPE / "haproxy.cfg").read_text(), KEEPALIVED: (RECIPE / f"keepalived-{side}.conf").read_text()}


@dataclass
class Case:
    name: str
    change: Callable[[str, dict[str, str]], None] = lambda side, files: None  # edits one host's files in place
    holder: str = "loadbalance-left"
    include_secrets: bool = False
    cluster_name: str | None = None
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def hosts(self) -> dict[str, dict[str, str]]:
        out = {}
        for name, _, side in LBS:
            files = recipe(side)
            self.change(side, files)
            out[name] = files
        return out


def sub(path: str, old: str, new: str, sides: tuple[str, ...] = ("left", "right")) -> Callable[[str, dict[str, str]],
                                                                                                   None]:
    def change(side: str, files: dict[str, str]) -> None:
        if side in sides:
            assert old in files[path], (path, old)
            files[path] = files[path].replace(old, new)
    return change


def both(*changes: Callable[[str, dict[str, str]], None]) -> Callable[[str, dict[str, str]], None]:
    def change(side: str, files: dict[str, str]) -> None:
        for c in changes:
            c(side, files)
    return change


def included(side: str, files: dict[str, str]) -> None:
    """The vrrp_instance moved to conf.d/vip.conf, pulled in by an include with a glob."""
    text = files[KEEPALIVED]
    start = text.index("vrrp_instance")
    files["/etc/keepalived/conf.d/vip.conf"] = text[start:]
    files[KEEPALIVED] = text[:start] + "include conf.d/*.conf\n"


def reordered(side: str, files: dict[str, str]) -> None:
    """Blocks in another order: the instance first, then the script, then global_defs; the haproxy
    backends before their frontends."""
    k = files[KEEPALIVED]
    g, s, i = k.index("global_defs"), k.index("vrrp_script"), k.index("vrrp_instance")
    files[KEEPALIVED] = k[i:] + "\n" + k[s:i] + k[g:s]
    h = files[HAPROXY]
    fe1, be1 = h.index("frontend kube-apiserver"), h.index("backend kube-apiserver")
    fe2, be2 = h.index("frontend in-ingress"), h.index("backend ingress")
    files[HAPROXY] = h[:fe1] + h[be1:fe2] + h[fe1:be1] + h[be2:] + h[fe2:be2]


CASES = [
    Case("recipe"),
    Case("recipe-right-holds-the-vip", holder="loadbalance-right", cluster_name="devops"),
    Case("include-glob", included),
    Case("keepalived-sample-instance-name", sub(KEEPALIVED, "vrrp_instance haproxy-vip {", "vrrp_instance VI_1 {")),
    Case("comments-and-quotes", both(
        sub(KEEPALIVED, "  router_id LVS_DEVEL\n", "  ! the router\n  router_id \"LVS_DEVEL\"   # quoted\n"),
        sub(HAPROXY, "    pidfile     /var/run/haproxy.pid", "    pidfile     \"/var/run/haproxy.pid\" # quoted"),
        sub(HAPROXY, " server devops-master-01 10.220.62.21:6443 check #",
            " server 'devops-master-01' 10.220.62.21:6443 check #"))),
    Case("blocks-in-any-order", reordered),
    Case("state-master-and-priorities", both(
        sub(KEEPALIVED, "state BACKUP\n  priority 100", "state MASTER\n  priority 101", ("left",)))),
    Case("https-check", both(
        sub(HAPROXY, "    option tcp-check\n", "    option httpchk GET /readyz\n    http-check expect status 200\n"),
        sub(HAPROXY, "10.220.62.21:6443 check", "10.220.62.21:6443 check check-ssl verify none"),
        sub(HAPROXY, "10.220.62.22:6443 check", "10.220.62.22:6443 check check-ssl verify none"),
        sub(HAPROXY, "10.220.62.23:6443 check", "10.220.62.23:6443 check check-ssl verify none"))),
    Case("listen-and-leastconn", sub(
        HAPROXY, "frontend in-ingress-nginx-30080\n    bind *:30080\n    default_backend ingress-nginx-30080\n"
                 "backend ingress-nginx-30080\n",
        "listen ingress-nginx-30080\n    bind *:30080\n    mode tcp\n    balance leastconn\n")),
    Case("stickiness", both(
        sub(HAPROXY, "    balance roundrobin\n", "    balance leastconn\n    stick-table type ip size 200k expire 30m\n"
                     "    stick on src\n"),
        sub(HAPROXY, "\nbackend ingress-nginx-30080\n", "\nbackend ingress-nginx-30080\n    balance source\n"))),
    Case("stickiness-hakeep-does-not-carry", both(
        sub(HAPROXY, "    balance roundrobin\n", "    balance leastconn\n    stick-table type ip size 1m expire 30m "
                     "store gpc0\n    stick on src\n"),
        sub(HAPROXY, "\nbackend ingress-nginx-30080\n", "\nbackend ingress-nginx-30080\n    balance source\n"
                     "    hash-type consistent sdbm avalanche\n"))),
    Case("prometheus-exporter", sub(HAPROXY, "defaults\n", "frontend prometheus\n    bind *:8405\n    mode http\n"
                                                       "    http-request use-service prometheus-exporter if { path "
                                                       "/metrics }\n    no log\n\ndefaults\n")),
    Case("two-instances", sub(
        KEEPALIVED, "    chk_haproxy\n  }\n}\n",
        "    chk_haproxy\n  }\n}\n\nvrrp_instance ingress {\n  state BACKUP\n  interface ens192\n"
        "  virtual_router_id 61\n  priority 90\n  advert_int 1\n  authentication {\n    auth_type PASS\n"
        "    auth_pass 1111\n  }\n  virtual_ipaddress {\n    10.220.62.34/24\n  }\n"
        "  notify_master /usr/local/bin/x.sh\n}\n")),
    Case("ipv6-instance", lambda side, files: files.__setitem__(KEEPALIVED, files[KEEPALIVED].replace(
        "    chk_haproxy\n  }\n}\n",
        "    chk_haproxy\n  }\n}\n\nvrrp_instance api6 {\n  state BACKUP\n  interface ens192\n"
        "  virtual_router_id 62\n  priority 100\n  advert_int 1\n  version 3\n"
        f"  unicast_src_ip FD00:62::{32 if side == 'left' else 33}\n"
        f"  unicast_peer {{\n    fd00:62::{33 if side == 'left' else 32}\n  }}\n"
        "  virtual_ipaddress {\n    fd00:62::31/64\n  }\n}\n", 1))),
    Case("stats-page", sub(HAPROXY, "defaults\n", "listen stats\n    bind *:8404\n    mode http\n    stats enable\n"
                                                  "    stats uri /stats\n    stats auth admin:st4ts-pw\n\ndefaults\n")),
    Case("stats-page-with-secrets", sub(HAPROXY, "defaults\n", "listen stats\n    bind 127.0.0.1:8404\n    mode http\n"
                                                              "    stats enable\n    stats auth admin:st4ts-pw\n\n"
                                                              "defaults\n"), include_secrets=True),
    Case("timeouts-with-units", both(
        sub(HAPROXY, "timeout connect 5000", "timeout connect 500"),
        sub(HAPROXY, "timeout client 50000", "timeout client 1m"),
        sub(HAPROXY, "timeout server 50000", "timeout server 90s\n        timeout tunnel 1h"))),
    Case("the-lbs-disagree", both(
        sub(HAPROXY, "    server devops-master-03 10.220.62.23:6443 check # Replace the IP address with your own.\n",
            "", ("right",)),
        sub(HAPROXY, "    balance roundrobin", "    balance leastconn", ("right",)),
        sub(KEEPALIVED, "auth_pass 1111", "auth_pass 2222", ("right",)),
        sub(KEEPALIVED, "advert_int 1", "advert_int 2", ("right",)))),
    Case("vip-without-a-prefix", sub(KEEPALIVED, "10.220.62.31/24 ", "10.220.62.31 dev ens192 ")),
    Case("things-hakeep-does-not-carry", both(
        sub(KEEPALIVED, "  track_script {", "  nopreempt\n  notify_master \"/usr/local/bin/paged.sh master\"\n"
                                            "  track_script {"),
        sub(KEEPALIVED, "vrrp_script chk_haproxy {", "vrrp_sync_group G1 {\n  group {\n    haproxy-vip\n  }\n}\n\n"
                                                    "vrrp_script chk_haproxy {"),
        sub(HAPROXY, "frontend kube-apiserver\n  bind *:6443\n",
            "frontend kube-apiserver\n  bind *:6443\n  acl local src 10.0.0.0/8\n  tcp-request connection reject "
            "if !local\n"),
        sub(HAPROXY, "defaults\n", "frontend web\n    bind *:80\n    mode http\n    default_backend web\n"
                                   "backend web\n    mode http\n    server w1 10.220.62.40:80\n\ndefaults\n"))),
    Case("multicast-and-another-address", both(
        sub(KEEPALIVED, "  unicast_src_ip 10.220.62.32      # The IP address of this machine\n  unicast_peer {\n"
                        "    10.220.62.33                   # The IP address of peer machines\n  }\n", "", ("left",)),
        sub(KEEPALIVED, "  unicast_src_ip 10.220.62.33      # The IP address of this machine\n  unicast_peer {\n"
                        "    10.220.62.32                   # The IP address of peer machines\n  }\n", "", ("right",)),
        sub(KEEPALIVED, "    10.220.62.31/24                  # The VIP address\n",
            "    10.220.62.31/24                  # The VIP address\n    10.220.62.30/24\n"))),
]

# (what to change, the words the error must say) -- each refused with the file and line
REFUSED = [
    (sub(KEEPALIVED, 'script "killall -0 haproxy"', 'script "killall -0 haproxy'),
     "/etc/keepalived/keepalived.conf:11: a double quote is not closed on this line"),
    (sub(KEEPALIVED, "  track_script {\n    chk_haproxy\n  }\n}\n", "  track_script {\n    chk_haproxy\n  }\n"),
     "/etc/keepalived/keepalived.conf:16: block 'vrrp_instance' is never closed"),
    (sub(KEEPALIVED, "global_defs {\n", "}\nglobal_defs {\n"),
     "/etc/keepalived/keepalived.conf:1: '}' closes no block"),
    (sub(KEEPALIVED, "  virtual_router_id 60\n", "  virtual_router_id $VRID\n"),
     "/etc/keepalived/keepalived.conf:20: virtual_router_id: keepalived parameters ($NAME) and conditional lines"),
    (sub(KEEPALIVED, "  virtual_ipaddress {\n    10.220.62.31/24                  # The VIP address\n  }\n",
         "  virtual_ipaddress { 10.220.62.31/24 }\n"),
     "/etc/keepalived/keepalived.conf:31: virtual_ipaddress: braces keepalived's reader would not take"),
    (sub(KEEPALIVED, "  virtual_router_id 60", "  virtual_router_id sixty"),
     "/etc/keepalived/keepalived.conf:20: virtual_router_id sixty: not a whole number"),
    (sub(HAPROXY, "global\n", ".if defined(X)\nglobal\n"),
     "/etc/haproxy/haproxy.cfg:1: .if: conditional blocks are not followed"),
    (sub(HAPROXY, "    maxconn     4000", "    maxconn     \"${MAXCONN}\""),
     "/etc/haproxy/haproxy.cfg:5: an environment variable in a value"),
    (sub(HAPROXY, "global\n", "maxconn 10\nglobal\n"),
     "/etc/haproxy/haproxy.cfg:1: 'maxconn' comes before any section"),
    (sub(HAPROXY, "timeout client 50000", "timeout client fifty"),
     "/etc/haproxy/haproxy.cfg:17: timeout client fifty: not a haproxy time"),
    (sub(KEEPALIVED, "vrrp_instance haproxy-vip {", "vrrp_instanc haproxy-vip {"),
     "/etc/keepalived/keepalived.conf: no vrrp_instance"),
]


def reader(files: dict[str, str]) -> Callable[[str], list[tuple[str, str]]]:
    """A host's include reader over its files: the glob expanded, sorted, as the host's shell does."""
    return lambda pattern: sorted((p, t) for p, t in files.items() if fnmatch.fnmatch(p, pattern))
