"""keepalived's own account against its file: the summary of real data dumps (sh/lib.sh), the
expectation read from a keepalived.conf (hakeep.hosts.keepalived), and the gate's judgement of one
against the other, run here by sh. The dumps and the config in tests/data/keepalived were taken
from keepalived 2.2.7 on the lab (password replaced); nothing here signals a real keepalived.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from hakeep.hosts import keepalived
from hakeep.hosts.facts import parse_facts
from hakeep.hosts.scripts import source
from hakeep.inventory.load import load_inventory
from hakeep.layout import KEEPALIVED_CONF
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from tests.fixtures import EXAMPLE

DATA = Path(__file__).parent / "data" / "keepalived"
MASTER = ("hklab-vip state=MASTER vrid=77 priority=101 interface=eth0 src=10.77.0.101 advert=1000 "
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
    assert two == ["hklab-vip state=BACKUP vrid=77 priority=100 interface=eth0 src=10.77.0.102 advert=1000 "
                   "vips=10.77.0.199,10.77.0.200/24 peers=10.77.0.101,10.77.0.105"]


def test_the_file_says_what_keepalived_reports() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    want = keepalived.expected(conf)
    assert want == ("hklab-vip vrid=77 priority=101 interface=eth0 src=10.77.0.101 advert=1000 "
                    "vips=10.77.0.200/24 peers=10.77.0.102",)
    assert keepalived.differences(want, [MASTER]) == []
    assert judge([MASTER], want) == (0, "ok")


def test_the_shipped_template_states_every_compared_field() -> None:
    """A template change that hides a field from the parser would silently weaken the gate."""
    for host in render_all(load_inventory(EXAMPLE), Secrets(auth_pass="1111")).values():
        [line] = keepalived.expected(host.file(KEEPALIVED_CONF).content.decode())
        fields = dict(w.split("=", 1) for w in line.split()[1:])
        assert set(fields) == {"vrid", "priority", "interface", "src", "advert", "vips", "peers"}, line
        assert fields["src"] == str(host.lb.address)


@pytest.mark.parametrize(("change", "token"), [
    (("priority 101", "priority 99"), "priority 101 running, 99 in the file"),
    (("10.77.0.200/24 dev eth0", "10.77.0.201/24 dev eth0"), "vips 10.77.0.200/24 running, 10.77.0.201/24"),
    (("unicast_src_ip 10.77.0.101", "unicast_src_ip 10.77.0.111"), "src 10.77.0.101 running, 10.77.0.111"),
    (("vrrp_instance hklab-vip", "vrrp_instance other"), "other: in the file, not running"),
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
        "VI_1 vrid=51 priority=150 interface=eth1 advert=500 vips=192.0.2.10 peers=192.0.2.2,192.0.2.3",
        "VI_2 vrid=52 vips=198.51.100.7",
    )


def test_no_instance_running_is_no_dump_missing() -> None:
    want = keepalived.expected((DATA / "2.2.7-master.conf").read_text())
    assert judge([], want) == (1, "keepalived:runs-an-older-config-than-its-file")
    assert judge([], ()) == (0, "ok")


def facts_text(conf: str, running: list[str]) -> str:
    content = base64.b64encode(conf.encode()).decode()
    return "\n".join(["@@facts 1", f"@@file {KEEPALIVED_CONF}", "mode=600 owner=root group=root", "sha256=x",
                      content, "@@vrrp_state", "BACKUP 100 1700000000", "@@keepalived_running", *running, "@@end"])


def test_facts_carry_keepalived_s_own_account() -> None:
    conf = (DATA / "2.2.7-master.conf").read_text()
    f = parse_facts("lb1", facts_text(conf, [MASTER]))
    assert (f.vrrp_state, f.stale, f.keepalived_answered) == ("MASTER", {}, True)  # the dump, not the record
    f = parse_facts("lb1", facts_text(conf.replace("priority 101", "priority 99"), [MASTER]))
    assert f.stale == {"keepalived": "hklab-vip: priority 101 running, 99 in the file"}
    fault = MASTER.replace("MASTER", "FAULT")
    f = parse_facts("lb1", facts_text(conf, [fault, "@why=(hklab-vip): entering FAULT state (src address not "
                                                   "configured)"]))
    assert (f.vrrp_state, f.vrrp_fault) == ("FAULT", "(hklab-vip): entering FAULT state (src address not configured)")
    f = parse_facts("lb1", facts_text(conf, ["@unanswered"]))
    assert (f.vrrp_state, f.keepalived_answered, f.stale) == ("BACKUP", False, {})  # the record, as a fallback
