"""Security of rendering (issue #13, items 1-4 and 7): one table per attack, so each stays fixed.

1. nothing from the inventory's file name reaches a rendered file;  2. ``render -o`` writes through
no planted link and refuses a folder others may write to;  3. secrets are masked structurally (a
password that is also an ordinary word garbles nothing);  4. every secret directive is masked in
diffs, whoever wrote the file;  7. templates run in Jinja2's sandbox with StrictUndefined.
"""

from __future__ import annotations

import difflib
import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hakeep.cli import jsondoc
from hakeep.errors import UsageError
from hakeep.inventory.load import load_inventory
from hakeep.layout import CHECK_ROOT, CHECK_SCRIPT, HAPROXY_CFG, KEEPALIVED_CONF, NOTIFY_SCRIPT
from hakeep.plan.planner import build_plan
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from hakeep.render.masking import MASK, mask_directives, split_lines, unified_diff
from tests.fakes import facts, with_files
from tests.fixtures import base_doc, write

PASSWORD = "vrrpPw1"
L, R = ("loadbalance-left", "10.220.62.32"), ("loadbalance-right", "10.220.62.33")


def files_of(path: Path, secrets: Secrets | None = None) -> dict[str, dict[str, bytes]]:
    hosts = render_all(load_inventory(path), secrets or Secrets(auth_pass=PASSWORD))
    return {name: {f.path: f.content for f in h.files} for name, h in hosts.items()}


def hakeep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "HAKEEP_VRRP_PASS": PASSWORD, **(env or {})}, timeout=60)


def stats_doc() -> dict[str, object]:
    doc = base_doc()
    doc["haproxy"] = {"stats": {"password_env": "HAKEEP_STATS_PASS"}}
    return doc


# --- item 1: the inventory's file name ------------------------------------------------------------

FILE_NAMES = [
    "x\nid>PWNED\n#.toml",  # a newline ends the comment: the check script keepalived runs as root ran `id`
    "$(id>PWNED).toml",
    "`id>PWNED`.toml",
    "a b; id>PWNED .toml",
    "%(x)s {{ 7*7 }} {% raw %}.toml",
    "ünïcode-\u202e.toml",
    "/tmp-copy-01234567.toml",  # a CI job's temp copy of the same inventory
]


@pytest.mark.parametrize("name", FILE_NAMES)
def test_the_inventory_file_name_reaches_no_rendered_file(tmp_path: Path, name: str) -> None:
    original = write(tmp_path, base_doc())
    baseline = files_of(original)
    folder = tmp_path / "copies"
    folder.mkdir()
    copy = folder / name.lstrip("/")
    copy.write_text(original.read_text())
    rendered = files_of(copy)
    assert rendered == baseline  # byte for byte: a renamed copy changes no file and reloads nothing
    for files in rendered.values():
        for content in files.values():
            assert b"PWNED" not in content
            assert b"49" not in content.split(b"\n", 3)[1]


