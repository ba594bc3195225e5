"""The drill's haproxy and master modes, the HTTP probe, and `status`'s note of a unit systemd
restarted, at the transport seam (the lab proves them for real: tests/test_fastfail_lab.py)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hakeep.cli.main import main
from hakeep.hosts.facts import UnitFact, parse_unit
from hakeep.ops.drill import Mode, run_drill, watch_master
from hakeep.ops.probe import HttpProber, Prober
from hakeep.ops.status import host_status, judge
from tests.fakes import FakeTransport, facts
from tests.fixtures import EXAMPLE

STAT_HEADER = "# pxname,svname,status\n"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    code = 200


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = self.server.code  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    """An HTTP server on loopback that answers every GET with ``server.code``."""
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_http_prober_counts_bad_answers_and_how_long_clients_saw_them(server: Server) -> None:
    prober = HttpProber("127.0.0.1", server.server_address[1], "/readyz", tls=False).start()
    threading.Event().wait(0.3)
    server.code = 500
    threading.Event().wait(0.5)
    server.code = 200
    threading.Event().wait(0.3)
    result = prober.stop()
    assert result.attempts > 10
    assert result.failed == 0
    assert result.errors >= 2
    assert 0 < result.bad_span_s < 2.0  # about 0.5 s; a loaded machine may stretch it
    assert prober.first_bad is not None


def test_http_prober_counts_a_server_gone_as_failed(server: Server) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    result = HttpProber("127.0.0.1", port, "/", tls=False).start()
    threading.Event().wait(0.2)
    got = result.stop()
    assert got.failed == got.attempts > 0
    assert got.errors == 0


class Scripted(Prober):
    """A probe whose attempts are given: True good, False failed, None a bad answer; then good."""

    def __init__(self, answers: list[bool | None]) -> None:
        super().__init__("192.0.2.1", 6443)
        self.answers = answers

    def attempt(self) -> bool | None:
        return self.answers.pop(0) if self.answers else True


def holder_says(states: list[str]) -> FakeTransport:
    """lb1 holds the VIP; haproxy's stats socket reports m2 as each of ``states`` in turn, then the last."""
    def respond(describe: str, script: str) -> tuple[int, str]:
        if describe == "where is the VIP":
            return 0, "holder=eth0\n"
        if describe.startswith("be_api/m2 in haproxy"):
            state = states.pop(0) if len(states) > 1 else states[0]
            return 0, STAT_HEADER + f"be_api,m1,UP\nbe_api,m2,{state}\nbe_api,BACKEND,UP\n"
        return 0, ""
    return FakeTransport("lb1", respond)


def test_watch_master_times_out_of_rotation_and_back() -> None:
    ts = {"lb1": holder_says(["UP", "UP 1/2", "DOWN", "DOWN 1/3", "DOWN 2/3", "UP"]),
          "lb2": FakeTransport("lb2")}
    r = watch_master(ts, "10.0.0.9", "be_api", "m2", Scripted([True, None, None, None]), observe_s=10, limit_s=3)
    assert r.mode is Mode.MASTER_UNHEALTHY
    assert (r.master, r.old_holder, r.final_holder) == ("m2", "lb1", "lb1")
    assert r.out_s is not None
    assert r.back_s is not None
    assert r.back_s >= 0.2  # three polls "DOWN..." before "UP"
    assert r.probe is not None
    assert r.probe.errors == 3
    assert r.ok
    # it changed nothing: it only asked where the VIP is and what haproxy reports
    assert {c[0] for c in ts["lb1"].calls} == {"where is the VIP", "be_api/m2 in haproxy (drill)"}


def test_watch_master_that_never_leaves_rotation_is_not_ok() -> None:
    ts = {"lb1": holder_says(["UP"]), "lb2": FakeTransport("lb2")}
    r = watch_master(ts, "10.0.0.9", "be_api", "m2", Scripted([]), observe_s=0.5, limit_s=3)
    assert r.out_s is None
    assert r.back_s is None
    assert not r.ok


def crash_pair(restarts_after: int) -> dict[str, FakeTransport]:
    """lb1 holds the VIP until its haproxy is SIGKILLed, then lb2; systemd reports ``restarts_after``
    automatic restarts once the fault is done (0: systemd never restarted it)."""
    faulted = threading.Event()

    def lb1(describe: str, script: str) -> tuple[int, str]:
        if describe.startswith("SIGKILL haproxy"):
            assert "systemctl kill --signal=SIGKILL haproxy.service" in script
            faulted.set()
        if describe == "where is the VIP":
            return 0, "" if faulted.is_set() else "holder=eth0\nport=6443:open\n"
        if describe == "haproxy's state and restarts (drill)":
            if not faulted.is_set():
                return 0, "ActiveState=active\nNRestarts=0\n"
            return 0, (f"ActiveState=active\nNRestarts={restarts_after}\nActiveExitTimestampMonotonic=5000000\n"
                       "ActiveEnterTimestampMonotonic=6100000\n")
        return 0, ""

    def lb2(describe: str, script: str) -> tuple[int, str]:
        if describe == "where is the VIP":
            return 0, "holder=eth0\nport=6443:open\n" if faulted.is_set() else ""
        return 0, ""

    return {"lb1": FakeTransport("lb1", lb1), "lb2": FakeTransport("lb2", lb2)}


