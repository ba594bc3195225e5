"""Smoke tests of the test lab itself (tests/lab/README.md): run with `pytest -m lab`, as root.

Every check waits for convergence with a bound, never a fixed sleep.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import LAB_RUN, Lab, lab_hosts

pytestmark = pytest.mark.lab

HOSTS = list(lab_hosts())
VIP_ADDR = "10.77.0.200"


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until pred() is true, or None after `timeout` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


def apt_install(lab: Lab, host: str, *pkgs: str) -> str:
    r = lab.ssh(host, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                + " ".join(pkgs), timeout=300)
    return r.stdout


# ---------------------------------------------------------------- ssh, sudo, systemd
@pytest.mark.parametrize("host", HOSTS)
def test_root_key_login(lab: Lab, host: str) -> None:
    r = lab.ssh(host, "echo $(hostname) $(id -un)")
    assert r.stdout.split() == [host, "root"]
    # the Host patterns match the address too (what hakeep uses from the inventory)
    r = lab.ssh(lab.hosts[host], "hostname")
    assert r.stdout.strip() == host


@pytest.mark.parametrize("host", HOSTS)
def test_ops_sudo_needs_password(lab: Lab, host: str) -> None:
    r = lab.ssh(host, "sudo -n true", user="ops", check=False)
    assert r.returncode != 0, "sudo without a password must be refused"
    assert "password" in r.stderr
    r = lab.ssh(host, "sudo -S -p '' id -u", user="ops", input=lab.ops_password + "\n")
    assert r.stdout.strip() == "0"
    r = lab.ssh(host, "sudo -S -p '' id -u", user="ops", input="wrong-password\n", check=False)
    assert r.returncode != 0


@pytest.mark.parametrize("host", HOSTS)
def test_systemd_running(lab: Lab, host: str) -> None:
    r = lab.ssh(host, "timeout 60 systemctl is-system-running --wait", check=False, timeout=90)
    state = r.stdout.strip()
    if state != "running":
        failed = lab.ssh(host, "systemctl --failed --no-legend --plain", check=False).stdout
        pytest.fail(f"{host}: systemd is {state!r}; failed units:\n{failed}")


# ---------------------------------------------------------------- isolation
def test_lab_is_isolated(lab: Lab) -> None:
    # the machine's own namespace: a blackhole for the lab subnet, no lab address or interface
    route = subprocess.run(["ip", "route", "show", "10.77.0.0/24"], capture_output=True, text=True, check=True)
    assert "blackhole" in route.stdout
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "10.77.0." not in addrs
    # the control namespace and the hosts have no way out
    assert "default" not in lab.ctl(["ip", "route"]).stdout
    for host in HOSTS:
        r = lab.ssh(host, "ip route; ip route get 192.0.2.1", check=False)
        assert "default" not in r.stdout
        assert r.returncode != 0
        assert "unreachable" in r.stderr


# ---------------------------------------------------------------- packages and reset
def test_apt_install_from_in_lab_mirror_then_reset(lab: Lab) -> None:
    lb = list(lab.lbs)[-1]
    out = apt_install(lab, lb, "haproxy", "keepalived")
    assert "http://10.77.0.2:8080" in out
    lab.ssh(lb, "haproxy -v && keepalived --version && systemctl is-active haproxy")
    known_hosts = lab.known_hosts.read_bytes()

    t0 = time.monotonic()
    lab.reset(lb)
    took = time.monotonic() - t0
    assert took < 60, f"reset took {took:.1f}s"

    # same host key: this login passes StrictHostKeyChecking with the known_hosts written at `up`
    r = lab.ssh(lb, "command -v haproxy keepalived; dpkg-query -W haproxy keepalived", check=False)
    assert r.returncode != 0
    assert "haproxy" not in r.stdout
    assert "keepalived" not in r.stdout
    assert lab.known_hosts.read_bytes() == known_hosts


def test_reset_new_host_key_is_refused(lab: Lab) -> None:
    host = "m3"
    lab.reset(host, new_host_key=True)
    r = lab.ssh(host, "true", check=False)
    assert r.returncode == 255
    assert "Host key verification failed" in r.stderr
    lab.trust()
    lab.ssh(host, "true")
    assert lab.http_get(f"https://{lab.masters[host]}:6443/readyz") == (200, f"{host}\n")


# ---------------------------------------------------------------- masters
def test_masters_answer_over_tls_verified_with_the_lab_ca(lab: Lab) -> None:
    assert lab.ca_file.is_file()
    def ready(addr: str) -> bool:
        return lab.http_get(f"https://{addr}:6443/readyz")[0] == 200

    for name, addr in lab.masters.items():
        assert wait_for(lambda: ready(addr), 30) is not None  # noqa: B023 - called right away
        for path in ("/readyz", "/healthz"):
            assert lab.http_get(f"https://{addr}:6443{path}") == (200, f"{name}\n")
        assert lab.http_get(f"http://{addr}:30080/") == (200, f"{name}\n")
    # the same check with curl, as an operator would run it
    r = lab.ctl(["curl", "-sS", "--max-time", "5", "--cacert", str(lab.ca_file), "https://10.77.0.11:6443/readyz"])
    assert r.stdout == "m1\n"


def test_master_unhealthy_then_stopped(lab: Lab) -> None:
    url = f"https://{lab.masters['m2']}:6443"
    try:
        lab.master("m2", "unhealthy")
        assert lab.http_get(url + "/readyz") == (500, "m2 unhealthy\n")
        assert lab.http_get(url + "/healthz")[0] == 500
        lab.master("m2", "healthy")
        assert lab.http_get(url + "/readyz") == (200, "m2\n")
        lab.master("m2", "stop")
        status, err = lab.http_get(url + "/readyz")
        assert status == 0, err
        assert "refused" in err.lower()
        lab.master("m2", "start")
        assert lab.http_get(url + "/readyz") == (200, "m2\n")
    finally:
        lab.master("m2", "healthy")
        lab.master("m2", "start")


# ---------------------------------------------------------------- VRRP
KEEPALIVED_CONF = """\
global_defs {{
    router_id {name}
    enable_script_security
}}
vrrp_instance HKLAB {{
    state BACKUP
    interface eth0
    virtual_router_id 77
    priority {prio}
    advert_int 1
    unicast_src_ip {addr}
    unicast_peer {{
        {peer}
    }}
    authentication {{
        auth_type PASS
        auth_pass hklab77
    }}
    virtual_ipaddress {{
        {vip} dev eth0
    }}
}}
"""

RECV_VRRP = """\
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.settimeout(1)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        data, (src, _) = s.recvfrom(2048)
    except TimeoutError:
        continue
    if src == sys.argv[1]:
        ihl = (data[0] & 15) * 4
        print(src, "vrid", data[ihl + 1], "prio", data[ihl + 2])
        sys.exit(0)
