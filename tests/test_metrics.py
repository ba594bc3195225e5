"""Metrics (issue #18, part 4): haproxy's Prometheus exporter and keepalived's VRRP state for
node-exporter's textfile collector.

The notify script runs here for real (sh, into a temporary folder) and its file is read with the
Prometheus client library's own text-format parser; the inventory keys, the preflight on a haproxy
built without the exporter, the firewalld and clash checks and the clean-up of a folder no longer
written are tested at their functions. That haproxy and keepalived accept the files is
tests/test_binaries.py's; that the exporter answers and the files follow the VRIP is
tests/test_metrics_lab.py's.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hakeep.errors import InventoryError
from hakeep.hosts.facts import FileFact, HostFacts
from hakeep.hosts.versions import parse_services
from hakeep.inventory.model import Inventory
from hakeep.layout import KEEPALIVED, NOTIFY_SCRIPT, VRRP_STATE_FILE
from hakeep.plan import platform
from hakeep.plan.planner import preflight
from hakeep.plan.targets import host_settings, live_textfile_dir, restored_ports
from hakeep.render.engine import render_all
from hakeep.render.files import HostFiles, Secrets
from tests.fakes import facts as host_facts
from tests.fakes import listening
from tests.fixtures import base_doc, load
from tests.test_scripts import SHELLCHECK, needs_shellcheck


def make_facts(name: str, **overrides: Any) -> HostFacts:
    address = {"loadbalance-left": "10.220.62.32", "loadbalance-right": "10.220.62.33"}[name]
    return host_facts(name, address, **overrides)


def metrics_doc(textfile_dir: str = "/var/lib/prometheus/node-exporter") -> dict[str, Any]:
    doc = base_doc()
    doc["haproxy"] = {"prometheus": {}}
    doc["keepalived"] = {"prometheus": {"textfile_dir": textfile_dir}}
    return doc


def host(inv: Inventory) -> HostFiles:
    return next(iter(render_all(inv, Secrets(auth_pass="x")).values()))


def text(h: HostFiles, path: str) -> str:
    return h.file(path).content.decode()


def samples(prom: str) -> dict[tuple[str, str], float]:
    """(metric name, state label or "") -> value, through the client library's parser."""
    out = {}
    for family in text_string_to_metric_families(prom):
        for s in family.samples:
            assert s.labels["cluster"] == "devops"
            assert s.labels["lb"] == "loadbalance-left"
            assert s.labels["vrrp_instance"] in ("devops-vip", "devops-api", "devops-ingress")
            out[s.name, s.labels.get("state", "")] = s.value
    return out


def test_defaults_and_what_is_rendered(tmp_path: Path) -> None:
    inv = load(tmp_path, metrics_doc())
    assert inv.haproxy.prometheus is not None
    assert (inv.haproxy.prometheus.bind, inv.haproxy.prometheus.port) == ("*", 8405)
    assert inv.keepalived_metrics is not None
    h = host(inv)
    cfg = text(h, "/etc/haproxy/haproxy.cfg")
    assert ("\nfrontend hakeep-prometheus\n    mode http\n    bind *:8405\n    no log\n    timeout client 30s\n"
            "    http-request use-service prometheus-exporter if { path /metrics }\n"
            "    http-request deny deny_status 404\n") in cfg
    dropin = text(h, KEEPALIVED.dropin)
    assert f"\nExecReload=-{NOTIFY_SCRIPT} HAKEEP devops-vip SYNC 0\nExecReload=/bin/kill -HUP $MAINPID\n" in dropin
    assert f"\nExecStopPost=-{NOTIFY_SCRIPT} HAKEEP devops-vip STOP 0\n" in dropin
    assert 'prom="/var/lib/prometheus/node-exporter/hakeep_vrrp_$2.prom"' in text(h, NOTIFY_SCRIPT)
    # the frontends' ports, as a restore reads them back, leave hakeep's own pages out
    assert restored_ports(h.files) == (6443, 30080)


