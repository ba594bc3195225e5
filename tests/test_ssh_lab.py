"""OpenSSH's own config resolution on the lab (#16): a user's ssh config that reaches the LBs only
through an ``Include`` of a file with ``Host lb1``/``Host lb2`` alias blocks (no block for their
addresses). ``ssh`` itself connects with it; hakeep must too (it asks ``ssh -G``), where paramiko
alone would have skipped the Include and connected straight to the addresses, which the lab's
network does not route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Lab
from tests.test_deploy_lab import hakeep, lab_doc, write_inventory

pytestmark = pytest.mark.lab


def alias_only_config(lab: Lab, tmp_path: Path) -> Path:
    """~/.ssh/config-like: one Include line; the included file names each LB by alias only."""
    lines = lab.ssh_config.read_text().splitlines()
    common = lines[lines.index(next(ln for ln in lines if ln.startswith("Host 10.77.0.*"))) + 1:]
    (tmp_path / "conf.d").mkdir()
    blocks = [f"Host {name}\n    HostName {addr}\n" + "\n".join(c for c in common if c.strip()) + "\n"
              for name, addr in lab.lbs.items()]
    (tmp_path / "conf.d" / "lbs.conf").write_text("\n".join(blocks))
    config = tmp_path / "ssh_config"
    config.write_text(f"# only an Include, as many ~/.ssh/config files are\nInclude {tmp_path}/conf.d/*.conf\n")
    return config


def test_an_include_and_host_aliases_reach_the_lbs(lab: Lab, tmp_path: Path) -> None:
    config = alias_only_config(lab, tmp_path)
    for name in lab.lbs:  # OpenSSH itself gets there with this config
        probe = lab.ssh(name, "true", check=False)
        assert probe.returncode == 0, probe.stderr
    doc = lab_doc(lab)
    doc["ssh"]["config"] = str(config)
    inv = write_inventory(tmp_path, doc)
    r = hakeep(lab, "releases", str(inv), "--json", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {d["host"] for d in json.loads(r.stdout)["hosts"]} == set(lab.lbs)
    r = hakeep(lab, "status", str(inv), "--json", timeout=120)
    assert r.returncode != 5, r.stdout + r.stderr  # 5: unreachable
    assert {h["host"] for h in json.loads(r.stdout)["hosts"] if h["reachable"]} == set(lab.lbs)
