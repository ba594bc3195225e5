"""What operators bring from other tools (#16), as a user meets it: a closed pipe, output in pipes
and CI logs, a change without a terminal. The pipe tests run hakeep as a subprocess."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from hakeep.cli import output, views
from hakeep.cli.commands.common import confirm
from hakeep.plan.releases import parse_manifest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventory.example.toml"


def piped(command: str) -> subprocess.CompletedProcess[str]:
    """``hakeep …`` with its stdout read by ``head -c 1``, which then goes away."""
    env = {**os.environ, "HAKEEP_VRRP_PASS": "pipe-pw"}
    return subprocess.run(["bash", "-c", f"{sys.executable} -m hakeep {command} | head -c 1 >/dev/null; "
                           "echo \"rc=${PIPESTATUS[0]}\" >&2"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=False)


@pytest.mark.parametrize("command", [f"render {EXAMPLE}", f"render {EXAMPLE} --show-secrets", f"validate {EXAMPLE}"])
def test_a_closed_pipe_is_a_quiet_exit_0(command: str) -> None:
    done = piped(command)
    assert done.stderr.strip().endswith("rc=0"), done.stderr
    assert "Traceback" not in done.stderr
    assert "Broken pipe" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_tables_in_a_pipe_are_as_wide_as_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    rid = "20261127T053012Z-4f2a9c"
    release = parse_manifest(rid, (f'{{"id": "{rid}", "seq": 7, "kind": "deploy", "status": "complete", '
                                   '"time": "2026-11-27T05:30:12Z", "operator": "someone-with-a-long-name@build-'
                                   'agent-17.example.internal", "files": [], "deployed": []}').encode())
    stream = io.StringIO()  # not a terminal
    console = output._Console(file=stream, soft_wrap=True, highlight=False, width=output._width(stream))
    console.print(views.releases_table("loadbalance-left", [release], rid))
    text = stream.getvalue()
    assert rid in text
    assert "someone-with-a-long-name@build-agent-17.example.internal" in text
    assert "…" not in text


def test_columns_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert output._width(io.StringIO()) is None  # rich reads COLUMNS itself


def test_a_change_without_a_terminal_needs_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal, even if it says yes
    plan = SimpleNamespace(drift=(), kind="deploy")
    assert confirm(SimpleNamespace(yes=False), plan) is False  # type: ignore[arg-type]
    assert confirm(SimpleNamespace(yes=True), plan) is True  # type: ignore[arg-type]


def test_limit_takes_comma_lists_and_globs(tmp_path: Path) -> None:
    from hakeep.cli.commands.options import checked_limit
    from hakeep.errors import UsageError
    from tests.fixtures import base_doc, load

    doc = base_doc()
    doc["lb"].append({"name": "other-lb", "address": "10.220.62.34", "interface": "ens192", "priority": 99})
    inv = load(tmp_path, doc)
    assert checked_limit(inv, None) is None
    assert checked_limit(inv, ["loadbalance-*"]) == ["loadbalance-left", "loadbalance-right"]
    assert checked_limit(inv, ["other-lb,loadbalance-left"]) == ["loadbalance-left", "other-lb"]  # inventory order
    assert checked_limit(inv, ["*-right", "loadbalance-right"]) == ["loadbalance-right"]
    with pytest.raises(UsageError) as info:
        checked_limit(inv, ["lb9,loadbalance-left", "x*"])
    assert info.value.message == f"--limit lb9, x*: no such LB in {inv.source}"
    assert info.value.hint == "the LBs are: loadbalance-left, loadbalance-right, other-lb"


def run_validate(*extra: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")} | {"HAKEEP_VRRP_PASS": "pw"}
    done = subprocess.run([sys.executable, "-m", "hakeep", "validate", str(EXAMPLE), *extra], capture_output=True,
                          text=True, env={**base, **(env or {})}, cwd=ROOT, timeout=60, check=False)
    assert "warning: " in done.stderr, done.stderr
    return done.stderr


def test_color_always_colours_the_prefix_only() -> None:
    text = run_validate("--color", "always")
    [line] = [ln for ln in text.splitlines() if "keeps a hung kube-apiserver" in ln]
    prefix, _, message = line.partition("warning: ")
    assert "\x1b[" in prefix  # the prefix is coloured...
    assert message.startswith("\x1b[0m")  # ...then reset, and the message itself is plain
    assert "\x1b[" not in message[len("\x1b[0m"):]


@pytest.mark.parametrize(("extra", "env"), [((), None), (("--color", "never"), {"FORCE_COLOR": "1"}),
                                             ((), {"NO_COLOR": "1"})])
def test_no_colour_in_pipes_with_never_or_no_color(extra: tuple[str, ...], env: dict[str, str] | None) -> None:
    assert "\x1b[" not in run_validate(*extra, env=env)


def test_force_color_colours_a_pipe() -> None:
    assert "\x1b[" in run_validate(env={"FORCE_COLOR": "1"})


def test_an_unknown_option_shows_the_commands_usage() -> None:
    done = subprocess.run([sys.executable, "-m", "hakeep", "deploy", str(EXAMPLE), "--no-such-option"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: hakeep deploy ")
    assert "hakeep deploy: error: unrecognized arguments: --no-such-option" in done.stderr


def test_a_toml_syntax_error_hints_at_the_syntax(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.toml"
    bad.write_text("[cluster]\nname = \"x\nvip = 1\n")
    done = subprocess.run([sys.executable, "-m", "hakeep", "validate", str(bad)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert "TOML syntax error" in done.stderr
    assert "keys named above" not in done.stderr
    assert "not valid TOML" in done.stderr
    assert "Traceback" not in done.stderr


def hakeep_out(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False, env={**os.environ, "HAKEEP_VRRP_PASS": "pw"})


def test_init_prints_the_example_and_a_valid_inventory_for_a_topology(tmp_path: Path) -> None:
    done = hakeep_out("init")
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXAMPLE.read_text()
    done = hakeep_out("init", "--vip", "10.0.0.10/24", "--lb", "lb1=10.0.0.11", "--lb", "lb2=10.0.0.12",
                      "--master", "m1=10.0.0.21", "--master", "m2=10.0.0.22")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "inventory.toml"
    path.write_text(done.stdout)
    check = hakeep_out("validate", str(path))
    assert check.returncode == 0, check.stderr
    assert "valid: cluster k8s, 2 LBs, 2 frontends, VIP 10.0.0.10/24" in check.stdout
    assert "# the highest: the preferred VIP holder" in done.stdout
    bad = hakeep_out("init", "--vip", "10.0.0.10/24", "--lb", "lb1=nope", "--lb", "lb2=10.0.0.12",
                     "--master", "m=1.2.3.4")
    assert bad.returncode == 2
    assert "--lb lb1=nope: nope is not an IP address" in bad.stderr
    outside = hakeep_out("init", "--vip", "10.9.0.10/24", "--lb", "lb1=10.0.0.11", "--lb", "lb2=10.0.0.12",
                         "--master", "m1=10.0.0.21")
    assert outside.returncode == 2  # validated before it is printed: the VIP is in no LB's subnet
    assert outside.stdout == ""


def test_bash_completion_completes_commands_options_and_lb_names() -> None:
    script = hakeep_out("completion", "bash")
    assert script.returncode == 0, script.stderr
    probe = f"""