def test_render_o_writes_no_injected_command(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / FILE_NAMES[0]
    path.write_text(write(tmp_path, base_doc()).read_text())
    out = tmp_path / "out"
    proc = hakeep("render", str(path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    script = (out / L[0] / CHECK_SCRIPT.lstrip("/")).read_text()
    assert "PWNED" not in script
    assert "\nid" not in script


# --- item 2: render -o and planted links ----------------------------------------------------------


def plant_tmp_link(out: Path, victim: Path) -> None:
    """The old fixed temp name, a link to a file the attacker wants overwritten."""
    folder = out / L[0] / "etc/keepalived"
    folder.mkdir(parents=True)
    (folder / "keepalived.conf.hakeep-tmp").symlink_to(victim)


def plant_final_link(out: Path, victim: Path) -> None:
    folder = out / L[0] / "etc/keepalived"
    folder.mkdir(parents=True)
    (folder / "keepalived.conf").symlink_to(victim)


def plant_folder_link(out: Path, victim: Path) -> None:
    (out / L[0]).mkdir(parents=True)
    victim_dir = victim.parent / "victim-etc"
    victim_dir.mkdir()
    (out / L[0] / "etc").symlink_to(victim_dir)


PLANTS = [  # (how, exit code, what the one error line says)
    (plant_tmp_link, 0, None),
    (plant_final_link, 0, None),
    (plant_folder_link, 2, "is a symbolic link or not a folder; not following it"),
]


@pytest.mark.parametrize(("plant", "code", "message"), PLANTS, ids=[p[0].__name__ for p in PLANTS])
def test_render_o_follows_no_planted_link(tmp_path: Path, plant: object, code: int, message: str | None) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    out = tmp_path / "out"
    plant(out, victim)  # type: ignore[operator]
    proc = hakeep("render", str(write(tmp_path, base_doc())), "-o", str(out))
    assert proc.returncode == code, proc.stderr
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not any((tmp_path / "victim-etc").glob("**/*")) if (tmp_path / "victim-etc").exists() else True
    if message is None:
        conf = out / L[0] / KEEPALIVED_CONF.lstrip("/")
        assert not conf.is_symlink()
        assert f"auth_pass {PASSWORD}" in conf.read_text()
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert not list(conf.parent.glob(".keepalived.conf.*.hakeep-tmp"))  # no temp file of its own left
    else:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1
        assert message in errors[0]
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("mode", "group"), [(0o777, None), (0o775, 1), (0o1777, None), (0o757, None)])
def test_render_o_refuses_a_folder_others_can_write(tmp_path: Path, mode: int, group: int | None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if group is not None:
        os.chown(out, -1, group)  # a group others are in (daemon's)
    out.chmod(mode)
    proc = hakeep("render", str(write(tmp_path, base_doc())), "-o", str(out))
    assert proc.returncode == 2
    assert f"{out} is writable by other users" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


def test_render_o_takes_a_folder_its_users_private_group_can_write(tmp_path: Path) -> None:
    """umask 002 with user private groups (Debian's for people) makes folders 0775: that group is
    this user alone."""
    me = pwd.getpwuid(os.getuid())
    if grp.getgrgid(me.pw_gid).gr_name != me.pw_name:
        pytest.skip("this user has no private group")
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, -1, me.pw_gid)
    out.chmod(0o775)
    assert hakeep("render", str(write(tmp_path, base_doc())), "-o", str(out)).returncode == 0


def test_render_o_refuses_a_subfolder_others_can_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / L[0] / "etc").mkdir(parents=True)
    (out / L[0] / "etc").chmod(0o777)
    proc = hakeep("render", str(write(tmp_path, base_doc())), "-o", str(out))
    assert proc.returncode == 2
    assert "etc is writable by other users" in proc.stderr
    assert list((out / L[0] / "etc").iterdir()) == []


def test_render_o_in_a_setgid_folder_keeps_files_to_this_users_group(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, -1, 1)  # daemon's group, as a shared setgid folder would be
    out.chmod(0o2755)
    proc = hakeep("render", str(write(tmp_path, stats_doc())), "-o", str(out), env={"HAKEEP_STATS_PASS": "st4tsPw9"})
    assert proc.returncode == 0, proc.stderr
    cfg = out / L[0] / HAPROXY_CFG.lstrip("/")
    assert "st4tsPw9" in cfg.read_text()
    assert cfg.stat().st_gid == os.getegid()
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o640


# --- item 3: structural masking -------------------------------------------------------------------

ORDINARY_WORDS = ["haproxy", "root", "global", "tcp", "check", "server", "inter", "1", "daemon", "hakeep", "devops"]


@pytest.mark.parametrize("password", ORDINARY_WORDS)
def test_a_password_that_is_an_ordinary_word_garbles_nothing(tmp_path: Path, password: str) -> None:
    inv = load_inventory(write(tmp_path, stats_doc()))
    for host in render_all(inv, Secrets(auth_pass=password, stats_password=password)).values():
        for f in host.files:
            real, shown = f.content.decode().splitlines(), f.masked_text().splitlines()
            assert len(real) == len(shown)
            for a, b in zip(real, shown, strict=True):
                if "auth_pass" in a or "stats auth" in a:
                    assert b.endswith(MASK)
                    assert not b.endswith(password)
                elif a.strip().startswith("router_id"):  # its digest, of the real file, would let one try passwords
                    assert b == a[:-12] + "*" * 12
                else:
                    assert a == b  # `chroot /var/lib/haproxy`, `user haproxy` stay as they are


@pytest.mark.parametrize("password", ORDINARY_WORDS[:4])
def test_render_prints_every_line_but_the_secret_ones_as_is(tmp_path: Path, password: str) -> None:
    path = write(tmp_path, stats_doc())
    proc = hakeep("render", str(path), env={"HAKEEP_VRRP_PASS": password, "HAKEEP_STATS_PASS": password})
    assert proc.returncode == 0, proc.stderr
    printed = set(proc.stdout.splitlines())
    for host in render_all(load_inventory(path), Secrets(password, password)).values():
        for f in host.files:
            for line in f.content.decode().splitlines():
                if not any(k in line for k in ("auth_pass", "stats auth", "router_id")):
                    assert line in printed
    assert "chroot /var/lib/haproxy" in proc.stdout
    assert f"auth_pass {MASK}" in proc.stdout
    assert f"stats auth admin:{MASK}" in proc.stdout
    assert f"auth_pass {password}" not in proc.stdout
    assert f":{password}" not in proc.stdout


def test_a_changed_password_shows_as_one_masked_line(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, base_doc()))
    old = render_all(inv, Secrets(auth_pass="haproxy"))[L[0]].file(KEEPALIVED_CONF)
    new = render_all(inv, Secrets(auth_pass="global"))[L[0]].file(KEEPALIVED_CONF)
    diff = unified_diff(KEEPALIVED_CONF, old.content, new.content, new.shown)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    # the password line, and the router_id that carries the file's digest
    assert [c for c in changed if "auth_pass" in c] == [f"-        auth_pass {MASK}", f"+        auth_pass {MASK}"]
    assert "global" not in diff.replace("global_defs", "")


