"""keepalived's own account against its file: the summary of real data dumps (sh/lib.sh), the
expectation read from a keepalived.conf (hakeep.hosts.keepalived), and the gate's judgement of one
against the other, run here by sh. The dumps and the config in tests/data/keepalived were taken
from keepalived 2.2.7 on the lab (password replaced); nothing here signals a real keepalived.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hakeep.hosts import keepalived
from hakeep.hosts.facts import parse_facts
from hakeep.hosts.scripts import source
from hakeep.inventory.load import load_inventory
from hakeep.layout import KEEPALIVED_CONF
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from tests.fakes import MARK, marked
from tests.fixtures import EXAMPLE

DATA = Path(__file__).parent / "data" / "keepalived"
MASTER = ("hklab-vip state=MASTER router=hklab-lb1 vrid=77 priority=101 interface=eth0 src=10.77.0.101 advert=1000 "
          "vips=10.77.0.200/24 peers=10.77.0.102")


def sh(body: str, **variables: str) -> subprocess.CompletedProcess[str]:
    lib = source("lib.sh")
    assigned = "".join(f"{k}='{v}'\n" for k, v in variables.items())
    return subprocess.run(["sh", "-c", "set -u\nLC_ALL=C\n" + assigned + lib + body], capture_output=True,
                          text=True, timeout=30, check=False)


def summary(dump: str) -> list[str]:
    done = sh('hk_keepalived_parse "$DUMP"', DUMP=str(DATA / dump))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def judge(running: list[str], expect: tuple[str, ...]) -> tuple[int, str]:
    done = sh('hk_judge_keepalived "$RUN" "$EXPECT"; hk_report', RUN="\n".join(running), EXPECT="\n".join(expect))
    return done.returncode, done.stdout.strip()


def test_a_dump_is_summed_up_without_its_password() -> None:
    assert summary("2.2.7-master.data") == [MASTER]
    assert "s3cr3tPW" in (DATA / "2.2.7-master.data").read_text()  # the dump holds it; the summary must not
    two = summary("2.2.7-backup-two-vips.data")
    assert two == ["hklab-vip state=BACKUP router=hklab-lb2 vrid=77 priority=100 interface=eth0 src=10.77.0.102 "
                   "advert=1000 vips=10.77.0.199,10.77.0.200/24 peers=10.77.0.101,10.77.0.105"]


def test_the_file_says_what_keepalived_reports() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    want = keepalived.expected(conf)
    assert want == ("hklab-vip router=hklab-lb1 vrid=77 priority=101 interface=eth0 src=10.77.0.101 advert=1000 "
                    "vips=10.77.0.200/24 peers=10.77.0.102",)
    assert keepalived.differences(want, [MASTER]) == []
    assert judge([MASTER], want) == (0, "ok")


def test_the_shipped_template_states_every_compared_field() -> None:
    """A template change that hides a field from the parser would silently weaken the gate."""
    for host in render_all(load_inventory(EXAMPLE), Secrets(auth_pass="1111")).values():
        [line] = keepalived.expected(host.file(KEEPALIVED_CONF).content.decode())
        fields = dict(w.split("=", 1) for w in line.split()[1:])
        assert set(fields) == {"router", "vrid", "priority", "interface", "src", "advert", "vips", "peers"}, line
        assert re.fullmatch(rf"{host.lb.name}-[0-9a-f]{{12}}", fields["router"].removeprefix("devops-")), line
        assert fields["src"] == str(host.lb.address)


@pytest.mark.parametrize(("change", "token"), [
    (("priority 101", "priority 99"), "priority 101 running, 99 in the file"),
    (("10.77.0.200/24 dev eth0", "10.77.0.201/24 dev eth0"), "vips 10.77.0.200/24 running, 10.77.0.201/24"),
    (("unicast_src_ip 10.77.0.101", "unicast_src_ip 10.77.0.111"), "src 10.77.0.101 running, 10.77.0.111"),
    (("vrrp_instance hklab-vip", "vrrp_instance other"), "other: in the file, not running"),
    (("router_id hklab-lb1", "router_id hklab-lb1-0e6858114bc4"), "router hklab-lb1 running, hklab-lb1-0e68"),
])
def test_a_file_keepalived_has_not_loaded_is_told_apart(change: tuple[str, str], token: str) -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    assert change[0] in conf
    want = keepalived.expected(conf.replace(*change))
    assert any(token in d for d in keepalived.differences(want, [MASTER]))
    assert judge([MASTER], want) == (1, "keepalived:runs-an-older-config-than-its-file")


def test_the_judge_wants_master_or_backup_and_no_instance_more() -> None:
    fault = MASTER.replace("state=MASTER", "state=FAULT")
    assert judge([fault], ()) == (1, "vrrp:FAULT")
    assert judge([MASTER.replace("state=MASTER ", "")], ()) == (1, "vrrp:none")
    extra = "second state=BACKUP vrid=78"
    want = keepalived.expected((DATA / "2.2.7-master.conf").read_text())
    assert judge([MASTER, extra], want) == (1, "keepalived:runs-an-older-config-than-its-file")
    assert keepalived.differences(want, [MASTER, extra]) == ["second: running, not in the file"]
    assert judge([MASTER, extra], ()) == (0, "ok")  # nothing to compare: states only


def test_the_gate_fails_closed_when_keepalived_does_not_answer(tmp_path: Path) -> None:
    done = sh('hk_check_keepalived hakeep-test-no-such-unit "$DATA" ""; hk_report', DATA=str(tmp_path / "x.data"))
    assert (done.returncode, done.stdout.strip()) == (1, "keepalived:no-data-dump")


def test_keepalived_syntax_the_parser_must_read() -> None:
    conf = """