hakeep() {{ {sys.executable} -m hakeep "$@"; }}
{script.stdout}
complete_for() {{
    COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=(); _hakeep; echo "${{COMPREPLY[*]}}"
}}
complete_for hakeep dr
complete_for hakeep deploy x.toml --dry
complete_for hakeep deploy {EXAMPLE} --limit loadbalance-r
complete_for hakeep status x.toml --color al
complete_for hakeep completion z
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
                          env={**os.environ, "HAKEEP_VRRP_PASS": "pw"})
    assert done.stdout.splitlines() == ["drill", "--dry-run", "loadbalance-right", "always", "zsh"], done.stderr


EXPECTED = ["drill", "--dry-run", "loadbalance-right", "always", "zsh"]  # for the lines of completing_lines()


def completing_lines() -> list[str]:
    """What is typed, word by word, before asking for completions (the last word is being completed)."""
    return ["hakeep dr", "hakeep deploy x.toml --dry", f"hakeep deploy {EXAMPLE} --limit loadbalance-r",
            "hakeep status x.toml --color al", "hakeep completion z"]


def shell_or_skip(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{shell} is not installed (scripts/install-test-deps installs it)")
        pytest.skip(f"no {shell}")
    return path


def test_zsh_completion_in_a_real_zsh() -> None:
    """Loaded as a user's .zshrc would (compinit, then the script), registered for hakeep, and the
    candidates zsh keeps (those starting with the word typed: zsh filters bash-style replies so)."""
    zsh = shell_or_skip("zsh")
    script = hakeep_out("completion", "zsh")
    assert script.returncode == 0, script.stderr
    calls = "\n".join(f"cf {line}" for line in completing_lines())
    probe = f"""
autoload -U +X compinit && compinit -u -D
hakeep() {{ {sys.executable} -m hakeep "$@"; }}
{script.stdout}
print -r -- "registered: ${{_comps[hakeep]}}"
setopt ksharrays  # as bashcompinit's _bash_complete sets it before calling _hakeep
cf() {{
    COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=(); _hakeep
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    print -r -- "${{(M)COMPREPLY[@]:#${{cur}}*}}"
}}
{calls}
"""
    done = subprocess.run([zsh, "-f", "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=False, env={**os.environ, "HAKEEP_VRRP_PASS": "pw"})
    lines = done.stdout.splitlines()
    assert lines[0] == "registered: _bash_complete -o filenames -F _hakeep", done.stdout + done.stderr
    assert lines[1:] == EXPECTED, done.stdout + done.stderr


def test_fish_completion_in_a_real_fish() -> None:
    fish = shell_or_skip("fish")
    script = hakeep_out("completion", "fish")
    assert script.returncode == 0, script.stderr
    calls = "\n".join(f"complete -C {shlex.quote(line)}; echo ==" for line in completing_lines())
    probe = f"function hakeep; {sys.executable} -m hakeep $argv; end\n{script.stdout}\n{calls}\n"
    done = subprocess.run([fish, "--no-config", "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False, env={**os.environ, "HAKEEP_VRRP_PASS": "pw"})
    answers = done.stdout.split("==\n")[:-1]  # each: one candidate per line, a tab before any description
    assert [[c.split("\t")[0] for c in a.splitlines()] for a in answers] == [[w] for w in EXPECTED], (
        done.stdout + done.stderr)


def test_validate_checks_the_password_variables_unless_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HAKEEP_VRRP_PASS"}
    for value in (None, ""):
        done = subprocess.run([sys.executable, "-m", "hakeep", "validate", str(EXAMPLE)], capture_output=True,
                              text=True, cwd=ROOT, timeout=60, check=False,
                              env=env if value is None else {**env, "HAKEEP_VRRP_PASS": value})
        assert done.returncode == 2, done.stderr
        assert "cluster.auth_pass_env: environment variable HAKEEP_VRRP_PASS is not set" in done.stderr
    done = subprocess.run([sys.executable, "-m", "hakeep", "validate", str(EXAMPLE), "--offline"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr


def test_equal_priorities_get_a_lint_note() -> None:
    text = run_validate()
    assert ("lb: loadbalance-left, loadbalance-right share priority 100: between equals VRRP elects the one with "
            "the highest IP address") in text


def test_verbose_and_debug_show_each_remote_command_and_the_ssh_log(server: object, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from hakeep.hosts import remote
    from hakeep.hosts.connecting import connect
    from tests import sshd

    assert isinstance(server, sshd.Server)
    server.trust()
    stream = io.StringIO()
    monkeypatch.setattr(output, "_err", output._Console(file=stream, soft_wrap=True, width=1000))
    monkeypatch.setattr(remote, "TRACE", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    log = logging.getLogger("paramiko")
    handlers, level = list(log.handlers), log.level
    try:
        output.verbose(debug=True)
        t = connect(server.lb())
        try:
            t.run("echo hello; exit 3", display="say hello", privileged=False, check=False)
        finally:
            t.close()
    finally:
        for h in log.handlers[len(handlers):]:
            log.removeHandler(h)
            h.close()
        log.setLevel(level)
    text = stream.getvalue()
    assert f"ssh {sshd.LOOPBACK}: say hello (" in text or "ssh lb1: say hello (" in text, text
    assert "s, exit 3)" in text
    [path] = [w for w in text.split() if w.startswith(str(tmp_path)) and w.endswith(".log")]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert "Authentication" in Path(path).read_text() or "auth" in Path(path).read_text().lower()


def test_limit_naming_nothing_is_an_error(tmp_path: Path) -> None:
    from hakeep.cli.commands.options import checked_limit
    from hakeep.errors import UsageError
    from tests.fixtures import base_doc, load

    inv = load(tmp_path, base_doc())
    for empty in ([""], [","], [" , "]):
        with pytest.raises(UsageError, match="--limit names no LB"):
            checked_limit(inv, empty)


def test_completion_never_expands_what_a_host_named(tmp_path: Path) -> None:
    script = hakeep_out("completion", "bash").stdout
    marker = tmp_path / "pwned"
    probe = f"""
hakeep() {{ printf '%s\\n' '20261127T053012Z-4f2a9c' '$(touch {marker})' '`touch {marker}`'; }}
{script}
COMP_WORDS=(hakeep rollback inv.toml --to ''); COMP_CWORD=4; COMPREPLY=(); _hakeep
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert not marker.exists()
    assert done.stdout.splitlines() == ["20261127T053012Z-4f2a9c", f"$(touch {marker})", f"`touch {marker}`"]


@pytest.mark.parametrize("args", [("render", str(EXAMPLE)), ("validate", str(EXAMPLE)), ("completion", "bash"),
                                  ("init",)])
def test_a_reader_already_gone_is_a_quiet_exit_0(args: tuple[str, ...]) -> None:
    read, write = os.pipe()
    os.close(read)  # every write to stdout now fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "hakeep", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=60, check=False,
                              env={**os.environ, "HAKEEP_VRRP_PASS": "pw"})
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Broken pipe" not in done.stderr