# --- item 4: secrets in files hakeep did not write -----------------------------------------------

HAND_WRITTEN = [  # (a line of a live config, the secret in it)
    ("    stats auth admin:hunter2\n", "hunter2"),
    ("\tstats   auth\tadmin:hunter2  # the old one\n", "hunter2"),
    ('    stats auth "admin:hunter 2"\n', "hunter 2"),
    ("    stats auth admin:hun\\ ter2\n", "ter2"),
    ("    stats auth hunter2\n", "hunter2"),
    ("    user bob insecure-password hunter2 groups ops\n", "hunter2"),
    ("    user bob password $6$salt$c2VjcmV0aGFzaA groups ops\n", "c2VjcmV0aGFzaA"),
    ("    insecure-password hunter2\n", "hunter2"),
    ("        auth_pass hunter2\n", "hunter2"),
    ("        auth_pass\t'hunter2'\n", "hunter2"),
    ("    authentication { auth_type PASS auth_pass hunter2 }\n", "hunter2"),
    ("#       auth_pass hunter2\n", "hunter2"),
    # the parsers undo quotes and escapes and take any blank: so must the masking
    ('    stats "auth" admin:hunter2\n', "hunter2"),
    ("    st'ats' auth admin:hunter2\n", "hunter2"),
    ("    stats au\\x74h admin:hunter2\n", "hunter2"),
    ("    stats auth\fadmin:hunter2\n", "hunter2"),
    ("    stats\vauth admin:hunter2\r\n", "hunter2"),
    ('    user bob "insecure-password" hunter2\n', "hunter2"),
    ('    "user" bob password c2VjcmV0aGFzaA\n', "c2VjcmV0aGFzaA"),
    ('    "auth_pass" hunter2\n', "hunter2"),
    ("    auth_pass hun\\ ter2\n", "ter2"),
    # comments without a blank after the sign (haproxy `#`, keepalived `#` and `!`)
    ("#stats auth admin:hunter2\n", "hunter2"),
    ("#auth_pass hunter2\n", "hunter2"),
    ("!auth_pass hunter2\n", "hunter2"),
    ("#user bob password c2VjcmV0aGFzaA\n", "c2VjcmV0aGFzaA"),
    # secrets kept in variables
    ("$VRRP_PASS=hunter2 and more\n", "hunter2"),
    ("    setenv DB_PASSWORD hunter2\n", "hunter2"),
    ('    presetenv API_TOKEN "hunter2"\n', "hunter2"),
    # the digest hakeep ends router_id with: taken over the real file, it lets one try passwords
    ("    router_id hklab-lb1-0123456789ab\n", "0123456789ab"),
]