def test_haproxy_crash_round_times_systemds_restart_then_cancels_the_backstop() -> None:
    ts = crash_pair(restarts_after=1)
    r = run_drill(ts, "10.0.0.9", (6443,), mode=Mode.HAPROXY_CRASH, link_s=5, limit_s=3, timeout_s=2)
    assert (r.old_holder, r.new_holder) == ("lb1", "lb2")
    assert r.auto_restarted is True
    assert r.unit_back_s == 1.1  # systemd's own clock: left active at 5.0 s, active again at 6.1 s
    done = ts["lb1"].described()
    assert "start haproxy again, then cancel the drill's backstop timer" in done
    script = next(sc for d, sc, _ in ts["lb1"].calls if d.startswith("start haproxy again"))
    # started before the backstop goes: a connection lost in between leaves the timer to start it
    assert script.index("systemctl start haproxy.service") < script.index("hakeep-drill-restart.timer")
    assert "forget the recorded VRRP state (drill)" not in done  # keepalived ran throughout


def test_a_crash_systemd_does_not_restart_is_said_and_started_by_the_drill() -> None:
    ts = crash_pair(restarts_after=0)
    r = run_drill(ts, "10.0.0.9", (6443,), mode=Mode.HAPROXY_CRASH, link_s=1.0, limit_s=3, timeout_s=2)
    assert r.auto_restarted is False  # waited until shortly before the backstop, then started it
    assert "start haproxy again, then cancel the drill's backstop timer" in ts["lb1"].described()


def test_haproxy_stop_round_arms_a_backstop_timer_first() -> None:
    ts = {"lb1": FakeTransport("lb1", lambda d, s: (0, "holder=eth0\n" if d == "where is the VIP" else "")),
          "lb2": FakeTransport("lb2")}
    run_drill(ts, "10.0.0.9", (6443,), mode=Mode.HAPROXY_STOP, link_s=7, timeout_s=0.3)
    script = next(s for d, s, _ in ts["lb1"].calls if d.startswith("stop haproxy"))
    assert script.index("systemd-run") < script.index("systemctl stop haproxy.service")
    assert "--on-active=7s" in script


def test_unit_facts_read_systemds_restart_count_and_how_long_it_has_been_active() -> None:
    u = parse_unit("keepalived", ["LoadState=loaded", "ActiveState=active", "UnitFileState=enabled", "MainPID=42",
                                  "NRestarts=2", "ActiveEnterTimestampMonotonic=100000000", "Now=183400000"])
    assert (u.restarts, u.active_for_s) == (2, 83.4)
    old = parse_unit("keepalived", ["ActiveState=failed", "NRestarts=", "ActiveEnterTimestampMonotonic=0"])
    assert (old.restarts, old.active_for_s) == (0, None)


def test_status_notes_a_unit_systemd_restarted_without_changing_the_verdict() -> None:
    from hakeep.inventory.load import load_inventory

    inv = load_inventory(EXAMPLE)
    left, right = inv.lbs
    crashed = facts(left.name, str(left.address), vip_on=("ens192",), vrrp_state="MASTER")
    crashed = dataclasses.replace(crashed, units={**crashed.units, "keepalived": UnitFact(
        "keepalived", True, "active", "enabled", 7, restarts=1, active_for_s=12.0)})
    rows = [host_status(left, crashed), host_status(right, facts(right.name, str(right.address),
                                                                 vrrp_state="BACKUP"))]
    pair = judge(str(inv.cluster.vip.ip), rows, [], [])
    assert pair.verdict.value == "healthy"
    assert pair.notes == ("loadbalance-left: keepalived restarted by systemd 1x since it was last started by hand, "
                          "active for 12s (a crash? journalctl -u keepalived)",)
    assert rows[0].restarts == ("keepalived restarted by systemd 1x since it was last started by hand, "
                                "active for 12s",)
    # an hour on, it is the journal's business: no note
    old = dataclasses.replace(crashed, units={**crashed.units, "keepalived": UnitFact(
        "keepalived", True, "active", "enabled", 7, restarts=1, active_for_s=3601.0)})
    assert judge(str(inv.cluster.vip.ip), [host_status(left, old), rows[1]], [], []).notes == ()


