"""Taking over a pair set up by hand (#17), on the lab: lb1 and lb2 configured exactly as the recipe
(../shared/seed/) does it -- its packages, its two configs with the lab's addresses, its killall
check, the units enabled and started -- then ``hakeep import`` -> ``validate`` -> ``deploy --dry-run``
(the VRRP identity kept: same VRID, password, VIP, priorities, servers) -> ``deploy`` under a client
probe through the VIP (0 failed connections, the VIP never on two LBs) -> ``rollback``, which puts
the hand-made files back byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeep.takeover import haproxy_cfg, keepalived_conf
from tests.conftest import Lab
from tests.test_deploy_lab import VIP, hakeep, holders, under_probe
from tests.test_lab_smoke import wait_for
from tests.test_members_lab import HolderSampler

pytestmark = pytest.mark.lab

RECIPE = Path(__file__).resolve().parent / "data" / "takeover" / "recipe"
FILES = ("/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf")
LAB_ADDRESSES = {"10.220.62.32": "10.77.0.101", "10.220.62.33": "10.77.0.102", "10.220.62.31": VIP,
                 "10.220.62.21": "10.77.0.11", "10.220.62.22": "10.77.0.12", "10.220.62.23": "10.77.0.13",
                 "ens192": "eth0"}
LIVE_PASSWORD = "1111"  # the recipe's


def on_the_lab(text: str) -> str:
    for recipe, lab in LAB_ADDRESSES.items():
        text = text.replace(recipe, lab)
    return text


def hand_made(lab: Lab) -> dict[str, str]:
    """lb1 and lb2 set up as the recipe says (Debian's packages start haproxy at install: restart, so
    the units run the files written by hand, as `enable --now` does on the recipe's RHEL)."""
    sums = {}
    for host, side in (("lb1", "left"), ("lb2", "right")):
        lab.reset(host)
        lab.ssh(host, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy keepalived "
                      "psmisc >/dev/null", timeout=300)
        haproxy = on_the_lab((RECIPE / "haproxy.cfg").read_text())
        keepalived = on_the_lab((RECIPE / f"keepalived-{side}.conf").read_text())
        lab.ssh(host, "mv /etc/haproxy/haproxy.cfg /etc/haproxy/haproxy.cfg.bak; cat > /etc/haproxy/haproxy.cfg",
                input=haproxy)
        lab.ssh(host, "mv /etc/keepalived/keepalived.conf /etc/keepalived/keepalived.conf.bak 2>/dev/null; "
                      "cat > /etc/keepalived/keepalived.conf", input=keepalived)
        lab.ssh(host, "systemctl enable haproxy keepalived 2>/dev/null; systemctl restart haproxy keepalived")
        sums[host] = lab.ssh(host, "sha256sum " + " ".join(FILES)).stdout
    assert wait_for(lambda: len(holders(lab)) == 1, 30, 0.5), holders(lab)
    return sums


@pytest.fixture(scope="module")
def pair(lab: Lab) -> Iterator[tuple[Lab, dict[str, str]]]:
    yield lab, hand_made(lab)
    for host in lab.lbs:
        lab.reset(host)


def no_password_env(lab: Lab) -> dict[str, str]:
    return {k: v for k, v in lab.env().items() if k != "HAKEEP_VRRP_PASS"}


def test_import_deploy_and_rollback_of_a_hand_made_pair(pair: tuple[Lab, dict[str, str]], tmp_path: Path) -> None:
    lab, sums = pair
    out = tmp_path / "imported.toml"
    r = subprocess.run([sys.executable, "-m", "hakeep", "import", "--lb", "lb1=10.77.0.101", "--lb", "lb2=10.77.0.102",
                        "--ssh-config", str(lab.ssh_config), "--user", "root", "-o", str(out)],
                       capture_output=True, text=True, env=no_password_env(lab), timeout=300, check=False)
    assert r.returncode == 3, r.stdout + r.stderr  # written; the first deploy would change the files
    text = out.read_text()
    assert LIVE_PASSWORD not in text + r.stdout + r.stderr  # the live password is used, never written or shown
    doc = tomllib.loads(text)
    assert doc["cluster"] == {"name": "haproxy", "vip": f"{VIP}/24", "virtual_router_id": 60, "advert_int": 1,
                              "auth_pass_env": "HAKEEP_VRRP_PASS"}
    assert [(lb["name"], lb["address"], lb["interface"], lb["priority"]) for lb in doc["lb"]] == [
        ("lb1", "10.77.0.101", "eth0", 100), ("lb2", "10.77.0.102", "eth0", 100)]
    assert [(fe["name"], fe["port"], [s["address"] for s in fe["servers"]]) for fe in doc["frontend"]] == [
        ("kube-apiserver", 6443, ["10.77.0.11", "10.77.0.12", "10.77.0.13"]),
        ("in-ingress-nginx-30080", 30080, ["10.77.0.11", "10.77.0.12", "10.77.0.13"])]
    assert doc["ssh"]["config"] == os.path.relpath(lab.ssh_config, tmp_path)  # works from where it is written
    assert "lb1, lb2: /etc/keepalived/keepalived.conf:17: state" in text  # documented: hakeep's BACKUP
    assert "The LBs disagree" not in text  # the recipe's two files differ only per host
    assert "what `hakeep deploy" in r.stdout
    env = {**lab.env(), "HAKEEP_VRRP_PASS": LIVE_PASSWORD}
    r = hakeep(lab, "validate", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # the dry-run keeps the pair's VRRP identity: what keepalived and haproxy would run is the pair's
    r = hakeep(lab, "render", str(out), "-o", str(tmp_path / "rendered"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for host in ("lb1", "lb2"):
        live = keepalived_conf.parse(lab.ssh(host, f"cat {FILES[1]}").stdout, FILES[1])
        new = keepalived_conf.parse((tmp_path / "rendered" / host / FILES[1].lstrip("/")).read_text(), FILES[1])
        for node in (live, new):
            inst = node.all("vrrp_instance")[0]
            got = (inst.last("virtual_router_id").args, inst.last("priority").args,  # type: ignore[union-attr]
                   [c.keyword for c in inst.last("virtual_ipaddress").children or ()],  # type: ignore[union-attr]
                   inst.last("authentication").last("auth_pass").args,  # type: ignore[union-attr]
                   sorted(c.keyword for c in inst.last("unicast_peer").children or ()))  # type: ignore[union-attr]
            if node is live:
                want = got
        assert got == want, (host, got, want)
        servers = [[s.args[:2] for s in sec.all("server")] for sec in haproxy_cfg.parse(
            (tmp_path / "rendered" / host / FILES[0].lstrip("/")).read_text(), FILES[0]) if sec.kind == "backend"]
        assert servers == [[(f"devops-master-0{i}", f"10.77.0.1{i}:{port}") for i in (1, 2, 3)]
                           for port in (6443, 30080)]
    # the takeover: rolling, the VIP holder last; a client through the VIP sees nothing
    first = holders(lab)
    with HolderSampler(["lb1", "lb2"]) as sampler:
        r = under_probe(lab, "deploy", str(out), "--yes", env=env)
    print(f"takeover: {len(sampler.samples)} samples of the VIP's holders: "
          f"{[s for i, s in enumerate(sampler.samples) if i == 0 or s != sampler.samples[i - 1]]}")
    assert max(len(s) for s in sampler.samples) == 1, [s for s in sampler.samples if len(s) != 1]
    assert holders(lab) == first  # the holder kept the VIP
    for host in ("lb1", "lb2"):
        assert "Managed by hakeep" in lab.ssh(host, f"cat {FILES[1]}").stdout
    assert hakeep(lab, "status", str(out), env=env).returncode == 0
    # and back: the hand-made files, byte for byte, the pair serving again
    r = hakeep(lab, "rollback", str(out), "--yes", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for host in ("lb1", "lb2"):
        assert lab.ssh(host, "sha256sum " + " ".join(FILES)).stdout == sums[host]
        assert lab.ssh(host, "systemctl is-active haproxy keepalived").stdout.split() == ["active", "active"]
    assert wait_for(lambda: len(holders(lab)) == 1, 30, 0.5)


def test_import_refuses_a_config_it_cannot_read(pair: tuple[Lab, dict[str, str]], tmp_path: Path) -> None:
    lab, _ = pair
    before = lab.ssh("lb2", f"cat {FILES[1]}").stdout
    try:
        lab.ssh("lb2", f"printf 'vrrp_script broken {{\\n  script \"killall -0 haproxy\\n}}\\n' >> {FILES[1]}")
        r = subprocess.run([sys.executable, "-m", "hakeep", "import", "--lb", "lb1=10.77.0.101", "--lb",
                            "lb2=10.77.0.102", "--ssh-config", str(lab.ssh_config), "-o", str(tmp_path / "x.toml")],
                           capture_output=True, text=True, env=no_password_env(lab), timeout=300, check=False)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"lb2:{FILES[1]}:" in r.stderr
        assert "a double quote is not closed" in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "x.toml").exists()
    finally:
        lab.ssh("lb2", f"cat > {FILES[1]}", input=before)
