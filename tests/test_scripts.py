"""The remote scripts (hakeep/hosts/sh/): syntax, shellcheck, and the facts script and gate run for real.

Each file, and each script as a host receives it (preamble, variables, lib.sh, body), passes
``sh -n`` and shellcheck. The facts script runs here, read-only, against a temporary root: managed
files, a release history, a VRRP state file, a lock owner file and a stats socket that answers like
haproxy's; its output is parsed by the real parser. The gate's backend checks run against the same
socket. Nothing here reads or writes this machine's /etc/haproxy or /etc/keepalived.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeep.hosts import commands
from hakeep.hosts.facts import facts_script, parse_facts
from hakeep.hosts.remote import lock_script, stop_script
from hakeep.hosts.scripts import compose, names, source
from hakeep.inventory.load import load_inventory
from hakeep.plan.steps import Action, Step
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from hakeep.run.batch import batch_script
from tests.fixtures import EXAMPLE

SHELLCHECK = shutil.which("shellcheck")
if SHELLCHECK is None and os.environ.get("CI") == "true":
    raise RuntimeError("shellcheck is not installed (scripts/install-test-deps installs it)")
needs_shellcheck = pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed")

STAT_CSV = (
    "# pxname,svname,qcur,status,check_status\n"
    "kube-apiserver,FRONTEND,,OPEN,\n"
    "kube-apiserver-backend,m1,0,UP,L7OK\n"
    "kube-apiserver-backend,m2,0,DOWN,L4CON\n"
    "kube-apiserver-backend,BACKEND,0,UP,\n"
    "ingress-backend,w1,0,DOWN,L4TOUT\n"
)


def composed() -> dict[str, str]:
    """Every script as a host receives it, with realistic values."""
    return {
        "facts": facts_script(interface="eth0", vip_ip="10.0.0.10", files=["/etc/haproxy/haproxy.cfg"]),
        "gate": commands.host_gate([6443, 30080], {"be": ["m1", "m2"]}, require_up=["be"]),
        "units_gate": commands.units_gate({"haproxy": True, "keepalived": False}),
        "vip_check": commands.vip_check("10.0.0.10", [6443]),
        "listening": commands.listening([6443]),
        "vip_moved": commands.vip_moved("10.0.0.10", [6443]),
        "lock": lock_script("/run/hakeep.lock", "ops@ci pid 1 since now", session="0123abcd"),
        "stop": stop_script(["0123abcd0123abcd0123abcd"]),
        "batch": batch_script([Step(Action.STAGE, "s", "cat > /tmp/x", b"abc"), Step(Action.GATE, "g", "true", wait=5)],
                              [300.0, 30.0]),
        "read_configs": commands.read_configs(["/etc/haproxy/haproxy.cfg", "/etc/keepalived/conf.d/*.conf"]),
        "server_states": commands.server_states(),
    }


@pytest.mark.parametrize("name", names())
def test_every_script_file_parses(name: str) -> None:
    done = subprocess.run(["sh", "-n"], input=source(name), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@needs_shellcheck
@pytest.mark.parametrize("name", names())
def test_every_script_file_passes_shellcheck(name: str) -> None:
    assert SHELLCHECK is not None
    done = subprocess.run([SHELLCHECK, "-s", "sh", "-"], input=source(name), capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("name", list(composed()))
def test_every_composed_script_parses_and_passes_shellcheck(name: str) -> None:
    script = composed()[name]
    done = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    if SHELLCHECK is not None:
        done = subprocess.run([SHELLCHECK, "-s", "sh", "-"], input=script, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stdout


@needs_shellcheck
def test_the_rendered_scripts_pass_shellcheck() -> None:
    assert SHELLCHECK is not None
    for host in render_all(load_inventory(EXAMPLE), Secrets(auth_pass="1111")).values():
        for f in host.files:
            if f.path.endswith(".sh"):
                done = subprocess.run([SHELLCHECK, "-s", "sh", "-"], input=f.content, capture_output=True,
                                      check=False)
                assert done.returncode == 0, f"{host.lb.name}:{f.path}\n{done.stdout.decode()}"


def test_a_list_variable_refuses_a_word_with_white_space() -> None:
    with pytest.raises(ValueError, match="cannot be a word"):
        compose("listening.sh", PORTS=["6443", "1 2"])
    with pytest.raises(ValueError, match="upper case"):
        compose("listening.sh", ports="6443")


@pytest.fixture
def stats_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that answers `show stat` like haproxy's admin socket."""
    path = tmp_path / "admin.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                if conn.recv(1024).strip() == b"show stat":
                    conn.sendall(STAT_CSV.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join(5)
    server.close()


def wait_for_file(path: Path, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return path.exists()


def run_script(script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False, input=stdin)


def test_the_facts_script_reads_a_temporary_root(tmp_path: Path, stats_socket: Path) -> None:
    cfg = tmp_path / "etc" / "haproxy.cfg"
    cfg.parent.mkdir()
    cfg.write_bytes(b"global\n    daemon\n")
    cfg.chmod(0o640)
    absent = tmp_path / "etc" / "keepalived.conf"
    releases = tmp_path / "releases"
    backup = releases / "20261127T000000Z-abcdef" / "files" / "etc"
    backup.mkdir(parents=True)
    (backup / "haproxy.cfg").write_bytes(b"old\n")
    manifest = {"id": "20261127T000000Z-abcdef", "seq": 1, "status": "complete"}
    (releases / "20261127T000000Z-abcdef" / "manifest.json").write_text(json.dumps(manifest))
    state = tmp_path / "vrrp-state"
    state.write_text("MASTER 101 1700000000\n")
    owner = tmp_path / "lock.owner"
    owner.write_text("ops@ci pid 7 since then\n")
    stale = tmp_path / "stale.sock"  # an admin socket an older config left: nobody answers there
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    script = compose("facts.sh", FACTS_VERSION="1", IFACE="lo", VIP_IP="127.0.0.3",
                     EXTRA_VIPS=["127.0.0.4", "127.0.0.1"], FILES=[str(cfg), str(absent)],
                     CA_DIR=str(tmp_path / "ca"), UNITS=["hakeep-test-no-such-unit"], STATE_FILE=str(state),
                     STATS_SOCKET=[str(tmp_path / "absent.sock"), str(stale), str(stats_socket)],
                     LOCK_OWNER=str(owner), RELEASES=str(releases),
                     PROBE_VIP="1", PORTS=[], HAPROXY_CONFIG=str(tmp_path / "absent"),
                     VRRP_UNIT="hakeep-test-no-such-unit",
                     KA_DATA=str(tmp_path / "absent"),  # never asks this machine's systemd about its own units
                     PACKAGES=["sh", "hakeep-test-no-such-package"])
    done = run_script(script, stdin="0123abcd\n")
    assert done.returncode == 0, done.stderr
    f = parse_facts("local", done.stdout, "0123abcd")
    assert f.uid == os.getuid()
    assert f.iface_present
    assert "127.0.0.1/8" in f.iface_addresses
    assert f.vip_on == ()
    assert f.extra_vip_on == {"127.0.0.4": (), "127.0.0.1": ("lo",)}  # the other VIPs: where each is
    assert f.for_vip("127.0.0.1", "other").holds_vip
    assert not f.for_vip("127.0.0.4", "other").holds_vip
    assert f.for_vip("127.0.0.3", "other") is f  # the first VIP: these facts as they are
    # the other VIPs are probed too (who answers ARP for each on IFACE), each line under its own VIP
    assert [a.own for a in f.for_vip("127.0.0.4", "other").vip_arp][:1] == [True]
    assert [a.own for a in f.vip_arp].count(True) == 1  # the first VIP's lines: its own probe's, not xvip='s
    live = f.file(str(cfg))
    assert (live.exists, live.mode, live.content) == (True, 0o640, b"global\n    daemon\n")
    assert not f.file(str(absent)).exists
    assert f.units["hakeep-test-no-such-unit"].loaded is False
    assert f.vrrp_state == "MASTER"
    assert f.lock_owner == "ops@ci pid 7 since then"
    assert f.lock_free
    holder = subprocess.Popen(["flock", str(tmp_path / "lock"), "sleep", "30"])
    try:
        assert wait_for_file(tmp_path / "lock")
        time.sleep(0.3)
        held = run_script(script, stdin="0123abcd\n")
        assert parse_facts("local", held.stdout, "0123abcd").lock_free is False
    finally:
        holder.kill()
        holder.wait()
    assert f.backends == {"kube-apiserver-backend": {"m1": "UP", "m2": "DOWN"}, "ingress-backend": {"w1": "DOWN"}}
    assert "@apt-get" in done.stdout  # asked about the package whose program is missing, not about sh
    assert f.candidates == {}  # no such package: no candidate
    assert json.loads(f.releases["20261127T000000Z-abcdef"]) == manifest
    saved = f.release_files[("20261127T000000Z-abcdef", "/etc/haproxy.cfg")]
    assert saved.content == b"old\n"


def gate_output(state: Path, sock: Path, servers: list[str], require_up: list[str]) -> tuple[int, str]:
    sockets = [str(sock.parent / "absent.sock"), str(sock)]  # the first that is there answers
    script = compose("gate.sh", UNITS=[], VRRP_UNIT="hakeep-test-no-such-unit", PORTS=[], SERVERS=servers,
                     REQUIRE_UP=require_up, KA_DATA=str(state), KA_EXPECT="", STATS_SOCKET=sockets, HOLD_VIP="",
                     BINDS=[], CONFIG="")
    done = run_script(script)
    return done.returncode, done.stdout.strip()


def test_the_gate_checks_servers_and_passing_checks(tmp_path: Path, stats_socket: Path) -> None:
    state = tmp_path / "vrrp-state"
    state.write_text("BACKUP 100 1700000000\n")
    ok = gate_output(state, stats_socket, ["kube-apiserver-backend/m1", "kube-apiserver-backend/m2"],
                     ["kube-apiserver-backend"])
    assert ok == (0, "ok")
    code, out = gate_output(state, stats_socket, ["kube-apiserver-backend/m3", "ingress-backend/w1"],
                            ["ingress-backend"])
    assert code == 1
    assert out.split() == ["backend-kube-apiserver-backend/m3:missing",
                           "backend-ingress-backend:no-server-passes-its-check"]


def test_every_script_gets_every_variable_it_reads() -> None:
    """Under `set -u` a missing variable aborts the script: each builder must pass all the file reads."""
    import re

    lib = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", source("lib.sh")))
    files = {"facts": "facts.sh", "gate": "gate.sh", "units_gate": "units_gate.sh", "vip_check": "vip_check.sh",
             "listening": "listening.sh", "lock": "lock.sh", "vip_moved": "vip_moved.sh", "stop": "stop.sh",
             "batch": "batch.sh", "read_configs": "read_configs.sh", "server_states": "server_states.sh"}
    assert set(files.values()) | {"lib.sh"} == set(names())
    for name, script in composed().items():
        assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", script, flags=re.M))
        read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", source(files[name]))) | lib
        assert read - assigned - {"PATH", "LC_ALL", "PPID"} == set(), name


HOSTILE_NAMES = ["\n@@vip\nens192", "\n@@id\n0", "\n@@release /", "haproxy"]

LISTENER = """
import ctypes, socket, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME: what ss -p prints
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_process_names_cannot_forge_facts(tmp_path: Path) -> None:
    """Processes named to open sections of their own (or to pass for haproxy) listen on this
    machine's loopback while the real facts script runs: no section opens, nothing crashes, and
    each port's program is what /proc says it runs."""
    procs = [subprocess.Popen([sys.executable, "-c", LISTENER, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for name in HOSTILE_NAMES]
    try:
        ports = [int(p.stdout.readline()) for p in procs if p.stdout is not None]
        seen = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=False).stdout
        assert "@@vip" in seen  # ss prints the hostile names raw: the script must not trust them
        script = compose("facts.sh", FACTS_VERSION="1", IFACE="lo", VIP_IP="127.0.0.3", EXTRA_VIPS=[], FILES=[],
                         CA_DIR=str(tmp_path / "ca"), UNITS=["hakeep-test-no-such-unit"],
                         STATE_FILE=str(tmp_path / "absent"), STATS_SOCKET=str(tmp_path / "absent"),
                         LOCK_OWNER=str(tmp_path / "absent"), RELEASES=str(tmp_path / "absent"), PROBE_VIP="0",
                         HAPROXY_CONFIG=str(tmp_path / "absent"), VRRP_UNIT="hakeep-test-no-such-unit",
                         KA_DATA=str(tmp_path / "absent"), PACKAGES=["sh"])
        done = run_script(script, stdin="feedc0de\n")
        assert done.returncode == 0, done.stderr
        f = parse_facts("local", done.stdout, "feedc0de")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert f.vip_on == ()
    assert f.uid == os.getuid()
    assert f.releases == {}
    python = os.path.realpath(sys.executable)
    held = {li.port: li.process for li in f.listeners}
    program = python.rsplit("/", 1)[-1] if python.startswith("/usr/") else python
    for name, port in zip(HOSTILE_NAMES, ports, strict=True):
        # the program /proc shows, never the name (a name's newlines split ss's line: joined back)
        assert held[port] == program, (name, held)
    assert "haproxy" not in held.values()


def test_the_facts_script_refuses_a_missing_or_odd_marker() -> None:
    script = compose("facts.sh", FACTS_VERSION="1", IFACE="lo", VIP_IP="127.0.0.3", EXTRA_VIPS=[], FILES=[],
                     CA_DIR="/nonexistent",
                     UNITS=[], STATE_FILE="/nonexistent", STATS_SOCKET="/nonexistent", LOCK_OWNER="/nonexistent",
                     RELEASES="/nonexistent", PROBE_VIP="0", HAPROXY_CONFIG="/nonexistent", VRRP_UNIT="x",
                     KA_DATA="/nonexistent", PACKAGES=[])
    for stdin in ("", "\n", "not hex\n"):
        done = run_script(script, stdin=stdin)
        assert (done.returncode, done.stdout) == (90, ""), stdin


def test_the_lock_holder_lets_go_without_heartbeats_and_stops_the_sessions_commands(tmp_path: Path) -> None:
    """The network dies without closing the connection: no heartbeat comes, no EOF either. The
    holder stops this session's command still running (not another session's), then the lock is free."""
    from hakeep.hosts.remote import LOCK_ACQUIRED, bounded

    steps, lock = tmp_path / "steps", tmp_path / "hakeep.lock"
    flags = {name: tmp_path / name for name in ("ours", "theirs")}
    runs = {name: subprocess.Popen(["sh", "-c", bounded(f"sleep 6; touch {flags[name]}", 60, token, str(steps))])
            for name, token in (("ours", "0123abcd" + "9" * 16), ("theirs", "fedcba98" + "9" * 16))}
    holder = subprocess.Popen(["sh", "-c", lock_script(str(lock), "test", session="0123abcd", steps_dir=str(steps),
                                                       heartbeat=1)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == LOCK_ACQUIRED
        for _ in range(3):  # heartbeats keep it
            holder.stdin.write(".")
            holder.stdin.flush()
            time.sleep(0.5)
        assert holder.poll() is None
        start = time.monotonic()
        assert holder.wait(10) == 0  # then silence: it lets go after 1 s (and the stop)
        assert time.monotonic() - start < 6
        assert subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0
        assert runs["ours"].wait(5) != 0  # stopped
        assert runs["theirs"].poll() is None  # another session's command runs on
        assert [p.name for p in steps.iterdir()] == ["fedcba98" + "9" * 16]  # nothing of ours is left
    finally:
        holder.kill()
        for p in runs.values():
            p.kill()
    time.sleep(6)
    assert not flags["ours"].exists()


def test_a_stop_that_comes_before_the_command_starts_keeps_it_from_starting(tmp_path: Path) -> None:
    from hakeep.hosts.remote import bounded

    steps, flag, token = tmp_path / "steps", tmp_path / "ran", "0123abcd" + "7" * 16
    steps.mkdir()
    stop = run_script(stop_script([token], steps_dir=str(steps)))  # hakeep gave up before the host started it
    assert stop.returncode == 0, stop.stderr
    late = run_script(bounded(f"touch {flag}", 30, token, str(steps)))
    assert late.returncode == 143
    assert not flag.exists()
    assert list(steps.iterdir()) == []  # its files gone with it
    # a script that ends with 124 itself is not a deadline
    own = run_script(bounded("exit 124", 30, "0123abcd" + "6" * 16, str(steps)))
    assert (own.returncode, own.stderr) == (124, "")


def test_an_unlock_with_nothing_running_leaves_nothing_behind(tmp_path: Path) -> None:
    steps, lock = tmp_path / "steps", tmp_path / "hakeep.lock"
    steps.mkdir()
    done = subprocess.run(["sh", "-c", lock_script(str(lock), "test", session="0123abcd", steps_dir=str(steps))],
                          input="", capture_output=True, text=True, timeout=30, check=False)  # EOF: unlock
    assert done.returncode == 0, done.stderr
    assert list(steps.iterdir()) == []


def _apt_host(tmp_path: Path, *, install_fails_until_update: bool = False) -> tuple[Path, Path]:
    """Fake dpkg and apt-get that log their calls (an install fails before any update when asked)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "dpkg").write_text(f'#!/bin/sh\necho "dpkg $*" >> {log}\n')
    fail = (f'[ "$1" = install ] && ! grep -q "^apt-get update" {log} && exit 100\n'
            if install_fails_until_update else "")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $1" >> {log}\n{fail}exit 0\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir, log


def _run_install(bin_dir: Path, stamp: Path) -> subprocess.CompletedProcess[str]:
    script = commands.install("apt-get", ["haproxy", "keepalived"], apt_stamp=str(stamp))
    script = script.replace("PATH=", f"PATH={bin_dir}:", 1)
    return subprocess.run(["/bin/sh", "-c", script], check=False, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("age", "fails", "expected"), [
    (None, False, ["update", "install"]),  # never refreshed (a fresh host): refresh
    (7200, False, ["update", "install"]),  # two hours old: refresh
    (60, False, ["install"]),  # a minute old: no refresh
    (60, True, ["install", "update", "install"]),  # fresh, but the package is not in it yet: refresh, again
])
def test_apt_refreshes_its_index_only_when_stale(tmp_path: Path, age: int | None, fails: bool,
                                                 expected: list[str]) -> None:
    bin_dir, log = _apt_host(tmp_path, install_fails_until_update=fails)
    stamp = tmp_path / "periodic" / "update-success-stamp"
    if age is not None:
        stamp.parent.mkdir()
        stamp.touch()
        os.utime(stamp, (time.time() - age, time.time() - age))
    r = _run_install(bin_dir, stamp)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "dpkg --configure -a"
    assert [c.split()[1] for c in calls[1:]] == expected
    assert stamp.is_file()
    assert (time.time() - stamp.stat().st_mtime < 30) == ("update" in expected)  # a refresh is noted


def test_a_failed_refresh_fails_the_install_and_leaves_the_stamp(tmp_path: Path) -> None:
    bin_dir, log = _apt_host(tmp_path)
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $1" >> {log}\n[ "$1" = update ] && exit 100\nexit 0\n')
    stamp = tmp_path / "periodic" / "update-success-stamp"
    r = _run_install(bin_dir, stamp)
    assert r.returncode != 0
    assert [c.split()[1] for c in log.read_text().splitlines()[1:]] == ["update"]
    assert not stamp.exists()


def test_read_configs_prints_each_file_a_glob_names_and_the_addresses(tmp_path: Path) -> None:
    """hakeep import's reader, run here by sh: files (a glob expanded, a missing one skipped) and
    the host's IPv4 addresses come back as parse_read reads them, bytes intact."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "main.conf").write_text("include conf.d/*.conf\n")
    (tmp_path / "conf.d" / "b.conf").write_text("vrrp_instance X {\n  # \u00e9 \"q\"\n}\n")
    (tmp_path / "conf.d" / "a.conf").write_text("")
    script = commands.read_configs([str(tmp_path / "main.conf"), str(tmp_path / "conf.d" / "*.conf"),
                                    str(tmp_path / "missing.cfg")])
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    files, addresses = commands.parse_read(done.stdout)
    assert files == [(str(tmp_path / "main.conf"), "include conf.d/*.conf\n"),
                     (str(tmp_path / "conf.d" / "a.conf"), ""),
                     (str(tmp_path / "conf.d" / "b.conf"), "vrrp_instance X {\n  # \u00e9 \"q\"\n}\n")]
    assert ("lo", "127.0.0.1/8") in addresses