@pytest.mark.parametrize(("line", "secret"), HAND_WRITTEN)
def test_diffs_of_hand_written_configs_mask_their_secrets(line: str, secret: str) -> None:
    old = f"global\n    daemon\n{line}defaults\n    mode tcp\n".encode()
    for new in (b"global\n    daemon\n", None, old + b"# more\n"):  # changed, removed, the line as context
        diff = unified_diff("/etc/haproxy/haproxy.cfg", old, new)
        assert diff
        assert secret not in diff
        assert MASK in diff
    assert secret not in mask_directives(line)


@pytest.mark.parametrize(("line", "secret"), HAND_WRITTEN)
def test_dry_run_and_json_mask_hand_written_secrets(tmp_path: Path, line: str, secret: str) -> None:
    inv = load_inventory(write(tmp_path, base_doc()))
    live = f"# by hand\nglobal\n{line}".encode()
    left = with_files(facts(*L), {HAPROXY_CFG: (live, 0o644), KEEPALIVED_CONF: (live, 0o600)})
    secrets = Secrets(auth_pass=PASSWORD)
    plan = build_plan(inv, {L[0]: left, R[0]: facts(*R)}, render_all(inv, secrets),
                      render_all(inv, secrets, root=CHECK_ROOT + "r1"), release_id="r1", now="2026-11-28T00:00:00Z",
                      operator="t@ci")
    doc = jsondoc.dump(jsondoc.plan_doc(plan, dry_run=True))
    assert secret not in doc
    assert PASSWORD not in doc
    diffs = [c.diff for c in plan.host(L[0]).changes]
    assert any(MASK in d for d in diffs)
    assert json.loads(doc)["hosts"][0]["files"]


def test_masking_takes_linear_time_on_hostile_lines() -> None:
    """A regex with nested choices took exponential time on `user a can't can't ...` (7.5 s for 10
    words, doubling thrice per word): every line of every live file goes through the masking."""
    lines = ["user admin" + " can't" * 2000, 'user a' + ' ""' * 5000, "stats auth " + "'" * 10000,
             '"' * 10000, "\\" * 10000 + "x", "auth_pass " * 5000]
    code = ("import sys; from hakeep.render.masking import mask_directives as m; "
            "[m(line) for line in sys.stdin.read().split(chr(0))]; print('done')")
    proc = subprocess.run([sys.executable, "-c", code], input="\0".join(lines), capture_output=True, text=True,
                          timeout=60, check=False)  # a hang guard: linear time takes well under a second
    assert proc.stdout == "done\n", proc.stderr