! a comment
vrrp_instance "VI_1" {          # quoted name, comment after
    state MASTER
    interface eth1
    virtual_router_id 51 ! comment
    priority 150
    advert_int 0.5
    virtual_ipaddress { 192.0.2.10/32 }
    virtual_ipaddress_excluded {
        192.0.2.99/24
    }
    unicast_peer {
        192.0.2.3
        192.0.2.2
    }
    track_script {
        chk
    }
}
vrrp_instance VI_2 {
    virtual_router_id 52
    virtual_ipaddress {
        198.51.100.7 dev eth1 label eth1:vip
    }
}
"""
    assert keepalived.expected(conf) == (
        # VRRPv2 runs whole seconds only: keepalived rounds 0.5 up to 1
        "VI_1 vrid=51 priority=150 interface=eth1 advert=1000 vips=192.0.2.10 peers=192.0.2.2,192.0.2.3",
        "VI_2 vrid=52 vips=198.51.100.7 peers=",
    )
    v3 = conf.replace("    state MASTER", "    version 3\n    state MASTER")
    assert "advert=500" in keepalived.expected(v3)[0]
    assert keepalived.expected("global_defs {\n  vrrp_version 3\n}\n" + conf)[0].count("advert=500") == 1


def test_addresses_as_keepalived_prints_them() -> None:
    conf = """vrrp_instance v {
    virtual_ipaddress {
        10.0.0.10-12/24 dev eth0
        2001:DB8:0::1/64
        2001:db8::5/128
    }
}
"""
    assert keepalived.expected(conf) == (
        "v vips=10.0.0.10/24,10.0.0.11/24,10.0.0.12/24,2001:db8::1/64,2001:db8::5 peers=",)


def test_an_include_cannot_be_read_whole() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    assert keepalived.expected("include /etc/keepalived/conf.d/*.conf\n" + conf) == ()


def test_a_list_emptied_in_the_file_shows() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    multicast = re.sub(r"unicast_peer \{[^}]*\}", "", conf)
    want = keepalived.expected(multicast)
    assert "peers= " in want[0] + " "
    assert keepalived.differences(want, [MASTER]) == ["hklab-vip: peers 10.77.0.102 running, (none) in the file"]
    assert judge([MASTER], want) == (1, "keepalived:runs-an-older-config-than-its-file")


def test_older_and_vmac_dump_layouts() -> None:
    """keepalived before 2.2.5 heads the VIP list "Virtual IP :"; with use_vmac the interface line
    reads "Interface = vrrp.77, vmac on eth0". Both are the 2.2.7 dump, rewritten as those print."""
    text = (DATA / "2.2.7-master.data").read_text()
    assert "   Virtual IP (1):\n" in text
    assert "   Interface = eth0\n" in text
    old = text.replace("   Virtual IP (1):\n", "   Virtual IP :\n")
    vmac = text.replace("   Interface = eth0\n", "   Interface = vrrp.77, vmac on eth0\n")
    for variant in (old, vmac):
        done = subprocess.run(["sh", "-c", "set -u\n" + source("lib.sh") + "hk_keepalived_parse /dev/stdin"],
                              input=variant, capture_output=True, text=True, timeout=30, check=False)
        assert done.stdout.splitlines() == [MASTER], done.stdout


def test_no_instance_running_is_no_dump_missing() -> None:
    want = keepalived.expected((DATA / "2.2.7-master.conf").read_text())
    assert judge([], want) == (1, "keepalived:runs-an-older-config-than-its-file")
    assert judge([], ()) == (0, "ok")


def facts_text(conf: str, running: list[str]) -> str:
    content = base64.b64encode(conf.encode()).decode()
    return marked("\n".join(["@@facts 1", f"@@file {KEEPALIVED_CONF}", "mode=600 owner=root group=root",
                             "sha256=x", content, "@@vrrp_state", "BACKUP 100 1700000000", "@@keepalived_running",
                             *running, "@@end"]))


def test_facts_carry_keepalived_s_own_account() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    f = parse_facts("lb1", facts_text(conf, ["@answered", MASTER]), MARK)
    assert (f.vrrp_state, f.stale, f.keepalived_answered) == ("MASTER", {}, True)  # the dump, not the record
    f = parse_facts("lb1", facts_text(conf.replace("priority 101", "priority 99"), ["@answered", MASTER]), MARK)
    assert f.stale == {"keepalived": "hklab-vip: priority 101 running, 99 in the file"}
    fault = MASTER.replace("MASTER", "FAULT")
    why = "(hklab-vip): entering FAULT state (src address not configured)"
    f = parse_facts("lb1", facts_text(conf, ["@answered", fault, f"@why={why}"]), MARK)
    assert (f.vrrp_state, f.vrrp_fault) == ("FAULT", "(hklab-vip): entering FAULT state (src address not configured)")
    f = parse_facts("lb1", facts_text(conf, ["@unanswered"]), MARK)
    assert (f.vrrp_state, f.keepalived_answered, f.stale) == ("BACKUP", False, {})  # the record, as a fallback
    f = parse_facts("lb1", facts_text(conf, ["@answered"]), MARK)  # it answered: no instance runs at all
    assert f.stale == {"keepalived": "hklab-vip: in the file, not running"}
    f = parse_facts("lb1", facts_text(conf, ["@blocked"]), MARK)
    assert (f.keepalived_answered, f.keepalived_dump_blocked) == (False, True)
    f = parse_facts("lb1", facts_text(conf, []), MARK)  # keepalived not running: nothing asked, nothing compared
    assert (f.stale, f.keepalived_answered) == ({}, True)


STUB = r"""
import os, signal, sys, time
path, mode, dump = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
def answer(signum, frame):
    tmp = path + ".tmp"
    with open(tmp, "w") as out:          # keepalived: a temporary file renamed into place, then written
        os.rename(tmp, path)
        if mode == "linked":
            os.link(path, path + ".second-link")
        half = len(dump) // 2
        out.write(dump[:half]); out.flush()
        time.sleep(0.4)                   # a reader that does not wait for the close sees half a dump
        out.write(dump[half:])
