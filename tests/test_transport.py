"""The SSH transport (hakeep.hosts.transport, hakeep.hosts.sshhosts) against a real OpenSSH server on 127.0.0.1
(tests/sshd.py), plus its pure parts.

Covers: ssh_config (direct, ProxyCommand, ProxyJump), one connection reused, stdin/exit codes,
RemoteCommandError's tail, timeouts, quoting, known_hosts (unknown refused with the fingerprint
ssh-keygen prints, recorded on request in OpenSSH format, hashed entries, HostKeyAlias, changed keys
refused even with the flag), the deploy lock (busy, released on close and on SIGKILL), connect_all
keeping every outcome, and sudo with a password (through a fake sudo on the server's PATH), never
leaking the password. Without sshd the SSH tests skip -- under CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest

from hakeep.errors import HakeepError, UsageError
from hakeep.hosts import sshhosts, sshresolve
from hakeep.hosts.connecting import _settle_privilege, connect, connect_all
from hakeep.hosts.remote import (
    CommandResult,
    ConnectError,
    HostKeyError,
    LockedError,
    Privilege,
    RemoteCommandError,
    SudoError,
    Transport,
    display_of,
    privileged_stdin,
    wrap_privileged,
)
from hakeep.hosts.sshhosts import fingerprint, host_matches, known_keys
from hakeep.hosts.transport import SSHTransport, _Secret
from hakeep.run.session import SudoPassword
from tests import sshd

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t 'pw' $HOME;"


@pytest.fixture
def srv(server: sshd.Server) -> sshd.Server:
    """The server with an empty known_hosts and no sudo password set."""
    server.known_hosts.write_text("")
    for name in ("sudo.password", "sudo.argv", "sudo.nopasswd", "sudo.eatline"):
        (server.dir / name).unlink(missing_ok=True)
    return server


@pytest.fixture
def trusted(srv: sshd.Server) -> sshd.Server:
    srv.trust()
    return srv


def _ssh(t: object) -> SSHTransport:
    assert isinstance(t, SSHTransport)
    return t


# --- connecting and running -------------------------------------------------------------------


def test_run_stdin_exit_codes_and_one_connection(trusted: sshd.Server) -> None:
    before = trusted.logins()
    with _ssh(connect(trusted.lb())) as t:
        assert t.privilege is (Privilege.ROOT if os.geteuid() == 0 else Privilege.USER)
        r = t.run("echo out; echo err >&2; exit 3", check=False)
        assert (r.exit_code, r.stdout, r.stderr, r.ok) == (3, b"out\n", b"err\n", False)
        data = bytes(range(256)) * 4096  # 1 MiB, every byte value
        r = t.run("cat", stdin=data, privileged=False)
        assert r.stdout == data
        assert r.ok
        assert t.run("read -r line; echo \"got $line\"", stdin=b"hello\nrest").text() == "got hello\n"
        for _ in range(5):
            t.run("true")
    time.sleep(0.2)
    assert trusted.logins() - before == 1  # every command shared one SSH connection


def test_the_connection_sends_small_writes_at_once(trusted: sshd.Server) -> None:
    # Nagle's algorithm held a command's stdin and EOF back for the peer's delayed ACK: an upload
    # took ~90 ms instead of ~10 ms on the lab (issue #14)
    with _ssh(connect(trusted.lb())) as t:
        sock = t._cxn.client.get_transport().sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_check_raises_with_command_exit_code_and_tail(trusted: sshd.Server) -> None:
    script = "echo partial; for i in $(seq 1 30); do echo line$i >&2; done; exit 4"
    with _ssh(connect(trusted.lb())) as t, pytest.raises(RemoteCommandError) as info:
        t.run(script, display="write config")
    e = info.value
    assert (e.host, e.command, e.exit_code) == ("lb1", "write config", 4)
    assert str(e).startswith("lb1: `write config` exited with code 4")
    assert "partial" in str(e)
    assert "line30" in str(e)
    assert "line11" in str(e)
    assert "line10\n" not in str(e) + "\n"  # only the last 20 lines
    assert e.result.stderr.count(b"\n") == 30


@pytest.fixture(autouse=True)
def steps_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the test server's commands note their process group (never this machine's /run)."""
    d = tmp_path / "steps"
    monkeypatch.setattr(SSHTransport, "steps_dir", str(d))
    return d