@pytest.mark.parametrize("case", ["changed", "removed"])
def test_a_template_secret_on_a_removed_line_is_masked(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    line = "curl -fsu admin:{{ stats_password }} http://127.0.0.1:8404/ >/dev/null\n"
    (folder / "check_haproxy.sh.j2").write_text("#!/bin/sh\n" + line + "exit 0\n")
    inv = load_inventory(write(tmp_path, stats_doc()))
    secrets = Secrets(auth_pass=PASSWORD, stats_password="st4tsPw9")
    f = render_all(inv, secrets, templates=folder)[L[0]].file(CHECK_SCRIPT)
    live = f.content.replace(b"http://127.0.0.1", b"http://localhost")
    diff = unified_diff(f.path, live, f.content if case == "changed" else None, f.shown, f.secrets)
    assert "-curl -fsu admin:******** http://localhost" in diff
    assert "st4tsPw9" not in diff


def test_a_template_error_never_quotes_a_secret(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "keepalived.conf.j2").write_text("{{ cluster[auth_pass] }}\n")
    with pytest.raises(UsageError) as info:
        render_all(load_inventory(write(tmp_path, base_doc())), Secrets(auth_pass=PASSWORD), templates=folder)
    assert PASSWORD not in str(info.value)
    (folder / "keepalived.conf.j2").write_text("{{ 1 // (auth_pass|length - 7) }}\n")  # fails with the real one only
    with pytest.raises(UsageError) as info:
        render_all(load_inventory(write(tmp_path, base_doc())), Secrets(auth_pass=PASSWORD), templates=folder)
    assert str(info.value) == "template keepalived.conf.j2: fails with the real passwords (it depends on their values)"


@settings(max_examples=300, deadline=None)
@given(st.text("ab \n", max_size=60), st.text("ab \n", max_size=60))
def test_the_diff_is_difflibs_when_nothing_is_secret(old: str, new: str) -> None:
    expected = difflib.unified_diff(split_lines(old), split_lines(new), fromfile="f (live)", tofile="f (new)")
    want = "".join(line if line.endswith("\n") else line + "\n" for line in expected)
    assert unified_diff("f", old.encode(), new.encode()) == want


@pytest.mark.parametrize("line", ["    user haproxy\n", "    stats uri /stats\n", "    group haproxy\n",
                                  "    chroot /var/lib/haproxy\n", "    auth_type PASS\n", "  stats auth\n"])
def test_lines_that_only_look_like_secrets_stay(line: str) -> None:
    assert mask_directives(line) == line


# --- item 7: templates in the sandbox -------------------------------------------------------------

HOSTILE_TEMPLATES = [  # (keepalived.conf.j2 of a --templates folder, what the error says)
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cluster.__class__.__init__.__globals__ }}", "unsafe"),
    ("{{ ca_paths.clear() }}", "unsafe"),
    ("{{ frontends.__len__.__self__ }}", "unsafe"),
    ("{{ no_such_value }}", "undefined"),
    ("{{ lb.no_such_field }}", "no_such_field"),
    ("{% for x in range(10**9) %}{% endfor %}", "Range too big"),
]


@pytest.mark.parametrize(("template", "message"), HOSTILE_TEMPLATES)
def test_user_templates_run_sandboxed_and_strict(tmp_path: Path, template: str, message: str) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "keepalived.conf.j2").write_text(template + "\n")
    inv = load_inventory(write(tmp_path, base_doc()))
    with pytest.raises(UsageError) as info:
        render_all(inv, Secrets(auth_pass=PASSWORD), templates=folder)
    assert str(info.value).startswith("template keepalived.conf.j2")
    assert message in str(info.value)
    proc = hakeep("render", str(write(tmp_path, base_doc())), "--templates", str(folder))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


def test_a_user_template_that_prints_a_secret_elsewhere_is_masked_there(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "notify.sh.j2").write_text("#!/bin/sh\n# pw {{ auth_pass }}\nexit 0\n")
    inv = load_inventory(write(tmp_path, base_doc()))
    f = render_all(inv, Secrets(auth_pass=PASSWORD), templates=folder)[L[0]].file(NOTIFY_SCRIPT)
    assert f"# pw {PASSWORD}" in f.content.decode()
    assert f.masked_text() == f"#!/bin/sh\n# pw {MASK}\nexit 0\n"
    assert PASSWORD not in unified_diff(f.path, None, f.content, f.shown)
