"""The commands hakeep runs on an LB host, as ``sh`` scripts built from data (pure, no I/O).

Small one-off commands (install packages, stage, commit, back up, restore, systemctl, sysctl,
firewalld, SELinux) are built here line by line with every value quoted by :func:`shlex.quote`; the
longer checks (health gates, where is the VIP) are files in ``sh/`` filled in by
:func:`~hakeep.hosts.scripts.compose`. The planner composes these into steps; the executor only
runs them. File contents never appear in a script: they travel on the command's stdin, so secrets
stay out of ``ps`` and out of logs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence

from hakeep.hosts.scripts import compose
from hakeep.layout import (
    HAPROXY_CFG,
    KEEPALIVED,
    KEEPALIVED_DATA,
    KEEPALIVED_DUMP_LOCK,
    RELEASES_DIR,
    STATS_SOCKETS,
    SYSCTL_CONF,
    UNIT_NAMES,
    VRRP_STATE_FILE,
    staged,
    validate_argv,
)

q = shlex.quote

PREAMBLE = "set -eu\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"


def script(*lines: str) -> str:
    return PREAMBLE + "\n".join(lines) + "\n"


APT_FRESH_MINUTES = 60  # a package index refreshed this recently is not refreshed before an install
# When the index was last refreshed with success: Debian's apt.systemd.daily, pyinfra and Ansible's
# apt module read and write this stamp too (the lists' own mtimes are the mirror's Last-Modified)
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"


def install(pkgmgr: str, packages: Sequence[str], *, apt_stamp: str = APT_STAMP) -> str:
    """Install ``packages`` in one transaction. With apt, the index is refreshed first unless the
    stamp says it was within APT_FRESH_MINUTES (Ansible's cache_valid_time), and refreshed (then
    the install tried again) when an install on a fresh index fails: a package it does not list yet."""
    pkgs = " ".join(q(p) for p in packages)
    if pkgmgr == "apt-get":
        apt_install = ("apt-get install -y -q -o Dpkg::Options::=--force-confdef "
                       f"-o Dpkg::Options::=--force-confold {pkgs}")
        stamp = q(apt_stamp)
        return script(
            "export DEBIAN_FRONTEND=noninteractive",
            # an earlier install cut at its deadline may have left dpkg half-done: finish that first
            "dpkg --configure -a",
            f'if [ -z "$(find {stamp} -maxdepth 0 -type f -mmin -{APT_FRESH_MINUTES} 2>/dev/null)" ] '
            f"|| ! {apt_install}; then",
            "    apt-get update -q -o Acquire::Retries=2",
            f"    mkdir -p {q(apt_stamp.rsplit('/', 1)[0])} && touch {stamp}",
            f"    {apt_install}",
            "fi",
        )
    if pkgmgr in ("dnf", "yum"):
        return script(f"{pkgmgr} -y install {pkgs}")
    raise ValueError(f"unsupported package manager {pkgmgr!r}")


def stage_file(path: str, mode: int, owner: str, group: str) -> str:
    """Write stdin to ``path.hakeep-new`` beside the target, with its final owner and mode."""
    tmp = staged(path)
    return script(
        "umask 077",
        f"mkdir -p {q(path.rsplit('/', 1)[0])}",
        f"cat > {q(tmp)}",
        f"chown {q(owner)}:{q(group)} {q(tmp)}",
        f"chmod {mode:04o} {q(tmp)}",
    )


def commit_files(paths: Iterable[str]) -> str:
    """Atomically move staged files over their targets (rename within one directory)."""
    return script(*(f"mv -f {q(staged(p))} {q(p)}" for p in paths))


def set_mode(path: str, mode: int, owner: str, group: str) -> str:
    return script(f"chown {q(owner)}:{q(group)} {q(path)}", f"chmod {mode:04o} {q(path)}")


def validate_staged(argv: Sequence[str], path: str, *, tolerate: bool = False) -> str:
    """Run a validator (``haproxy -c -f {}``) on the staged file; its output shows on failure. With
    ``tolerate`` (a file that ran on this host before), a refusal is printed on stderr and the step
    goes on."""
    cmd = " ".join(q(a) for a in validate_argv(argv, staged(path)))
    if tolerate:
        return script(f"out=$({cmd} 2>&1) || printf '%s\\n%s\\n' "
                      f"{q('hakeep: the validator refuses this file, which ran here before; restoring it anyway:')} "
                      '"$out" >&2', "exit 0")
    return script(f"{cmd} 2>&1")


def validate_copy(root: str, checks: Sequence[Sequence[str]]) -> str:
    """Run each validator argv on the copy under ``root`` (already uploaded), then remove ``root``.

    Exit 0: all accepted; 1: a validator rejected its file (its output follows); 3: a binary is not
    installed yet (dry-run on a bare host).
    """
    lines = [f"trap 'rm -rf {q(root)}' EXIT", "rc=0"]
    for argv in checks:
        binary, cmd = argv[0], " ".join(q(a) for a in argv)
        lines += [
            f"if ! command -v {q(binary)} >/dev/null 2>&1; then echo {q(binary + ': not installed yet')}; "
            "[ $rc -eq 0 ] && rc=3",
            f"elif ! out=$({cmd} </dev/null 2>&1); then echo {q(binary + ' rejected the new config:')}; "
            'echo "$out"; rc=1',
            "fi",
        ]
    lines.append('exit "$rc"')
    return script(*lines)


def upload_into(root: str, path: str, mode: int) -> str:
    """Write stdin to ``root/path`` (root is a private, root-owned folder under /run)."""
    target = root + path
    return script(
        "umask 077",
        f"mkdir -p {q(target.rsplit('/', 1)[0])}",
        f"chmod 0700 {q(root)}",
        f"cat > {q(target)}",
        f"chmod {mode:04o} {q(target)}",
    )


def make_private_dir(root: str) -> str:
    parent = root.rsplit("/", 1)[0]
    return script(f"mkdir -p -m 0755 {q(parent)}", f"rm -rf {q(root)}", f"mkdir -m 0700 {q(root)}")


def backup(release_dir: str, paths: Iterable[str]) -> str:
    """Copy the live files (those that exist) into the release folder; stdin is the manifest."""
    files_dir = release_dir + "/files"
    lines = ["umask 077", f"mkdir -p {q(files_dir)}"]
    for p in paths:
        dest = files_dir + p
        lines.append(f"if [ -e {q(p)} ]; then mkdir -p {q(dest.rsplit('/', 1)[0])}; "
                     f"cp -p {q(p)} {q(dest)}; fi")
    lines += [f"cat > {q(release_dir + '/manifest.json.tmp')}",
              f"mv -f {q(release_dir + '/manifest.json.tmp')} {q(release_dir + '/manifest.json')}"]
    return script(*lines)


def write_manifest(release_dir: str) -> str:
    return script("umask 077", f"cat > {q(release_dir + '/manifest.json.tmp')}",
                  f"mv -f {q(release_dir + '/manifest.json.tmp')} {q(release_dir + '/manifest.json')}")


def restore(release_dir: str, paths: Iterable[str]) -> str:
    """Put back every backed-up file; a managed file with no backup did not exist: remove it.

    Decided on the host at run time, from the backup itself (packages installed in the same run
    create files after the facts were gathered: Debian's stock haproxy.cfg is one). A restored file
    keeps its saved mode and owner but gets a new mtime, so the re-check can prove the unit loaded it.
    """
    lines = []
    for p in paths:
        src, new = q(release_dir + "/files" + p), q(staged(p))
        lines.append(f"if [ -e {src} ]; then cp -p {src} {new} && touch {new} && mv -f {new} {q(p)}; "
                     f"else rm -f {q(p)}; fi")
    return script(*lines)


def drop_staged(paths: Iterable[str]) -> str:
    return script(*(f"rm -f {q(staged(p))}" for p in paths))


def systemctl(action: str, unit: str) -> str:
    return script(f"systemctl {q(action)} {q(unit + '.service')}")


def daemon_reload() -> str:
    """systemd reads its unit files again (a drop-in hakeep manages changed)."""
    return script("systemctl daemon-reload")


def _timer(unit: str, seconds: float, argv: str) -> list[str]:
    """Lines that (re)arm a one-shot systemd timer on the host running ``argv`` in ``seconds``, to
    within 0.1 s (a transient timer is accurate to a minute unless told otherwise)."""
    units = f"{q(unit + '.timer')} {q(unit + '.service')}"
    return [f"systemctl stop {units} 2>/dev/null || true", f"systemctl reset-failed {units} 2>/dev/null || true",
            f"systemd-run --quiet --unit={q(unit)} --on-active={seconds:g}s "
            f"--timer-property=AccuracySec=100ms {argv}"]


def kill_unit(unit: str, restart_in: float, timer_unit: str) -> str:
    """SIGKILL every process of a unit: a crash, with no goodbye (keepalived sends no priority 0).
    A timer on the host starts it again in ``restart_in`` seconds whatever becomes of hakeep."""
    return script(*_timer(timer_unit, restart_in, f"systemctl start {q(unit + '.service')}"),
                  f"systemctl kill --signal=SIGKILL {q(unit + '.service')}")


def link_down_for(interface: str, seconds: float, timer_unit: str) -> str:
    """Take ``interface`` down for ``seconds``. First a systemd timer on the host that brings it back
    up and re-adds the routes the kernel drops with it (a default route, say), so losing this SSH
    session, or hakeep, cannot leave it down; then the link goes down from a detached shell a
    moment after this command has returned. Linux drops an interface's IPv6 addresses when it goes
    down: keep_addr_on_down is set for the drill (and put back after), so the LB keeps its address6."""
    routes, routes6, up = "/run/hakeep/drill-routes", "/run/hakeep/drill-routes6", "/run/hakeep/drill-link-up.sh"
    dev = q(interface)
    keep = f"/proc/sys/net/ipv6/conf/{interface}/keep_addr_on_down"
    saved = "/run/hakeep/drill-keep-addr-on-down"
    return script(
        "umask 077", "mkdir -p /run/hakeep",
        f"ip -4 route show dev {dev} | grep -v ' proto kernel ' > {routes} || true",
        f"ip -6 route show dev {dev} 2>/dev/null | grep -v ' proto kernel ' > {routes6} || true",
        # the value from before the first of overlapping drills is the one put back
        f"[ -f {saved} ] || cat {q(keep)} > {saved} 2>/dev/null || rm -f {saved}",
        f"[ ! -f {saved} ] || echo 1 > {q(keep)}",
        f"printf '%s\\n' 'ip link set dev {interface} up' "
        f"'while read -r r; do ip route replace $r dev {interface}; done < {routes}' "
        f"'while read -r r; do ip -6 route replace $r dev {interface}; done < {routes6}' "
        f"'[ ! -f {saved} ] || {{ cat {saved} > {keep}; rm -f {saved}; }}' > {up}",
        *_timer(timer_unit, seconds, f"/bin/sh {up}"),
        f"setsid sh -c {q('sleep 0.3; ip link set dev ' + dev + ' down')} </dev/null >/dev/null 2>&1 &",
    )


def forget_vrrp_state() -> str:
    """Drop the recorded VRRP state, so the next one read is what keepalived reports from now on."""
    return script(f"rm -f {q(VRRP_STATE_FILE)} {q(VRRP_STATE_FILE)}.*")  # (and each instance's own record)


def sysctl_nonlocal_bind(versions: Sequence[int] = (4,)) -> str:
    """haproxy may bind a VIP this host does not hold (yet): ``net.ipv4`` / ``net.ipv6`` per IP
    version of the VIPs it binds, now and at boot (the file names every one needed)."""
    keys = [f"net.ipv{v}.ip_nonlocal_bind" for v in versions]
    lines = " ".join(q(f"{k} = 1") for k in keys)
    return script(
        f"printf '%s\\n' '# Managed by hakeep: haproxy binds the VIP explicitly' {lines} > {q(SYSCTL_CONF)}",
        *(f"sysctl -q -w {k}=1" for k in keys),
    )


def firewalld(zone: str, ports: Sequence[int], vrrp: bool) -> str:
    """Open ports and VRRP in ``zone``, at runtime and permanently: no --reload, which would drop the
    runtime rules of other software (container runtimes, libvirt)."""
    z = f"--zone={q(zone)} " if zone else ""
    rules = [f"--add-port={p}/tcp" for p in ports] + (["--add-protocol=vrrp"] if vrrp else [])
    lines = []
    for rule in rules:
        lines += [f"firewall-cmd -q {z}{rule}", f"firewall-cmd -q --permanent {z}{rule}"]
    return script(*lines)


def selinux_connect_any() -> str:
    return script("setsebool -P haproxy_connect_any 1")


def remove_files(paths: Iterable[str]) -> str:
    return script(*(f"rm -f {q(p)}" for p in paths))


def remove_vrrp_metrics(directory: str) -> str:
    """Remove the notify script's metrics files (one per VRRP instance) from a textfile folder."""
    return script(f"rm -f -- {q(directory)}/hakeep_vrrp_*.prom")


def prune_releases(ids: Iterable[str]) -> str:
    """Remove the named release folders (the planner picks them: the oldest beyond keep_releases)."""
    return script(*(f"rm -rf -- {q(RELEASES_DIR + '/' + rid)}" for rid in ids))




# --- the scripts kept as files (hakeep/hosts/sh/), with their variables ------------------------


def host_gate(ports: Sequence[int], backends: Mapping[str, Sequence[str]], *, require_up: Sequence[str] = (),
              hold_vip: str = "", binds: Sequence[str] = (), keepalived_expect: Sequence[str] = ()) -> str:
    """Health gate of one LB (sh/gate.sh): units active, haproxy running the config file as it is
    now (a failed reload leaves an older worker serving), ports listening (``binds``: on exactly
    that address:port), keepalived's instances MASTER or BACKUP by its own account and running
    ``keepalived_expect`` (:func:`hakeep.hosts.keepalived.expected` of the file), every server of
    ``backends`` known to haproxy, and a passing server in each backend of ``require_up``; with
    ``hold_vip``, the LB still holds that VIP (it had it, and no peer could take it over)."""
    servers = [f"{backend}/{server}" for backend, names in backends.items() for server in names]
    return compose("gate.sh", UNITS=UNIT_NAMES, VRRP_UNIT=KEEPALIVED.name, PORTS=ports, SERVERS=servers,
                   REQUIRE_UP=require_up, KA_DATA=KEEPALIVED_DATA, KA_LOCK=KEEPALIVED_DUMP_LOCK,
                   KA_EXPECT="\n".join(keepalived_expect), STATS_SOCKET=STATS_SOCKETS,
                   HOLD_VIP=hold_vip, BINDS=binds, CONFIG=HAPROXY_CFG)


def units_gate(running: Mapping[str, bool], keepalived_expect: Sequence[str] = ()) -> str:
    """Each unit active or inactive as wanted; haproxy, when running, running its file as it is now;
    keepalived, when running, in MASTER or BACKUP and running ``keepalived_expect``."""
    return compose("units_gate.sh", UNITS=list(running), RUNNING=[u for u, up in running.items() if up],
                   VRRP_UNIT=KEEPALIVED.name, KA_DATA=KEEPALIVED_DATA, KA_LOCK=KEEPALIVED_DUMP_LOCK,
                   KA_EXPECT="\n".join(keepalived_expect), CONFIG=HAPROXY_CFG)


def vip_check(vip_ip: str, ports: Sequence[int], probe_timeout: float = 2, iface: str = "") -> str:
    """Print ``holder=IFACE`` when this host carries the VIP, then ``port=N:open|closed`` for each
    frontend port reached on the VIP from here (all at once, each within ``probe_timeout`` s); with
    ``iface``, this host's MAC there and every other MAC answering ARP for the VIP (``arp=``)."""
    return compose("vip_check.sh", VIP_IP=vip_ip, PORTS=ports, PROBE_TIMEOUT=f"{probe_timeout:g}", IFACE=iface)


def server_states() -> str:
    """haproxy's ``show stat`` CSV (:func:`hakeep.hosts.facts.parse_stat` reads it); exit 1 without a socket."""
    return compose("server_states.sh", STATS_SOCKET=STATS_SOCKETS)


def stop_unit_for(unit: str, start_in: float, timer_unit: str) -> str:
    """Stop a unit; first a timer on the host that starts it again in ``start_in`` seconds whatever
    becomes of hakeep (the drill starts it sooner itself)."""
    return script(*_timer(timer_unit, start_in, f"systemctl start {q(unit + '.service')}"),
                  f"systemctl stop {q(unit + '.service')}")


def unit_times(unit: str) -> str:
    """``KEY=VALUE`` lines: the unit's state, systemd's automatic restarts, and when (systemd's
    monotonic clock, µs) it last left and entered the active state."""
    return script(f"systemctl show -p ActiveState -p NRestarts -p ActiveExitTimestampMonotonic "
                  f"-p ActiveEnterTimestampMonotonic {q(unit + '.service')}")


def start_then_cancel(unit: str, timer_unit: str) -> str:
    """Start a unit a drill took out (clearing a failed state and a start limit it hit), and only
    then stop the drill's backstop timer (armed by :func:`kill_unit` or :func:`stop_unit_for`): a
    connection lost in between leaves the timer to start it."""
    service = q(unit + ".service")
    # only a failed unit is reset: reset-failed also zeroes NRestarts, the record of systemd's restarts
    return script(f"if systemctl is-failed --quiet {service}; then systemctl reset-failed {service}; fi",
                  f"systemctl start {service}",
                  f"systemctl stop {q(timer_unit + '.timer')} 2>/dev/null || true")


def listening(ports: Sequence[int]) -> str:
    """Exit 0 once something listens on every port."""
    return compose("listening.sh", PORTS=ports)


def vip_moved(vip_ip: str, ports: Sequence[int], probe_timeout: int = 2) -> str:
    """On an LB leaving the set, once its keepalived stopped: the VIP is gone from it and answers
    from another host (ARP and every frontend port)."""
    return compose("vip_moved.sh", VIP_IP=vip_ip, PORTS=ports, PROBE_TIMEOUT=probe_timeout)


def read_configs(patterns: Sequence[str]) -> str:
    """The files ``patterns`` name (paths or globs, expanded on the host) and the host's IPv4
    addresses: ``@@file PATH`` + base64, ``@@addr IFACE CIDR`` (:func:`parse_read`)."""
    return compose("read_configs.sh", FILES=" ".join(patterns))


def parse_read(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(files as (path, text), addresses as (iface, cidr)) from :func:`read_configs`' output."""
    import base64
    import binascii

    files, addresses = [], []
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("@@file "):
            try:
                files.append((line[7:], base64.b64decode(next(lines, ""), validate=True).decode("utf-8",
                                                                                               errors="replace")))
            except binascii.Error:
                raise ValueError(f"{line[7:]}: its content came back garbled") from None
        elif line.startswith("@@addr "):
            iface, _, cidr = line[7:].partition(" ")
            addresses.append((iface, cidr))
    return files, addresses
