"""Remote shell snippets, built as strings with every inventory value shell-quoted.

The planner composes these into steps; the executor only runs them. Nothing here does I/O. Each
builder returns a POSIX ``sh`` script meant to run privileged (the transport adds sudo when the
inventory asks). File contents never appear in a script: they travel on the command's stdin, so
secrets stay out of ``ps`` and out of logs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence

q = shlex.quote

PREAMBLE = "set -eu\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"
STAGED_SUFFIX = ".hakeep-new"

PACKAGES = {"haproxy": "haproxy", "keepalived": "keepalived"}


def script(*lines: str) -> str:
    return PREAMBLE + "\n".join(lines) + "\n"


def install(pkgmgr: str, packages: Sequence[str]) -> str:
    pkgs = " ".join(q(p) for p in packages)
    if pkgmgr == "apt-get":
        return script(
            "export DEBIAN_FRONTEND=noninteractive",
            "apt-get update -q -o Acquire::Retries=2",
            "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
            f"{pkgs}",
        )
    if pkgmgr in ("dnf", "yum"):
        return script(f"{pkgmgr} -y install {pkgs}")
    raise ValueError(f"unsupported package manager {pkgmgr!r}")


def staged(path: str) -> str:
    return path + STAGED_SUFFIX


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


def validate_staged(argv: Sequence[str], path: str) -> str:
    """Run a validator (``haproxy -c -f {}``) on the staged file; its output shows on failure."""
    cmd = " ".join(q(staged(path)) if a == "{}" else q(a) for a in argv)
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
    create files after the facts were gathered: Debian's stock haproxy.cfg is one).
    """
    lines = []
    for p in paths:
        src = release_dir + "/files" + p
        lines.append(f"if [ -e {q(src)} ]; then cp -p {q(src)} {q(staged(p))} && mv -f {q(staged(p))} {q(p)}; "
                     f"else rm -f {q(p)}; fi")
    return script(*lines)


def drop_staged(paths: Iterable[str]) -> str:
    return script(*(f"rm -f {q(staged(p))}" for p in paths))


def systemctl(action: str, unit: str) -> str:
    return script(f"systemctl {q(action)} {q(unit + '.service')}")


