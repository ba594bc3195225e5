"""The releases matrix on the lab: hakeep's whole job on Debian 11 and 13 pairs, and on a mixed pair.

Each case boots a fresh lab from its releases (``LAB_DIST``, ``LAB_DISTS``; bookworm runs the rest
of the suite), then, as a user would: first deploy on bare hosts -> the VIP on exactly one LB, TCP
and TLS through the VIP reach every master -> the facts name each LB's own haproxy/keepalived ->
a no-op re-deploy changes nothing -> a config change (a master added) under a probe through the VIP
with 0 failed connections -> rollback -> drill. These tests run after every other lab test (they
reboot the lab) and give the session's lab back as they found it: same LBs, same releases.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeep.hosts.versions import version_key
from hakeep.layout import PROVEN
from tests.conftest import Lab
from tests.test_deploy_lab import VIP, hakeep, holders, lab_doc, snapshot, under_probe, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.lab_matrix]

CASES = {
    "bullseye": {"LAB_DIST": "bullseye"},
    "trixie": {"LAB_DIST": "trixie"},
    "mixed": {"LAB_DIST": "bookworm", "LAB_DISTS": "lb1=bullseye,lb2=trixie"},
}
PLATFORM = {"bullseye": PROVEN[0], "bookworm": PROVEN[1], "trixie": PROVEN[2]}


def boot(lab: Lab, env: dict[str, str]) -> None:
    lab.down()
    base = {k: v for k, v in os.environ.items() if k not in ("LAB_DIST", "LAB_DISTS")}
    lab.run_lab("up", env={**base, **env, "LAB_LBS": str(len(lab.lbs))})
    lab.is_up = True


@pytest.fixture(scope="module")
def matrix(lab: Lab) -> Iterator[Lab]:
    """The session's lab, rebooted per case; afterwards booted again with the releases it had."""
    had = json.loads(lab.state_file.read_text()).get("releases", {})
    yield lab
    boot(lab, {"LAB_DISTS": ",".join(f"{h}={r}" for h, r in had.items())} if had else {})


def served_by(lab: Lab, url: str, tries: int = 9) -> set[str]:
    """The masters that answer ``url`` through the VIP (TLS verified against the lab CA)."""
    seen = set()
    for _ in range(tries):
        status, body = lab.http_get(url)
        assert status == 200, (url, status, body)
        seen.add(body.strip())
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_the_whole_job_on_each_release(matrix: Lab, case: str, tmp_path: Path) -> None:
    lab = matrix
    boot(lab, CASES[case])
    releases: dict[str, str] = json.loads(lab.state_file.read_text())["releases"]
    status = lab.run_lab("status").stdout
    for lb in lab.lbs:  # `lab status` names each host's release
        assert any(line.split()[1:2] == [lb] and releases[lb] in line.split() for line in status.splitlines()), status
    v1 = write_inventory(tmp_path, lab_doc(lab, masters=2), "v1.toml")
    v2 = write_inventory(tmp_path, lab_doc(lab, masters=3), "v2.toml")
    times: dict[str, float] = {}

    t0 = time.monotonic()
    r = hakeep(lab, "deploy", str(v1), "--yes")
    times["first deploy"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None, holders(lab)
    assert served_by(lab, f"http://{VIP}:30080/") == {"m1", "m2"}
    assert served_by(lab, f"https://{VIP}:6443/readyz") == {"m1", "m2"}

    # the facts read each LB's own versions: exactly what its release's mirror offers (the build's
    # `versions` file), of the major.minor hakeep.layout.PROVEN names for that release
    r = hakeep(lab, "deploy", str(v1), "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    builds = json.loads(lab.state_file.read_text())["builds"]
    for host in json.loads(r.stdout)["hosts"]:
        release = releases[host["host"]]
        offered = dict(x.split("=", 1) for x in (Path(builds[release]) / "versions").read_text().split())
        want = PLATFORM[release]
        for pkg in ("haproxy", "keepalived"):
            got = host["versions"][pkg]
            assert got["source"] == "installed", (host["host"], got)
            assert version_key(got["version"]) == version_key(offered[pkg]), (host["host"], got, offered)
            assert (version_key(got["version"]) or ())[:2] == want.version(pkg)[:2], (host["host"], got)

    before = snapshot(lab)
    t0 = time.monotonic()
    r = hakeep(lab, "deploy", str(v1), "--yes")
    times["no-op deploy"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no changes" in r.stdout
    assert snapshot(lab) == before

    r = under_probe(lab, "deploy", str(v2), "--yes")
    assert "reload (or start) haproxy" in r.stdout
    assert served_by(lab, f"https://{VIP}:6443/readyz") == {"m1", "m2", "m3"}
    assert served_by(lab, f"http://{VIP}:30080/") == {"m1", "m2", "m3"}

    r = hakeep(lab, "rollback", str(v2), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert served_by(lab, f"http://{VIP}:30080/") == {"m1", "m2"}
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None, holders(lab)

    before_drill = holders(lab)
    t0 = time.monotonic()
    r = hakeep(lab, "drill", str(v1), "--json")
    times["drill"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    [doc] = json.loads(r.stdout)["rounds"]
    assert doc["old_holder"] == before_drill[0]
    assert doc["new_holder"] != before_drill[0]
    assert doc["vip_moved_s"] < 3.0
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None
    mix = ", ".join(f"{lb}={releases[lb]}" for lb in lab.lbs)
    print(f"{case} ({mix}): " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
          + f"; VIP moved in {doc['vip_moved_s']:.2f}s")