def test_without_the_tables_nothing_is_rendered(tmp_path: Path) -> None:
    h = host(load(tmp_path, base_doc()))
    assert "prometheus" not in text(h, "/etc/haproxy/haproxy.cfg")
    assert "HAKEEP" not in text(h, KEEPALIVED.dropin)
    assert ".prom" not in text(h, NOTIFY_SCRIPT)


def run_notify(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "notify.sh"
    path.write_text(script)
    return subprocess.run(["sh", str(path), *args], capture_output=True, text=True, check=False, timeout=10)


def test_the_notify_script_writes_a_file_prometheus_parses(tmp_path: Path) -> None:
    textfiles, state = tmp_path / "textfiles", tmp_path / "vrrp-state"
    script = text(host(load(tmp_path, metrics_doc(str(textfiles)))), NOTIFY_SCRIPT)
    script = script.replace(VRRP_STATE_FILE, str(state))  # never this machine's /run/hakeep
    prom = textfiles / "hakeep_vrrp_devops-vip.prom"

    assert run_notify(script, tmp_path, "INSTANCE", "devops-vip", "MASTER", "101").returncode == 0
    assert state.read_text().split()[:2] == ["MASTER", "101"]
    got = samples(prom.read_text())
    assert {k[1]: v for k, v in got.items() if k[0] == "hakeep_vrrp_state"} == {
        "MASTER": 1.0, "BACKUP": 0.0, "FAULT": 0.0, "STOP": 0.0}
    assert got["hakeep_vrrp_priority", ""] == 101.0
    since = got["hakeep_vrrp_state_change_timestamp_seconds", ""]
    assert since == float(state.read_text().split()[2])
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert list(textfiles.iterdir()) == [prom]  # no temporary file left beside it

    # keepalived exited: STOP in the metrics, the state record left alone
    assert run_notify(script, tmp_path, "HAKEEP", "devops-vip", "STOP", "0").returncode == 0
    got = samples(prom.read_text())
    assert got["hakeep_vrrp_state", "STOP"] == 1.0
    assert got["hakeep_vrrp_state", "MASTER"] == 0.0
    assert state.read_text().split()[:2] == ["MASTER", "101"]

    # a reload: the metrics from the record (its own time of change); from the shared record of the
    # first VIP where there is no own one yet (notify scripts before this one wrote only that)
    (tmp_path / "vrrp-state.devops-vip").unlink()
    assert run_notify(script, tmp_path, "HAKEEP", "devops-vip", "SYNC", "0").returncode == 0
    got = samples(prom.read_text())
    assert got["hakeep_vrrp_state", "MASTER"] == 1.0
    assert got["hakeep_vrrp_state_change_timestamp_seconds", ""] == since


def test_the_notify_script_writes_nothing_it_cannot_name(tmp_path: Path) -> None:
    textfiles, state = tmp_path / "textfiles", tmp_path / "vrrp-state"
    script = text(host(load(tmp_path, metrics_doc(str(textfiles)))), NOTIFY_SCRIPT)
    script = script.replace(VRRP_STATE_FILE, str(state))
    assert run_notify(script, tmp_path, "INSTANCE", "../../etc/x", "MASTER", "101").returncode == 0
    assert run_notify(script, tmp_path, "INSTANCE", "vi", "JUNK", "1").returncode == 0
    assert not textfiles.exists() or not list(textfiles.iterdir())
    # a reload before any state was recorded writes nothing either
    for f in tmp_path.glob("vrrp-state*"):
        f.unlink()
    assert run_notify(script, tmp_path, "HAKEEP", "vi", "SYNC", "0").returncode == 0
    assert not textfiles.exists() or not list(textfiles.iterdir())


@needs_shellcheck
def test_the_rendered_scripts_with_metrics_pass_shellcheck(tmp_path: Path) -> None:
    assert SHELLCHECK is not None
    for f in host(load(tmp_path, metrics_doc())).files:
        if f.path.endswith(".sh"):
            done = subprocess.run([SHELLCHECK, "-s", "sh", "-"], input=f.content, capture_output=True, check=False)
            assert done.returncode == 0, f"{f.path}\n{done.stdout.decode()}"


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: d["haproxy"]["prometheus"].update(port=6443), "haproxy.prometheus.port: 6443 is already the port of "
                                                             "frontend[0] (kube-apiserver)"),
    (lambda d: d["haproxy"].update(stats={"port": 8405, "password_env": "S"}),
     "haproxy.prometheus.port: 8405 is already the port of the stats page"),
    (lambda d: d["haproxy"]["prometheus"].update(bind="vip"), "haproxy.prometheus.bind: 'vip'"),
    (lambda d: d["haproxy"]["prometheus"].update(path="/m"), "haproxy.prometheus.path: unknown key"),
    (lambda d: d["keepalived"]["prometheus"].update(textfile_dir="var/lib"), "keepalived.prometheus.textfile_dir"),
    (lambda d: d["keepalived"]["prometheus"].update(textfile_dir="/run/hakeep"),
     "keepalived.prometheus.textfile_dir: '/run/hakeep' is not a folder"),
    (lambda d: d["keepalived"]["prometheus"].update(textfile_dir="/a/../etc"), "is not a folder"),
    (lambda d: d["keepalived"]["prometheus"].update(textfile_dir="/a b"), "keepalived.prometheus.textfile_dir"),
    (lambda d: d["keepalived"].update(vrrp={}), "keepalived.vrrp: unknown key"),
])
def test_bad_metrics_keys_name_the_key(tmp_path: Path, mutate: Any, fragment: str) -> None:
    doc = metrics_doc()
    mutate(doc)
    with pytest.raises(InventoryError) as info:
        load(tmp_path, doc)
    assert fragment in str(info.value)