def test_timeout(trusted: sshd.Server, tmp_path: Path, steps_dir: Path) -> None:
    """The host keeps the deadline: the command is stopped there (before: it went on and made f)."""
    flag = tmp_path / "f"
    with _ssh(connect(trusted.lb())) as t:
        start = time.monotonic()
        with pytest.raises(RemoteCommandError) as info:
            t.run(f"echo started; sleep 4; touch {flag}", timeout=0.5, check=False)
        assert time.monotonic() - start < 2.5
        assert info.value.exit_code == 124
        assert "timed out after 0.5s (stopped on the host)" in str(info.value)
        assert "started" in str(info.value)
        assert t.run("echo still usable").text() == "still usable\n"
    time.sleep(4)
    assert not flag.exists()
    assert list(steps_dir.iterdir()) == []


def test_an_interrupted_command_is_stopped_on_the_host_before_the_interrupt_goes_on(
        trusted: sshd.Server, tmp_path: Path, steps_dir: Path) -> None:
    import signal

    from hakeep import signals

    flag = tmp_path / "f"
    previous = signal.getsignal(signal.SIGTERM)
    signals.install()
    try:
        with _ssh(connect(trusted.lb())) as t:
            signal.setitimer(signal.ITIMER_REAL, 0.7)
            signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
            start = time.monotonic()
            with pytest.raises(signals.Interrupted) as info:
                t.run(f"trap '' TERM; sleep 4; touch {flag}", timeout=60)  # ignores SIGTERM: SIGKILL it is
            assert info.value.signum == signal.SIGTERM
            # the step was dead (SIGTERM, then SIGKILL 3 s later) before run() let the interrupt go on
            assert time.monotonic() - start < 6
            assert list(steps_dir.iterdir()) == []
            assert t.run("echo still usable").text() == "still usable\n"
    finally:
        for sig in signals.HANDLED:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    time.sleep(4.5)
    assert not flag.exists()