signal.signal(signal.SIGUSR1, answer if mode != "deaf" else signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """A stand-in keepalived main process that answers SIGUSR1 like keepalived (mode "slow"), not at
    all ("deaf"), or with a second hard link to its dump ("linked")."""
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str) -> int:
        p = subprocess.Popen([sys.executable, "-c", STUB, str(tmp_path / "keepalived.data"), mode,
                              str(DATA / "2.2.7-master.data")], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        return p.pid

    yield start
    for p in procs:
        p.kill()
        p.wait(5)


def dump(pid: int, tmp_path: Path) -> tuple[int, list[str], float]:
    t0 = time.monotonic()
    done = sh('hk_keepalived_dump "$PID" "$DATA" "$LOCK"', PID=str(pid), DATA=str(tmp_path / "keepalived.data"),
              LOCK=str(tmp_path / "run" / "dump.lock"))
    return done.returncode, done.stdout.splitlines(), time.monotonic() - t0


def test_the_dump_is_read_whole_once_written_and_then_deleted(stub: Callable[[str], int], tmp_path: Path) -> None:
    (tmp_path / "keepalived.data").write_text("stale dump from before\n")
    code, lines, took = dump(stub("slow"), tmp_path)
    assert (code, lines) == (0, [MASTER])
    assert took >= 0.4  # it waited for the writer to close the file
    assert not (tmp_path / "keepalived.data").exists()


def test_no_answer_is_not_an_old_dump(stub: Callable[[str], int], tmp_path: Path) -> None:
    (tmp_path / "keepalived.data").write_text((DATA / "2.2.7-master.data").read_text())  # an old, valid dump
    code, lines, took = dump(stub("deaf"), tmp_path)
    assert (code, lines) == (1, [])
    assert took < 10


def test_a_dump_with_a_second_link_does_not_count(stub: Callable[[str], int], tmp_path: Path) -> None:
    code, lines, _ = dump(stub("linked"), tmp_path)
    assert (code, lines) == (1, [])


def test_a_path_taken_by_a_folder_is_reported(stub: Callable[[str], int], tmp_path: Path) -> None:
    (tmp_path / "keepalived.data").mkdir()
    (tmp_path / "keepalived.data" / "x").write_text("")
    code, lines, _ = dump(stub("slow"), tmp_path)
    assert (code, lines) == (2, [])
    assert (tmp_path / "keepalived.data" / "x").exists()  # nothing of it removed


def test_the_reason_of_a_failed_haproxy_load() -> None:
    journal = """[NOTICE]   (31) : New worker (33) forked
[ALERT]    (591) : config : parsing [/etc/haproxy/haproxy.cfg:7] : 'pidfile' already specified. Continuing.
[WARNING]  (7558) : Paused frontend GLOBAL.
[ALERT]    (598) : Binding [/etc/haproxy/haproxy.cfg:45] for frontend ingress-http: cannot bind socket (Cannot assign requested address) for [10.77.0.250:30080]
[ALERT]    (598) : [/usr/sbin/haproxy.main()] Some protocols failed to start their listeners! Exiting.
[WARNING]  (598) : Loading failure!
[WARNING]  (7558) : Resumed frontend ingress-http.
"""  # noqa: E501 (haproxy 2.6's own lines, from the lab)
    done = subprocess.run(["sh", "-c", source("lib.sh") + "hk_haproxy_failure"], input=journal, capture_output=True,
                          text=True, check=False)
    assert done.stdout.strip().endswith("cannot bind socket (Cannot assign requested address) for [10.77.0.250:30080]")
    done = subprocess.run(["sh", "-c", source("lib.sh") + "hk_haproxy_failure"], input="[WARNING] x\n",
                          capture_output=True, text=True, check=False)
    assert done.stdout == ""


@pytest.mark.parametrize(("journal", "why"), [
    ("(v) Entering BACKUP STATE (init)\nbind unicast_src 10.77.0.250 failed 99\n"
     "(v): entering FAULT state (src address not configured)\n(v) Entering FAULT STATE\n",
     "(v): entering FAULT state (src address not configured)"),
    ("(v) entering FAULT state due to script chk\n(v) Entering FAULT STATE\n",
     "(v) entering FAULT state due to script chk"),
    ("(v) Entering FAULT STATE (init)\n(v) Entering FAULT STATE\n", "(v) Entering FAULT STATE"),
    ("(v) Entering BACKUP STATE\n", ""),
])
def test_the_reason_of_a_fault(journal: str, why: str) -> None:
    done = subprocess.run(["sh", "-c", source("lib.sh") + "hk_fault_reason"], input=journal, capture_output=True,
                          text=True, check=False)
    assert done.stdout.strip() == why