sys.exit(1)
"""


def test_vrrp_between_lbs(lab: Lab) -> None:
    if len(lab.lbs) < 2:
        pytest.skip("needs LAB_LBS >= 2")
    (a, a_ip), (b, b_ip) = list(lab.lbs.items())[:2]
    try:
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda h: apt_install(lab, h, "keepalived"), (a, b)))
        for name, addr, peer, prio in ((a, a_ip, b_ip, 150), (b, b_ip, a_ip, 100)):
            conf = KEEPALIVED_CONF.format(name=name, addr=addr, peer=peer, prio=prio, vip=lab.vip)
            lab.ssh(name, "cat > /etc/keepalived/keepalived.conf && keepalived --config-test "
                    "&& systemctl restart keepalived", input=conf)

        # VRRP (IP protocol 112) from a reaches b
        r = lab.ssh(b, ["python3", "-c", RECV_VRRP, a_ip], timeout=30)
        assert r.stdout.split()[1:4] == ["vrid", "77", "prio"], r.stdout

        def holders() -> list[str]:
            return [h for h in (a, b) if f"{VIP_ADDR}/" in lab.ssh(h, "ip -4 -o addr show dev eth0").stdout]

        assert wait_for(lambda: holders() == [a], 20) is not None, f"VIP holders: {holders()}"
        # stable: more than keepalived's master-down interval (3 x advert_int + skew) with exactly one holder
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.5:
            assert holders() == [a]
        # the VIP answers from the control namespace
        lab.ctl(["/usr/bin/python3", str(lab.dir / "relay.py"), "--wait-ssh", "10", VIP_ADDR])

        # failover: the peer takes the VIP, bounded
        lab.ssh(a, "systemctl stop keepalived")
        took = wait_for(lambda: holders() == [b], 15, interval=0.1)
        assert took is not None, f"VIP holders after stopping keepalived on {a}: {holders()}"
        print(f"failover {a} -> {b}: VIP on {b} {took:.2f}s after the stop")
    finally:
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lab.reset, (a, b)))


# ---------------------------------------------------------------- down (runs last)
def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_rooted_in(top: Path) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "root").startswith(str(top)):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


@pytest.mark.lab_teardown
def test_down_leaves_nothing_behind(lab: Lab) -> None:
    pids = lab.pids()
    t0 = time.monotonic()
    lab.down()
    print(f"down took {time.monotonic() - t0:.1f}s")

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "hklab" not in netns
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert "hklab" not in mountinfo
    assert str(LAB_RUN) not in mountinfo
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True, check=True)
    assert "10.77.0." not in routes.stdout
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert _processes_rooted_in(LAB_RUN) == []
    assert [str(p) for p in Path("/sys/fs/cgroup").glob("*/hklab")] == []
    assert not Path("/sys/fs/cgroup/hklab").exists()
    assert not LAB_RUN.exists()
    assert [p for p in Path("/run/systemd/nspawn").glob("*/*") if p.name in lab.hosts] == []
    status = subprocess.run([str(lab.dir / "lab"), "status"], capture_output=True, text=True, check=False)
    assert status.returncode == 3, status.stdout

    if not lab.started_here:  # somebody else's lab: leave it running as we found it
        lab.up()