def test_cancel_stops_what_another_thread_runs(trusted: sshd.Server, tmp_path: Path, steps_dir: Path) -> None:
    flag = tmp_path / "f"
    with _ssh(connect(trusted.lb())) as t:
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(
            t.run(f"sleep 3 & sleep 3; touch {flag}", timeout=60, check=False)))
        worker.start()
        time.sleep(0.7)
        assert len(list(steps_dir.iterdir())) == 1
        assert t.cancel()
        worker.join(5)
        [res] = outcome
        assert isinstance(res, CommandResult)
        assert res.exit_code == 143
    time.sleep(3.5)
    assert not flag.exists()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def test_a_host_that_stops_answering_is_given_up_after_the_keepalives(
        trusted: sshd.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host freezes (its sshd stopped, the TCP connection still open): before, a command
    waited out its whole timeout; now 3 unanswered keepalives close the connection."""
    import signal

    from hakeep.hosts import transport

    monkeypatch.setattr(transport, "_ALIVE_EVERY", 0.5)
    with _ssh(connect(trusted.lb())) as t:
        assert (t.alive_every, t.alive_count) == (0.5, 3)
        assert t.run("echo up").text() == "up\n"
        frozen = _descendants(trusted.pid)  # the connection's own sshd processes (the listener runs on)
        assert frozen

        def freeze() -> None:
            for pid in _descendants(trusted.pid):
                frozen.append(pid)
                os.kill(pid, signal.SIGSTOP)

        try:
            threading.Timer(0.5, freeze).start()  # while the command runs
            start = time.monotonic()
            with pytest.raises(ConnectError) as info:
                t.run("sleep 30", timeout=60)
            assert time.monotonic() - start < 5
            assert str(info.value) == "lb1: the host answered no keepalive for 1.5s while running `sleep 30`"
            assert t.dead
            with pytest.raises(ConnectError) as info:  # and what comes after fails at once, saying why
                t.run("echo again")
            assert "connection lost before `echo again`: the host answered no keepalive for 1.5s" in str(info.value)
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def test_keepalive_settings_never_outlast_the_lock_holder() -> None:
    from hakeep.hosts.remote import LOCK_HEARTBEAT_TIMEOUT
    from hakeep.hosts.transport import _alive_settings

    def cfg(every: str, count: str) -> SimpleNamespace:
        return SimpleNamespace(ssh_config={"serveraliveinterval": every, "serveralivecountmax": count})

    assert _alive_settings(SimpleNamespace(ssh_config={})) == (5.0, 3)
    assert _alive_settings(cfg("2", "2")) == (2.0, 2)  # tighter: honoured
    every, count = _alive_settings(cfg("60", "10"))  # looser: capped
    assert every * count < LOCK_HEARTBEAT_TIMEOUT


def test_a_private_command_never_shows_its_output_in_errors(trusted: sshd.Server) -> None:
    with _ssh(connect(trusted.lb())) as t:
        for script, timeout in (("echo auth_pass s3cret; sleep 3", 0.5), ("echo auth_pass s3cret; exit 3", 5.0)):
            with pytest.raises(RemoteCommandError) as info:
                t.run(script, display="gather facts", timeout=timeout, private=True)
            assert "s3cret" not in str(info.value)
            assert "s3cret" not in (info.value.hint or "")
            assert info.value.stdout_tail == ""


def test_quoting_passes_scripts_intact(trusted: sshd.Server) -> None:
    payload = "it's \"quoted\" $HOME `id` $(id) ; & | \\ \\n \t tab\nsecond line\n\nlast 'line'"
    with _ssh(connect(trusted.lb())) as t:
        assert t.run(f"cat <<'EOF'\n{payload}\nEOF").text() == payload + "\n"
        r = t.run("x='a b'; printf '[%s]' \"$x\" ';' '$HOME' \"it's\"", privileged=False)
        assert r.text() == "[a b][;][$HOME][it's]"


def test_proxycommand_from_the_config_file(trusted: sshd.Server) -> None:
    log = trusted.dir / "proxy.log"
    log.unlink(missing_ok=True)
    with _ssh(connect(trusted.lb(config=trusted.proxy_config))) as t:
        assert t.run("echo via proxy").text() == "via proxy\n"
    assert log.read_text() == f"127.0.0.1 {trusted.port}\n"  # the relay carried the connection


def test_proxyjump_checks_every_hop(trusted: sshd.Server) -> None:
    before = trusted.logins()
    with _ssh(connect(trusted.lb(config=trusted.jump_config))) as t:
        assert t.run("echo via jump").text() == "via jump\n"
    time.sleep(0.2)
    assert trusted.logins() - before == 2  # the hop, then the target through it
    trusted.known_hosts.write_text("")
    with pytest.raises(HostKeyError, match="lb1: jump host jumpbox: unknown host key"):
        connect(trusted.lb(config=trusted.jump_config))


def test_connect_refused_message(srv: sshd.Server) -> None:
    port = sshd.free_port()
    with pytest.raises(ConnectError) as info:
        connect(srv.lb("loadbalance-left", port=port))
    assert str(info.value) == f"loadbalance-left: cannot connect to 127.0.0.1:{port}: connection refused"
    assert info.value.hint is not None
    assert "firewall" in info.value.hint


def test_missing_ssh_config_file(srv: sshd.Server) -> None:
    with pytest.raises(ConnectError, match=r"lb1: cannot read the ssh config .*nope"):
        connect(srv.lb(config=srv.dir / "nope"))


def close_all(outcomes: dict[str, Transport | HakeepError]) -> None:
    for outcome in outcomes.values():
        if not isinstance(outcome, HakeepError):
            outcome.close()


def test_connect_all_keeps_every_outcome_in_order(trusted: sshd.Server) -> None:
    bad_port = sshd.free_port()
    lbs = [trusted.lb("zeta"), trusted.lb("alpha", port=bad_port), trusted.lb("mid")]
    outcomes = connect_all(lbs)
    try:
        assert list(outcomes) == ["zeta", "alpha", "mid"]
        bad = outcomes["alpha"]
        assert isinstance(bad, ConnectError)
        assert bad.kind == "refused"
        assert str(bad) == f"alpha: cannot connect to 127.0.0.1:{bad_port}: connection refused"
        for name in ("zeta", "mid"):
            good = outcomes[name]
            assert not isinstance(good, HakeepError)
            assert good.run("echo ok").text() == "ok\n"
    finally:
        close_all(outcomes)
    assert connect_all([]) == {}


def test_a_host_that_never_sends_a_banner_is_cut_off_at_the_deadline(trusted: sshd.Server) -> None:
    """TCP connects, no SSH banner (a hung sshd): reported as a timeout at the deadline, not waited for."""
    import socket
    import time

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        lbs = [trusted.lb("ok"), trusted.lb("hung", port=hung.getsockname()[1])]
        start = time.monotonic()
        outcomes = connect_all(lbs, deadline=start + 1.5)
        took = time.monotonic() - start
    try:
        assert took < 5  # the banner wait alone would be 10 s; without a deadline, forever
        bad = outcomes["hung"]
        assert isinstance(bad, ConnectError)
        assert bad.kind == "timeout"
        assert "no SSH answer" in bad.message
        good = outcomes["ok"]
        assert not isinstance(good, HakeepError)
        assert good.run("echo ok").text() == "ok\n"
    finally:
        close_all(outcomes)


def test_a_dropped_host_is_a_clean_error_without_console_noise(
        trusted: sshd.Server, capfd: pytest.CaptureFixture[str]) -> None:
    t = _ssh(connect(trusted.lb()))
    try:
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(trusted.pid)], capture_output=True,
                                                   text=True, check=False).stdout.split()]
        assert children
        for pid in children:  # this sshd's per-connection processes: our connection drops
            os.kill(pid, signal.SIGKILL)

        def keep_running() -> None:
            for _ in range(50):
                t.run("true", timeout=5)
                time.sleep(0.1)

        with pytest.raises(ConnectError, match="lb1: connection lost"):
            keep_running()
    finally:
        t.close()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


# --- host keys --------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(srv: sshd.Server) -> None:
    with pytest.raises(HostKeyError) as info:
        connect(srv.lb())
    e = info.value
    assert e.fingerprint == srv.fingerprint()  # what `ssh-keygen -lf` says of the server's key
    assert e.fingerprint.startswith("SHA256:")
    assert not e.fingerprint.endswith("=")
    assert (e.key_type, e.changed) == ("ssh-ed25519", False)
    assert srv.fingerprint() in str(e)
    assert f"unknown host key for [127.0.0.1]:{srv.port}" in str(e)
    assert e.hint is not None
    assert "--accept-new-host-keys" in e.hint
    assert srv.known_hosts.read_text() == ""


def test_accept_new_records_the_key_openssh_style(srv: sshd.Server) -> None:
    with _ssh(connect(srv.lb(), accept_new_host_keys=True)) as t:
        assert t.run("echo ok").ok
        assert t.host_keys_recorded
        assert srv.fingerprint() in t.host_keys_recorded[0]
    kind, blob = srv.host_pub.read_text().split()[:2]
    assert srv.known_hosts.read_text() == f"[127.0.0.1]:{srv.port} {kind} {blob}\n"
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{srv.port}", "-f", str(srv.known_hosts)],
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0  # OpenSSH itself finds the recorded entry
    with _ssh(connect(srv.lb())) as t:  # now known: no flag needed
        assert t.host_keys_recorded == ()
    assert srv.known_hosts.read_text().count("\n") == 1


def test_changed_host_key_is_refused_even_with_the_flag(srv: sshd.Server) -> None:
    srv.trust_wrong_key()
    before = srv.known_hosts.read_text()
    for accept in (False, True):
        with pytest.raises(HostKeyError) as info:
            connect(srv.lb(), accept_new_host_keys=accept)
        e = info.value
        assert e.changed
        assert e.fingerprint == srv.fingerprint()
        assert "HOST KEY CHANGED" in str(e)
        assert e.hint is not None
        assert f"ssh-keygen -R '[127.0.0.1]:{srv.port}' -f {srv.known_hosts}" in e.hint
    assert srv.known_hosts.read_text() == before


def test_hashed_known_hosts_and_host_key_alias(srv: sshd.Server) -> None:
    srv.trust()
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(srv.known_hosts)], check=True,
                   capture_output=True)
    assert "127.0.0.1" not in srv.known_hosts.read_text()
    with _ssh(connect(srv.lb())) as t:
        assert t.run("true").ok
    srv.known_hosts.write_text("")
    srv.trust("lb-alias")
    alias = srv.dir / "ssh_config.alias"
    alias.write_text(srv.config.read_text() + "    HostKeyAlias lb-alias\n")
    with _ssh(connect(srv.lb(config=alias))) as t:
        assert t.run("true").ok


def test_known_hosts_matching() -> None:
    hashed = paramiko.HostKeys.hash_host("[10.0.0.1]:2222")
    assert host_matches(hashed, "[10.0.0.1]:2222")
    assert not host_matches(hashed, "[10.0.0.1]:22")
    assert host_matches("a,[10.0.0.1]:2222", "[10.0.0.1]:2222")
    assert not host_matches("[10.0.0.1]:2222", "1")  # brackets are literal, not a glob class
    assert host_matches("10.0.0.*", "10.0.0.7")
    assert not host_matches("10.0.0.*,!10.0.0.7", "10.0.0.7")
    assert host_matches("LB1.example", "lb1.example")
    text = "# c\n\n10.0.0.1 ssh-ed25519 AAAA\n@revoked 10.0.0.1 ssh-rsa BBBB\n@cert-authority * ssh-rsa C\nbad\n"
    assert known_keys(text, "10.0.0.1") == ([("ssh-ed25519", "AAAA")], [("ssh-rsa", "BBBB")])
    assert known_keys(text, "10.0.0.2") == ([], [])
    assert fingerprint(b"").startswith("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")


# --- the deploy lock --------------------------------------------------------------------------


def test_lock_is_exclusive_and_released_on_unlock_and_close(trusted: sshd.Server) -> None:
    path = str(trusted.dir / "hakeep.lock")
    owner = "alice@ops1 pid 42 since 2026-01-01T00:00:00Z $(touch pwned) 'q'"
    first = connect(trusted.lb())
    second = connect(trusted.lb())
    try:
        first.lock(path, owner)
        start = time.monotonic()
        with pytest.raises(LockedError) as info:
            second.lock(path, "bob@ops2 pid 7")
        assert time.monotonic() - start < 5
        assert info.value.owner == owner
        assert owner in str(info.value)
        assert not (trusted.dir / "pwned").exists()
        assert first.run("echo runs while locked").ok
        first.unlock()
        second.lock(path, "bob@ops2 pid 7")
        with pytest.raises(LockedError, match="bob@ops2 pid 7"):
            first.lock(path, owner)
        second.close()
        first.lock(path, owner)
    finally:
        first.close()
        second.close()


def test_lock_released_when_the_holder_is_killed(trusted: sshd.Server) -> None:
    path = str(trusted.dir / "killed.lock")
    lb = trusted.lb()
    child = textwrap.dedent(f"""
        import ipaddress, sys, time
        from pathlib import Path
        from hakeep.inventory.model import LoadBalancer, SSHSettings
        from hakeep.hosts.connecting import connect
        ssh = SSHSettings(None, None, None, Path({str(lb.ssh.config)!r}), False, 5.0)
        t = connect(LoadBalancer("lb1", ipaddress.IPv4Address("127.0.0.1"), "eth0", 100, ssh))
        t.lock({path!r}, "doomed pid 1")
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready
        assert proc.stdout.readline() == b"locked\n"
        with _ssh(connect(lb)) as t:
            with pytest.raises(LockedError, match="doomed pid 1"):
                t.lock(path, "next")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 15
            while True:
                try:
                    t.lock(path, "next")
                    break
                except LockedError:
                    assert time.monotonic() < deadline, "the lock outlived its killed holder"
                    time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_a_run_whose_lock_holder_is_gone_starts_nothing(trusted: sshd.Server, tmp_path: Path) -> None:
    """The host let go of the lock (no heartbeat came in time): another run may hold it now, so this
    connection starts nothing more, not even a restore."""
    with _ssh(connect(trusted.lb())) as t:
        path = str(tmp_path / "gone.lock")
        t.lock(path, "me")
        holder = t.run(f"fuser {path} 2>/dev/null || true", privileged=False).text().split()
        for pid in holder:  # the holder shell, as if its heartbeat timed out
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        lock = t._lock_chan
        assert lock is not None
        assert lock.status_event.wait(10)
        with pytest.raises(ConnectError, match=f"lost the deploy lock {path}"):
            t.run("echo hi")


# --- sudo -------------------------------------------------------------------------------------


def test_privileged_command_shapes() -> None:
    script = "echo 'a' \"$b\"; c\nd"
    sh = ["/bin/sh", "-c", script]
    assert shlex.split(wrap_privileged(script, Privilege.ROOT)) == sh
    assert shlex.split(wrap_privileged(script, Privilege.USER)) == sh
    assert shlex.split(wrap_privileged(script, Privilege.SUDO)) == ["sudo", "-n", "--", *sh]
    argv = shlex.split(wrap_privileged(script, Privilege.SUDO_STDIN))
    assert argv[:8] == ["sudo", "-k", "-S", "-p", "", "--", "/bin/sh", "-c"]
    assert argv[8].startswith("while IFS= read -r hk_line && [ \"$hk_line\" != hakeep-sudo-fence-")
    assert argv[8].endswith("\n" + script)  # the script runs once the fence is read
    fence = argv[8].split("!= ", 1)[1].split(" ", 1)[0].encode()
    assert privileged_stdin(Privilege.SUDO_STDIN, "pw", b"data") == b"pw\n" + fence + b"\ndata"
    assert privileged_stdin(Privilege.SUDO_STDIN, "pw", b"") == b"pw\n" + fence + b"\n"
    with pytest.raises(ValueError, match="one line"):
        privileged_stdin(Privilege.SUDO_STDIN, "pw\nrm -rf /", b"")
    for mode in (Privilege.ROOT, Privilege.USER, Privilege.SUDO):
        assert privileged_stdin(mode, "pw", b"data") == b"data"
    with pytest.raises(ValueError, match="needs a password"):
        privileged_stdin(Privilege.SUDO_STDIN, None, b"")


def test_display_and_result() -> None:
    assert display_of("systemctl reload haproxy\n") == "systemctl reload haproxy"
    assert display_of("a\nb") == "a..."
    assert len(display_of("x" * 200)) == 80
    assert display_of("anything", "shown") == "shown"
    r = CommandResult("c", 0, b"\xffok", b"")
    assert r.ok
    assert r.text() == "\ufffdok"


def test_sudo_with_password_end_to_end(trusted: sshd.Server) -> None:
    (trusted.dir / "sudo.password").write_text(SECRET + "\n")
    calls: list[int] = []

    def password() -> str:
        calls.append(1)
        return SECRET

    with _ssh(connect(trusted.lb())) as t:
        t.user = "ops"  # pretend: the fake sudo on the server's PATH then does the rest for real
        _settle_privilege(trusted.lb(sudo=True), t, password)
        assert t.privilege is Privilege.SUDO_STDIN
        assert calls == [1]
        r = t.run("cat; echo end", stdin=b"payload\n")
        assert r.stdout == b"payload\nend\n"  # sudo took the password line, the script the rest
        with pytest.raises(RemoteCommandError) as info:
            t.run("echo failing >&2; exit 2")
        assert t.run("id -u", privileged=False).ok
        argv = (trusted.dir / "sudo.argv").read_text()
        assert "-k -S -p  -- /bin/sh -c while IFS= read -r hk_line" in argv
        assert "\nmkdir -p -m 700" in argv  # the command under its deadline
        assert "\ncat; echo end'\n" in argv
        for text in (argv, repr(t), repr(vars(t)), str(info.value), repr(info.value.result), str(t._password)):
            assert SECRET not in text
        # a NOPASSWD rule for the command: sudo reads no password; the script still never sees it
        (trusted.dir / "sudo.nopasswd").touch()
        r = t.run("cat; echo end", stdin=b"payload\n")
        assert r.stdout == b"payload\nend\n"
        assert t.run("cat", stdin=SECRET.encode() + b" in a file\n").stdout == SECRET.encode() + b" in a file\n"
        # sudo read a line more (the fence): the script must not run on what is left of its input
        (trusted.dir / "sudo.nopasswd").unlink()
        (trusted.dir / "sudo.eatline").touch()
        r = t.run("cat > /dev/null; echo ran", stdin=b"payload\n", check=False)
        assert (r.exit_code, r.stdout) == (125, b"")
        assert b"no fence after the sudo password" in r.stderr
    assert calls == [1]


@pytest.mark.parametrize("value", ["pw\nrm -rf /", "pw\r", "pw\0x"])
def test_a_sudo_password_of_more_than_one_line_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match="holds a line break or a NUL") as info:
        SudoPassword({"HAKEEP_SUDO_PASSWORD": value}, interactive=False)()
    assert value not in str(info.value) + str(info.value.hint)


