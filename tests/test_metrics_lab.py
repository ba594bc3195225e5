"""Metrics on the lab (issue #18, part 4): haproxy's exporter answers a scraper on every LB, and the
VRRP state files for node-exporter follow the VIP (keepalived stopped, crashed, back), read with the
Prometheus client library's parser. A haproxy built without the exporter is refused by preflight
with nothing changed; turning the files off removes them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Lab
from tests.test_deploy_lab import hakeep, holders, lab_doc, snapshot, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab

TEXTFILES = "/var/lib/prometheus/node-exporter"
PROM = f"{TEXTFILES}/hakeep_vrrp_hklab-vip.prom"
SCRAPE = """
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
"""


def metrics_doc(lab: Lab) -> dict[str, Any]:
    doc = lab_doc(lab)
    doc.setdefault("haproxy", {})["prometheus"] = {"bind": "*", "port": 8405}
    doc["keepalived"] = {"prometheus": {"textfile_dir": TEXTFILES}}
    return doc


def scrape(url: str, lab: Lab) -> tuple[int, str]:
    """GET url from the lab's control namespace (where a Prometheus server would be)."""
    r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-c", SCRAPE, url],
                       capture_output=True, text=True, timeout=30, check=True, env=lab.env())
    status, _, body = r.stdout.partition("\n")
    return int(status), body


def vrrp(lab: Lab, lb: str) -> dict[str, float]:
    """The state file on one LB: state -> 0/1, plus "priority" and "since"."""
    r = lab.ssh(lb, f"cat {PROM}", check=False)
    if r.returncode != 0:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.stdout):
        for s in family.samples:
            assert (s.labels["cluster"], s.labels["lb"], s.labels["vrrp_instance"]) == ("hklab", lb, "hklab-vip")
            key = {"hakeep_vrrp_state": s.labels.get("state", ""), "hakeep_vrrp_priority": "priority",
                   "hakeep_vrrp_state_change_timestamp_seconds": "since"}[s.name]
            out[key] = s.value
    return out


def state(lab: Lab, lb: str) -> str:
    got = vrrp(lab, lb)
    on = [s for s in ("MASTER", "BACKUP", "FAULT", "STOP") if got.get(s) == 1.0]
    return on[0] if len(on) == 1 else f"? {got}"


def test_metrics_answer_and_follow_the_vip(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, metrics_doc(lab))
    try:
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None

        for lb, address in (("lb1", "10.77.0.101"), ("lb2", "10.77.0.102")):
            status, body = scrape(f"http://{address}:8405/metrics", lab)
            assert status == 200
            servers = {(s.labels["proxy"], s.labels["server"]): s.value
                       for f in text_string_to_metric_families(body) if f.name == "haproxy_server_check_status"
                       for s in f.samples}
            assert {srv for proxy, srv in servers if proxy == "be_kube-apiserver"} == {"m1", "m2", "m3"}, lb
            up = {s.labels["proxy"]: s.value for f in text_string_to_metric_families(body)
                  if f.name == "haproxy_backend_active_servers" for s in f.samples}
            assert up["be_kube-apiserver"] == 3.0, lb
            assert scrape(f"http://{address}:8405/other", lab)[0] == 404

        # metrics turned on by a reload: the files are there before any state change
        assert (state(lab, "lb1"), state(lab, "lb2")) == ("MASTER", "BACKUP")
        assert vrrp(lab, "lb1")["priority"] == 101.0
        since = vrrp(lab, "lb1")["since"]
        assert since <= time.time()

        lab.ssh("lb1", "systemctl stop keepalived")
        assert wait_for(lambda: (state(lab, "lb1"), state(lab, "lb2")) == ("STOP", "MASTER"), 15, 0.2) is not None
        lab.ssh("lb1", "systemctl start keepalived")
        assert wait_for(lambda: (state(lab, "lb1"), state(lab, "lb2")) == ("MASTER", "BACKUP"), 20, 0.2) is not None
        assert vrrp(lab, "lb1")["since"] > since

        # a crash writes nothing itself: the unit's ExecStopPost says STOP, systemd brings it back
        lab.ssh("lb1", "kill -9 $(systemctl show -p MainPID --value keepalived)")
        seen = wait_for(lambda: state(lab, "lb1") == "STOP", 5, 0.1)
        assert seen is not None, vrrp(lab, "lb1")
        assert wait_for(lambda: (state(lab, "lb1"), state(lab, "lb2")) == ("MASTER", "BACKUP"), 30, 0.2) is not None

        # turned off: the next deploy removes the files, which would otherwise report a frozen state
        r = hakeep(lab, "deploy", write_inventory(tmp_path, lab_doc(lab), "plain.toml").as_posix(), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "remove the VRRP metrics files from /var/lib/prometheus/node-exporter" in r.stdout
        for lb in ("lb1", "lb2"):
            assert lab.ssh(lb, f"ls {TEXTFILES}").stdout.strip() == ""
    finally:
        r = hakeep(lab, "deploy", write_inventory(tmp_path, lab_doc(lab), "plain.toml").as_posix(), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None


def test_preflight_refuses_a_haproxy_built_without_the_exporter(lab: Lab, tmp_path: Path) -> None:
    """lb2's haproxy -vv lists no exporter (a wrapper hides it, as a build without USE_PROMEX prints)."""
    wrapper = ("#!/bin/sh\nif [ \"$1\" = -vv ]; then /usr/sbin/haproxy.real -vv | "
               "sed 's/^Available services : .*/Available services : none/'; exit 0; fi\n"
               "exec /usr/sbin/haproxy.real \"$@\"\n")
    lab.ssh("lb2", "mv /usr/sbin/haproxy /usr/sbin/haproxy.real && cat > /usr/sbin/haproxy && "
            "chmod 755 /usr/sbin/haproxy", input=wrapper)
    try:
        before = snapshot(lab)
        r = hakeep(lab, "deploy", str(write_inventory(tmp_path, metrics_doc(lab))), "--yes")
        assert r.returncode == 4, r.stdout + r.stderr
        assert "error: preflight failed; no host was changed" in r.stderr
        assert re.search(r"lb2: haproxy 2\.\S+ was built without its Prometheus exporter \(haproxy -vv lists no "
                         r"prometheus-exporter service\): remove \[haproxy\.prometheus\]", r.stdout), r.stdout
        assert "lb1: haproxy" not in r.stdout
        assert "Traceback" not in r.stderr
        assert snapshot(lab) == before  # nothing changed on either LB
    finally:
        lab.ssh("lb2", "mv /usr/sbin/haproxy.real /usr/sbin/haproxy")
