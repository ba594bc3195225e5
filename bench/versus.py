#!/usr/bin/env python3
"""hakeep side by side with Ansible and pyinfra on the lab: the same job, one run, one table.

usage: sudo .venv/bin/python bench/versus.py [--runs 5] [--first-runs 3] [--tools hakeep,pyinfra,ansible]
                                             [--anchors ../shared/anchors] [--lbs 16]

The job (../shared/anchors/README.md): on lb1/lb2 install haproxy and keepalived, render haproxy.cfg
(one TCP frontend :6443 over m1..m3) and a per-host keepalived.conf (unicast peers, VIP
10.77.0.200/24, VRID 51), validate each on the host before it replaces the live file, reload only
what changed, enable and start both. Every tool runs in the lab's control namespace and connects
directly (no ProxyCommand). Cases, whole-process wall time: first deploy (median of --first-runs,
each on freshly reset LBs), no-op re-deploy, a one-line change (haproxy's client timeout, 35s <->
40s, so each run changes it), and a dry-run of that change with its diff (median of --runs each).

Ansible (ansible-core 2.21, needs Python >= 3.12) and pyinfra 3.10 go into a bench-only venv,
bench/.venv-anchors (gitignored), from PyPI. With --lbs N it also times hakeep's no-op on N LBs
(LAB_LBS=N) against its 2-LB no-op. It prints the table with the ratios hakeep/pyinfra, where
hakeep's time goes per phase (its --json "timings"), its peak memory and `hakeep --help`. Changes
only the lab; leaves it down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tomlgen import dumps  # noqa: E402

LAB = REPO / "tests" / "lab" / "lab"
STATE = REPO / "tests" / "lab" / "state"
NETNS = ["ip", "netns", "exec", "hklab-ctl"]
VENV = REPO / "bench" / ".venv-anchors"
PINS = ["ansible-core==2.21.*", "pyinfra==3.10.*"]
AUTH = "k8sVIP1"
CASES = ("first deploy", "no-op", "one-line change", "dry-run of the change")


def lab(*args: str, lbs: int = 2) -> None:
    subprocess.run([str(LAB), *args], check=True, env={**os.environ, "LAB_LBS": str(lbs)},
                   stdout=subprocess.DEVNULL)


def reset(lbs: int = 2) -> None:
    for i in range(1, lbs + 1):
        lab("reset", f"lb{i}", lbs=lbs)


def anchors_venv() -> Path:
    """bench/.venv-anchors with ansible-core and pyinfra (made once)."""
    if (VENV / "bin" / "ansible-playbook").exists() and (VENV / "bin" / "pyinfra").exists():
        return VENV
    python = next((p for p in _pythons() if _runs(p)), None)
    if python is None:
        raise SystemExit("ansible-core 2.21 needs Python >= 3.12: set HAKEEP_BENCH_PYTHON, or put python3.12 on PATH")
    subprocess.run([python, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PINS], check=True)
    return VENV


def _pythons() -> list[str]:
    """Pythons >= 3.12 to make the anchors' venv with: $HAKEEP_BENCH_PYTHON, PATH, pyenv's."""
    found = [os.environ.get("HAKEEP_BENCH_PYTHON", ""), *(shutil.which(n) or "" for n in ("python3.13", "python3.12"))]
    pyenv = Path.home() / ".pyenv" / "versions"
    found += sorted((str(p / "bin" / "python") for p in pyenv.glob("3.1[2-9]*")), reverse=True)
    if sys.version_info >= (3, 12):
        found.append(sys.executable)
    return [p for p in found if p]


def _runs(python: str) -> bool:
    r = subprocess.run([python, "-c", "import sys; assert sys.version_info >= (3, 12)"], capture_output=True,
                       check=False)
    return r.returncode == 0


# --- the job, for each tool ------------------------------------------------------------------------


def hakeep_job(work: Path, lbs: int = 2) -> Callable[[str, str], list[str]]:
    ssh_config = work / "ssh_config"
    ssh_config.write_text(
        "Host 10.77.0.*\n    User root\n    IdentityFile {k}\n    IdentitiesOnly yes\n    UserKnownHostsFile {h}\n"
        "    StrictHostKeyChecking yes\n    BatchMode yes\n".format(k=STATE / "id_ed25519", h=STATE / "known_hosts"))

    def inventory(timeout: str) -> Path:
        doc = {
            "cluster": {"name": "bench", "vip": "10.77.0.200/24", "virtual_router_id": 51, "advert_int": 1,
                        "auth_pass_env": "HAKEEP_BENCH_PASS"},
            "ssh": {"user": "root", "config": str(ssh_config), "sudo": False},
            "haproxy": {"timeout_client": int(timeout.rstrip("s")), "timeout_server": 35},
            "lb": [{"name": f"lb{i}", "address": f"10.77.0.{100 + i}", "interface": "eth0",
                    "priority": 100 + (i == 1)} for i in range(1, lbs + 1)],
            "frontend": [{"name": "kube-apiserver", "port": 6443, "check": "tcp", "servers": [
                {"name": f"m{i}", "address": f"10.77.0.1{i}", "port": 6443} for i in (1, 2, 3)]}],
        }
        path = work / f"hakeep-{lbs}-{timeout}.toml"
        path.write_text(dumps(doc))
        return path

    hakeep = str(REPO / ".venv" / "bin" / "hakeep")

    def command(case: str, timeout: str) -> list[str]:
        inv = str(inventory(timeout))
        if case == "dry-run of the change":
            return [hakeep, "deploy", inv, "--dry-run"]
        return [hakeep, "deploy", inv, "--yes", "--json"]
    return command


def ansible_job(work: Path, anchors: Path) -> Callable[[str, str], list[str]]:
    folder = work / "ansible"
    shutil.copytree(anchors / "ansible", folder)
    (folder / "inventory.ini").write_text((folder / "inventory.ini.in").read_text().replace("{state}", str(STATE)))

    def command(case: str, timeout: str) -> list[str]:
        control = tempfile.mkdtemp(prefix="cp-", dir=work)  # a fresh ControlPath dir per run
        argv = ["env", f"ANSIBLE_CONFIG={folder / 'ansible.cfg'}", f"ANSIBLE_SSH_CONTROL_PATH_DIR={control}",
                f"ANSIBLE_LOCAL_TEMP={work / 'ansible-tmp'}", f"ANSIBLE_HOME={work / 'ansible-home'}",
                str(VENV / "bin" / "ansible-playbook"), "-i", str(folder / "inventory.ini"),
                str(folder / "playbook.yml"), "-e", f"haproxy_timeout_client={timeout}"]
        return [*argv, "--check", "--diff"] if case == "dry-run of the change" else argv
    return command


def pyinfra_job(work: Path, anchors: Path) -> Callable[[str, str], list[str]]:
    folder = work / "pyinfra"
    shutil.copytree(anchors / "pyinfra", folder)

    def command(case: str, timeout: str) -> list[str]:
        argv = ["env", f"HAKEEP_LAB_STATE={STATE}", str(VENV / "bin" / "pyinfra"), "inventory.py", "deploy.py",
                "--data", f"haproxy_timeout_client={timeout}"]
        return [*argv, "--diff"] if case == "dry-run of the change" else [*argv, "-y"]
    return command


# --- timing ----------------------------------------------------------------------------------------


class Runner:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.phases: dict[str, list[dict[str, float]]] = {}
        self.peak_kib = 0

    def timed(self, tool: str, case: str, argv: list[str]) -> float:
        env = {**os.environ, "HAKEEP_BENCH_PASS": AUTH, "ANSIBLE_NOCOLOR": "1", "PYINFRA_PROGRESS": "off"}
        cwd = self.work / "pyinfra" if tool == "pyinfra" else self.work
        if tool == "hakeep":  # its peak memory, as GNU time sees it (the last line of stderr)
            argv = ["/usr/bin/time", "-f", "hakeep-maxrss-kib %M", *argv] if Path("/usr/bin/time").exists() else argv
        t0 = time.monotonic()
        r = subprocess.run([*NETNS, *argv], env=env, cwd=cwd, capture_output=True, text=True, check=False,
                           input="n\n" if case == "dry-run of the change" else None, timeout=900)
        took = time.monotonic() - t0
        ok = {"hakeep": (0, 3), "ansible": (0,), "pyinfra": (0, 1)}[tool]
        if r.returncode not in ok or (tool == "pyinfra" and r.returncode and case != "dry-run of the change"):
            sys.stderr.write(f"{tool} {case}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n")
            raise SystemExit(1)
        if tool == "hakeep":
            rss = [line for line in r.stderr.splitlines() if line.startswith("hakeep-maxrss-kib ")]
            self.peak_kib = max(self.peak_kib, int(rss[-1].split()[1]) if rss else 0)
            if "--json" in argv:
                with_timings = json.loads(r.stdout).get("timings")
                if with_timings:
                    self.phases.setdefault(case, []).append(with_timings)
        return took


def measure(runner: Runner, tool: str, command: Callable[[str, str], list[str]], runs: int,
            first_runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    firsts = []
    for _ in range(first_runs):
        reset()
        firsts.append(runner.timed(tool, "first deploy", command("first deploy", "35s")))
    out["first deploy"] = statistics.median(firsts)
    runner.timed(tool, "settle", command("no-op", "35s"))  # (not timed: the VIP settled, caches warm)
    out["no-op"] = statistics.median(runner.timed(tool, "no-op", command("no-op", "35s")) for _ in range(runs))
    changes = [runner.timed(tool, "one-line change", command("one-line change", ("40s", "35s")[i % 2]))
               for i in range(runs)]
    out["one-line change"] = statistics.median(changes)
    if runs % 2:
        runner.timed(tool, "settle", command("no-op", "35s"))  # back to 35s
    out["dry-run of the change"] = statistics.median(
        runner.timed(tool, "dry-run of the change", command("dry-run of the change", "40s")) for _ in range(runs))
    print(f"  {tool}: " + ", ".join(f"{c} {v:.2f}s" for c, v in out.items()), file=sys.stderr, flush=True)
    return out


def _wall(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - t0


def table(results: dict[str, dict[str, float]]) -> str:
    tools = [t for t in ("ansible", "pyinfra", "hakeep") if t in results]
    head = "| case | " + " | ".join({"ansible": "Ansible 2.21", "pyinfra": "pyinfra 3.10"}.get(t, t) for t in tools)
    ratio = "hakeep" in results and "pyinfra" in results
    lines = [head + (" | hakeep / pyinfra |" if ratio else " |"), "|---" * (len(tools) + 1 + ratio) + "|"]
    for case in CASES:
        cells = [f"{results[t][case]:.2f} s" for t in tools]
        if ratio:
            cells.append(f"{results['hakeep'][case] / results['pyinfra'][case]:.2f}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--first-runs", type=int, default=3)
    ap.add_argument("--tools", default="hakeep,pyinfra,ansible")
    ap.add_argument("--anchors", type=Path, default=REPO.parent / "shared" / "anchors")
    ap.add_argument("--lbs", type=int, default=0, help="also time hakeep's no-op on this many LBs")
    args = ap.parse_args()
    tools = args.tools.split(",")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab needs it")
    if {"ansible", "pyinfra"} & set(tools):
        anchors_venv()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hakeep-versus-") as tmp:
        work = Path(tmp)
        runner = Runner(work)
        lab("down")
        lab("up")
        try:
            jobs = {"hakeep": lambda: hakeep_job(work), "ansible": lambda: ansible_job(work, args.anchors),
                    "pyinfra": lambda: pyinfra_job(work, args.anchors)}
            for tool in tools:
                results[tool] = measure(runner, tool, jobs[tool](), args.runs, args.first_runs)
            reset()
            wide = None
            if args.lbs > 2:
                lab("down")
                lab("up", lbs=args.lbs)
                command = hakeep_job(work, args.lbs)
                runner.timed("hakeep", "first deploy", command("first deploy", "35s"))
                runner.timed("hakeep", "settle", command("no-op", "35s"))
                wide = statistics.median(runner.timed("hakeep", "no-op", command("no-op", "35s"))
                                         for _ in range(args.runs))
        finally:
            lab("down", lbs=max(args.lbs, 2))
        print(table(results))
        if "hakeep" in results:
            print(f"\nhakeep peak memory: {runner.peak_kib / 1024:.0f} MiB", end="")
            t0 = time.monotonic()
            subprocess.run([str(REPO / ".venv" / "bin" / "hakeep"), "--help"], capture_output=True, check=True)
            print(f"; `hakeep --help`: {time.monotonic() - t0:.3f} s")
            imports = [str(REPO / ".venv" / "bin" / "python"), "-c", "import hakeep.cli.commands.common, "
                       "hakeep.hosts.connecting, hakeep.run.session, hakeep.render.engine, hakeep.plan.planner"]
            floor = statistics.median(_wall(imports) for _ in range(5))
            print(f"floor: the interpreter and the modules a deploy loads: {floor:.2f} s")
            if wide is not None:
                two = results["hakeep"]["no-op"]
                print(f"no-op on {args.lbs} LBs: {wide:.2f} s = {wide / two:.2f} x the 2-LB no-op")
            for case, runs in runner.phases.items():
                phases = {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}
                print(f"hakeep {case}, median per phase: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