@pytest.mark.parametrize("password", ["root", "AAAA", "0644", "hakeep", "end"])
def test_output_that_holds_the_sudo_password_is_left_as_it_is(trusted: sshd.Server, password: str) -> None:
    """Output is never rewritten (it held `<hidden>` for `root` as a file owner, and a piece of
    base64 broke the facts), because the password never enters it in the first place."""
    (trusted.dir / "sudo.password").write_text(password + "\n")
    with _ssh(connect(trusted.lb())) as t:
        t.user = "ops"
        _settle_privilege(trusted.lb(sudo=True), t, lambda: password)
        assert t.privilege is Privilege.SUDO_STDIN
        text = "owner root, mode 0644, key AAAAB3NzaC1 hakeep end\n"
        assert t.run(f"printf '%s\\n' {shlex.quote(text.strip())}").text() == text
        assert t.run("cat", stdin=b"no password here\n").stdout == b"no password here\n"


def test_sudo_passwordless_wrong_password_and_none(trusted: sshd.Server) -> None:
    with _ssh(connect(trusted.lb())) as t:
        t.user = "ops"
        _settle_privilege(trusted.lb(sudo=True), t, None)
        assert t.privilege is Privilege.SUDO
        assert t.run("echo hi", stdin=b"").text() == "hi\n"
        argv = (trusted.dir / "sudo.argv").read_text()
        assert "-n -- /bin/sh -c mkdir -p -m 700" in argv
        assert "\necho hi'\n" in argv

        (trusted.dir / "sudo.password").write_text("the real one\n")
        with pytest.raises(SudoError, match="sudo asks ops for a password"):
            _settle_privilege(trusted.lb(sudo=True), t, None)
        with pytest.raises(SudoError) as info:
            _settle_privilege(trusted.lb(sudo=True), t, lambda: SECRET)
        e = info.value
        assert str(e) == "sudo password rejected on lb1 (user ops)"
        assert e.hint == "sudo said: sudo: 1 incorrect password attempt"
        assert SECRET not in repr(e.args) + str(e) + str(e.hint) + repr(t)