@pytest.mark.parametrize(("args", "message"), [
    (["--master", "devops-master-02"], "--mode master-unhealthy needs --master NAME, and --master needs that mode"),
    (["--mode", "master-unhealthy"], "--mode master-unhealthy needs --master NAME"),
    (["--mode", "master-unhealthy", "--master", "nope"], "--master nope: no such server"),
    (["--mode", "master-unhealthy", "--master", "devops-master-02", "--frontend", "x"],
     "--frontend x: no such frontend; frontends: kube-apiserver, ingress-nginx-30080"),
    (["--mode", "master-unhealthy", "--master", "devops-master-02"],
     "frontend kube-apiserver checks its servers with tcp; it needs an https check"),
])
def test_drill_option_errors_name_the_option(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    assert main(["drill", str(EXAMPLE), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_master_mode_watches_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('check = "tcp"', 'check = "https"', 1)
    path = tmp_path / "inv.toml"
    path.write_text(text)
    assert main(["drill", str(path), "--mode", "master-unhealthy", "--master", "devops-master-02",
                 "--rounds", "2"]) == 2
    assert "--mode master-unhealthy watches once: drop --rounds" in capsys.readouterr().err


@pytest.mark.parametrize(("advert", "restart_s"), [(1, 5), (0.5, 5), (2, 8), (2.5, 11)])
def test_keepalived_waits_out_the_peers_master_down_interval_before_it_restarts(
        tmp_path: Path, advert: float, restart_s: int) -> None:
    """RestartSec: 3 x advert_int as VRRPv2 runs it (whole seconds, rounded half up, at least 1) + 2;
    the start limit's interval leaves room for 5 of those."""
    from hakeep.layout import KEEPALIVED
    from hakeep.render.engine import render_all
    from hakeep.render.files import Secrets
    from tests.fixtures import base_doc, load

    doc = base_doc()
    doc["cluster"]["advert_int"] = advert
    inv = load(tmp_path, doc)
    files = next(iter(render_all(inv, Secrets(auth_pass="x")).values())).files
    text = next(f.content for f in files if f.path == KEEPALIVED.dropin).decode()
    assert f"\nRestartSec={restart_s}s\n" in text
    assert f"\nStartLimitIntervalSec={5 * restart_s + 10}s\nStartLimitBurst=5\n" in text


def test_tuning_that_slows_checks_after_a_failure_is_a_lint_note(tmp_path: Path) -> None:
    from hakeep.inventory.lint import lint
    from tests.fixtures import base_doc, load

    doc = base_doc()
    doc["haproxy"] = {"default_server": {"inter_ms": 500, "fastinter_ms": 2000}}
    notes = [f"{p.path}: {p.message}" for p in lint(load(tmp_path, doc))]
    assert ("haproxy.default_server.fastinter_ms: 2000ms is slower than inter_ms (500ms): checks slow down just "
            "when one has failed") in notes
    doc["haproxy"] = {"default_server": {"fastinter_ms": 500}}
    assert not [p for p in lint(load(tmp_path, doc)) if "default_server" in p.path]


def test_without_preemption_a_failing_check_puts_the_lb_in_fault(tmp_path: Path) -> None:
    """A lowered priority moves no VIP when the peer does not preempt: the check forces FAULT."""
    from hakeep.render.engine import render_all
    from hakeep.render.files import Secrets
    from tests.fixtures import base_doc, load

    doc = base_doc()
    doc["cluster"]["preempt"] = False
    conf = next(iter(render_all(load(tmp_path, doc), Secrets(auth_pass="x")).values())).file(
        "/etc/keepalived/keepalived.conf").content.decode()
    script = conf[conf.index("vrrp_script chk_haproxy"):conf.index("vrrp_instance")]
    assert "    weight 0\n" in script
    assert "    nopreempt\n" in conf
    doc["cluster"]["preempt"] = True
    conf = next(iter(render_all(load(tmp_path, doc), Secrets(auth_pass="x")).values())).file(
        "/etc/keepalived/keepalived.conf").content.decode()
    assert "    weight -" in conf[conf.index("vrrp_script chk_haproxy"):conf.index("vrrp_instance")]


def test_a_drill_waits_for_a_fail_back_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VIP still on the peer while the LB that preempts it is about to take it back: the round
    starts from where it settles; without one to prefer, from the one holder there is."""
    from hakeep.cli.commands.drill import _settled_holder
    from hakeep.ops import drill as drill_ops

    seen = iter([{"lb1": "", "lb2": "holder=eth0"}] * 2 + [{"lb1": "holder=eth0", "lb2": ""}])
    monkeypatch.setattr(drill_ops, "where", lambda *a, **k: next(seen))
    assert _settled_holder({}, "10.0.0.10", 5.0, "lb1") == "lb1"
    monkeypatch.setattr(drill_ops, "where", lambda *a, **k: {"lb1": "", "lb2": "holder=eth0"})
    assert _settled_holder({}, "10.0.0.10", 5.0, None) == "lb2"
    assert _settled_holder({}, "10.0.0.10", 0.0, "lb1") == "lb2"  # not back in time: the one holder there is