def sysctl_nonlocal_bind() -> str:
    conf = "/etc/sysctl.d/90-hakeep.conf"
    return script(
        f"printf '%s\\n' '# Managed by hakeep: haproxy binds the VIP explicitly' "
        f"'net.ipv4.ip_nonlocal_bind = 1' > {q(conf)}",
        "sysctl -q -w net.ipv4.ip_nonlocal_bind=1",
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


def host_gate(ports: Sequence[int], backends: Mapping[str, Sequence[str]], state_file: str,
              stats_socket: str, require_up: Sequence[str] = ()) -> str:
    """Health gate of one LB: exit 0 and print ``ok`` when healthy, else print what is wrong.

    Every server of ``backends`` must be known to haproxy; each backend in ``require_up`` (those
    that had a server UP before the change) must have a server whose last health check passed
    (L4OK/L6OK/L7OK): a config that reaches no backend does not pass, even though TCP to the
    frontend still connects.
    """
    lines = [
        'fail=""',
        "systemctl is-active --quiet haproxy.service || fail=\"$fail haproxy:inactive\"",
        "systemctl is-active --quiet keepalived.service || fail=\"$fail keepalived:inactive\"",
    ]
    for port in ports:
        lines.append(f'ss -ltn "sport = :{port}" | grep -q LISTEN || fail="$fail port-{port}:not-listening"')
    lines += [
        f"state=$(cut -d' ' -f1 {q(state_file)} 2>/dev/null || true)",
        'case "$state" in MASTER|BACKUP) ;; *) fail="$fail vrrp:${state:-unknown}" ;; esac',
        "stat=''; reader=0",
        f"if [ -S {q(stats_socket)} ]; then",
        "  if command -v socat >/dev/null 2>&1; then reader=1",
        f"    stat=$(echo 'show stat' | socat -t 2 stdio unix-connect:{q(stats_socket)} 2>/dev/null || true)",
        "  elif command -v python3 >/dev/null 2>&1; then reader=1",
        "    stat=$(python3 -c 'import socket,sys",
        "s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1]); s.sendall(b\"show stat\\n\")",
        "b=b\"\"",
        "while True:",
        "    d=s.recv(65536)",
        "    if not d: break",
        "    b+=d",
        f"sys.stdout.write(b.decode())' {q(stats_socket)} 2>/dev/null || true)",
        "  fi",
        "fi",
        'if [ -n "$stat" ]; then',
        "  :",
    ]
    for backend, servers in backends.items():
        for server in servers:
            lines.append(f'  printf "%s\\n" "$stat" | grep -q {q("^" + backend + "," + server + ",")} '
                         f'|| fail="$fail backend-{backend}/{server}:missing"')
    passed = ('NR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i }; next } '
              '$1 == be && $2 != "BACKEND" && $2 != "FRONTEND" && $(col["check_status"]) ~ /^L[467]OK/ { ok = 1 } '
              'END { exit !ok }')
    for backend in require_up:
        lines.append(f'  printf "%s\\n" "$stat" | awk -F, -v be={q(backend)} {q(passed)} '
                     f'|| fail="$fail backend-{backend}:no-server-passes-its-check"')
    lines += [
        'elif [ "$reader" = 1 ]; then',
        '  fail="$fail haproxy-stats:unreadable"',
        "fi",
        'if [ -n "$fail" ]; then echo "${fail# }"; exit 1; fi',
        "echo ok",
    ]
    return script(*lines).replace("set -eu\n", "set -u\n", 1)


def vip_check(vip_ip: str, ports: Sequence[int]) -> str:
    """Print ``holder=IFACE`` when this host carries the VIP, then ``port=N:open|closed`` for each
    frontend port reached on the VIP from here."""
    lines = [
        f"ip -o -4 addr show | awk -v vip={q(vip_ip)} '{{split($4, a, \"/\"); if (a[1] == vip) print \"holder=\" $2}}'",
    ]
    for port in ports:
        lines.append(
            f"if timeout 3 bash -c {q(f'exec 3<>/dev/tcp/{vip_ip}/{port}')} 2>/dev/null "
            f"|| (command -v nc >/dev/null 2>&1 && nc -z -w 3 {q(vip_ip)} {port}); "
            f"then echo port={port}:open; else echo port={port}:closed; fi")
    return script(*lines).replace("set -eu\n", "set -u\n", 1)


def remove_files(paths: Iterable[str]) -> str:
    return script(*(f"rm -f {q(p)}" for p in paths))


def prune_releases(releases_dir: str, ids: Iterable[str]) -> str:
    """Remove the named release folders (the planner picks them: the oldest beyond keep_releases)."""
    return script(*(f"rm -rf -- {q(releases_dir + '/' + rid)}" for rid in ids))


def units_gate(running: Mapping[str, bool], state_file: str) -> str:
    """Each unit active or inactive as wanted; keepalived, when running, in MASTER or BACKUP."""
    lines = ['fail=""']
    for unit, up in running.items():
        if up:
            lines.append(f"systemctl is-active --quiet {q(unit + '.service')} || fail=\"$fail {unit}:inactive\"")
        else:
            lines.append(f"! systemctl is-active --quiet {q(unit + '.service')} || fail=\"$fail {unit}:still-active\"")
    if running.get("keepalived"):
        lines += [
            f"state=$(cut -d' ' -f1 {q(state_file)} 2>/dev/null || true)",
            'case "$state" in MASTER|BACKUP) ;; *) fail="$fail vrrp:${state:-unknown}" ;; esac',
        ]
    lines += ['if [ -n "$fail" ]; then echo "${fail# }"; exit 1; fi', "echo ok"]
    return script(*lines).replace("set -eu\n", "set -u\n", 1)