def test_services_from_haproxy_vv() -> None:
    assert parse_services(["Available services : prometheus-exporter", "Available filters :"]) == (
        "prometheus-exporter",)
    assert parse_services(["Available services : none", "Available filters :"]) == ()
    assert parse_services(["Available services :", "\tprometheus-exporter", "\tother", "Available filters :"]) == (
        "prometheus-exporter", "other")
    assert parse_services([]) is None


def test_preflight_refuses_a_haproxy_without_the_exporter(tmp_path: Path) -> None:
    inv = load(tmp_path, metrics_doc())
    name = inv.lbs[0].name
    ok = make_facts(name, haproxy_services=("prometheus-exporter",))
    assert not [e for e in platform.check(inv, name, ok)[0] if "Prometheus" in e]
    without = dataclasses.replace(ok, haproxy_services=())
    errors = platform.check(inv, name, without)[0]
    assert any(e.startswith(f"{name}: haproxy ") and "was built without its Prometheus exporter (haproxy -vv lists no "
               "prometheus-exporter service): remove [haproxy.prometheus]" in e for e in errors), errors
    unknown = dataclasses.replace(ok, haproxy_services=None)  # -vv said nothing: haproxy -c on the host decides
    assert not [e for e in platform.check(inv, name, unknown)[0] if "Prometheus" in e]
    old = dataclasses.replace(ok, versions={**ok.versions, "haproxy": "1.8.27"}, haproxy_services=None)
    assert any("cannot run [haproxy.prometheus]" in e for e in platform.check(inv, name, old)[0])
    # and the inventory without the exporter does not care
    assert not [e for e in platform.check(load(tmp_path, base_doc()), name, without)[0] if "Prometheus" in e]


def test_the_exporter_port_is_opened_in_firewalld_and_checked_for_clashes(tmp_path: Path) -> None:
    inv = load(tmp_path, metrics_doc())
    name = inv.lbs[0].name
    f = make_facts(name, firewalld="running", firewalld_protocols=("vrrp",))
    [step] = host_settings(inv, f)
    assert "open 6443/tcp, 30080/tcp, 8405/tcp in firewalld" in step.describe
    doc = metrics_doc()
    doc["haproxy"]["prometheus"]["bind"] = "127.0.0.1"
    [step] = host_settings(load(tmp_path, doc), f)
    assert "8405" not in step.describe  # loopback only: nothing to open
    facts = {lb.name: make_facts(lb.name) for lb in inv.lbs}
    facts[name] = make_facts(name, listeners=listening((8405, "node_exporter")))
    errors, _ = preflight(inv, facts, [lb.name for lb in inv.lbs])
    assert f"{name}: port 8405 (the Prometheus exporter) is already held by node_exporter on 0.0.0.0" in errors