def test_no_sudo_runs_as_the_login_user_and_nothing_shows_a_password(server: sshd.Server) -> None:
    t = SSHTransport("lb9", SimpleNamespace(host="10.0.0.9", port=22, user="ops"))

    def never() -> str:
        raise AssertionError("no password is needed without sudo")

    _settle_privilege(server.lb(sudo=False), t, never)  # runs nothing on the host
    assert t.privilege is Privilege.USER
    t._password = _Secret(SECRET)
    assert SECRET not in repr(t) + repr(vars(t)) + str(t._password)
    assert repr(t) == "<SSHTransport lb9 ops@10.0.0.9:22 privilege=user>"


def test_defaults_home_ssh_config_known_hosts_and_inventory_overrides(
        srv: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # $HOME's ~/.ssh: hakeep's own reading (OpenSSH's client would read the passwd entry's home)
    monkeypatch.setattr(sshresolve, "ssh_client", lambda: None)
    monkeypatch.setattr(sshhosts, "SYSTEM_CONFIG", tmp_path / "no-system-config")  # Debian's has an Include
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (tmp_path / ".ssh").mkdir(mode=0o700)
    (tmp_path / ".ssh" / "config").write_text("Host 127.0.0.1\n    IdentitiesOnly yes\n")
    lb = srv.lb()
    ssh = replace(lb.ssh, config=None, user=srv.user, port=srv.port,
                  identity_file=srv.dir / "id_ed25519")  # everything from the inventory
    lb = replace(lb, ssh=ssh)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    with pytest.raises(HostKeyError, match="unknown host key"):
        connect(lb)
    with _ssh(connect(lb, accept_new_host_keys=True)) as t:
        assert t.run("echo ok").ok
    known = tmp_path / ".ssh" / "known_hosts"
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{srv.port}", "-f", str(known)],
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0  # plain or hashed (HashKnownHosts in /etc/ssh/ssh_config), OpenSSH finds it
    with _ssh(connect(lb)) as t:
        assert t.run("echo again").ok


def test_a_failing_proxycommand_is_named(trusted: sshd.Server) -> None:
    port = sshd.free_port()
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        connect(trusted.lb(config=trusted.proxy_config, port=port, timeout=10.0))
    assert time.monotonic() - start < 5  # a dead proxy is EOF at once, not a wait for the timeout
    assert f"the ProxyCommand exited with code 255: relay: 127.0.0.1:{port}:" in str(info.value)
    assert str(info.value).startswith(f"lb1: cannot connect to 127.0.0.1:{port} (through ProxyCommand sh -c")


def test_login_failures_are_named(trusted: sshd.Server) -> None:
    lb = trusted.lb()
    with pytest.raises(ConnectError) as info:
        connect(replace(lb, ssh=replace(lb.ssh, user="nosuchuser")))
    assert str(info.value) == (f"lb1: cannot log in to 127.0.0.1:{trusted.port} as nosuchuser: "
                               "authentication failed")
    assert info.value.hint is not None
    assert "identity_file" in info.value.hint
    with pytest.raises(ConnectError, match="is not a login name"):
        connect(replace(lb, ssh=replace(lb.ssh, user="root\n    ProxyCommand x")))
    with pytest.raises(ConnectError, match=r"lb1: cannot read the identity_file .*/nokey"):
        connect(replace(lb, ssh=replace(lb.ssh, identity_file=trusted.dir / "nokey")))