def test_a_folder_no_longer_written_is_cleaned(tmp_path: Path) -> None:
    old = text(host(load(tmp_path, metrics_doc("/srv/textfiles"))), NOTIFY_SCRIPT).encode()
    f = make_facts("loadbalance-left", files={NOTIFY_SCRIPT: FileFact(NOTIFY_SCRIPT, True, content=old)})
    assert live_textfile_dir(f) == "/srv/textfiles"
    for doc in (base_doc(), metrics_doc()):  # turned off; moved elsewhere
        [step] = [s for s in host_settings(load(tmp_path, doc), f) if "metrics" in s.describe]
        assert step.describe == "remove the VRRP metrics files from /srv/textfiles (no longer written there)"
        assert "rm -f -- /srv/textfiles/hakeep_vrrp_*.prom" in step.script
    assert not [s for s in host_settings(load(tmp_path, metrics_doc("/srv/textfiles")), f)
                if "metrics" in s.describe]
    plain = make_facts("loadbalance-left", files={NOTIFY_SCRIPT: FileFact(
        NOTIFY_SCRIPT, True, content=text(host(load(tmp_path, base_doc())), NOTIFY_SCRIPT).encode())})
    assert live_textfile_dir(plain) is None


def test_two_instances_keep_their_own_records_and_files(tmp_path: Path) -> None:
    """Each instance's record is its own: a reload writes each VIP's file from its own state."""
    from tests.test_vips import two_vips

    textfiles, state = tmp_path / "textfiles", tmp_path / "vrrp-state"
    doc = two_vips()
    doc["keepalived"] = {"prometheus": {"textfile_dir": str(textfiles)}}
    script = text(host(load(tmp_path, doc)), NOTIFY_SCRIPT).replace(VRRP_STATE_FILE, str(state))
    run_notify(script, tmp_path, "INSTANCE", "devops-api", "MASTER", "101")
    run_notify(script, tmp_path, "INSTANCE", "devops-ingress", "BACKUP", "100")
    assert state.read_text().split()[:2] == ["MASTER", "101"]  # the first VIP's, where status reads it
    assert (tmp_path / "vrrp-state.devops-ingress").read_text().split()[:2] == ["BACKUP", "100"]
    for name in ("devops-api", "devops-ingress"):
        assert run_notify(script, tmp_path, "HAKEEP", name, "SYNC", "0").returncode == 0

    def on(name: str) -> str:
        prom = (textfiles / f"hakeep_vrrp_{name}.prom").read_text()
        return next(s.labels["state"] for f in text_string_to_metric_families(prom) for s in f.samples
                    if s.name == "hakeep_vrrp_state" and s.value == 1.0)

    assert (on("devops-api"), on("devops-ingress")) == ("MASTER", "BACKUP")


def test_metrics_turned_off_and_on_again_follow_the_newer_record(tmp_path: Path) -> None:
    """Meanwhile only the shared record was kept (the script without metrics): a reload takes it, not
    the instance's own record left from before."""
    textfiles, state = tmp_path / "textfiles", tmp_path / "vrrp-state"
    with_metrics = text(host(load(tmp_path, metrics_doc(str(textfiles)))), NOTIFY_SCRIPT)
    without = text(host(load(tmp_path, base_doc())), NOTIFY_SCRIPT)
    with_metrics, without = (t.replace(VRRP_STATE_FILE, str(state)) for t in (with_metrics, without))
    run_notify(with_metrics, tmp_path, "INSTANCE", "devops-vip", "MASTER", "101")
    run_notify(without, tmp_path, "INSTANCE", "devops-vip", "BACKUP", "100")
    assert run_notify(with_metrics, tmp_path, "HAKEEP", "devops-vip", "SYNC", "0").returncode == 0
    got = samples((textfiles / "hakeep_vrrp_devops-vip.prom").read_text())
    assert (got["hakeep_vrrp_state", "BACKUP"], got["hakeep_vrrp_priority", ""]) == (1.0, 100.0)
