#!/usr/bin/python3
"""stdio <-> TCP relay, run INSIDE the lab's control namespace.

    ip netns exec hklab-ctl /usr/bin/python3 relay.py HOST PORT
        ssh ProxyCommand (OpenSSH `ssh -F` and paramiko.ProxyCommand): the
        connection starts in hklab-ctl, never in the machine's own namespace.
    ip netns exec hklab-ctl /usr/bin/python3 relay.py --wait-ssh SECONDS ADDR...
        wait (bounded) until sshd on every ADDR sends its banner; exit 1 on timeout.
"""
import contextlib
import os
import socket
import sys
import threading
import time


def relay(host, port):
    try:
        s = socket.create_connection((host, int(port)), timeout=10)
    except OSError as e:
        sys.stderr.write(f"relay: {host}:{port}: {e}\n")
        return 255
    s.settimeout(None)

    def pump_out():  # stdin -> socket
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                s.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump_out, daemon=True).start()
    out = sys.stdout.buffer
    try:
        while True:  # socket -> stdout
            data = s.recv(65536)
            if not data:
                break
            out.write(data)
            out.flush()
    except (OSError, BrokenPipeError):
        pass
    return 0


def banner(addr):
    try:
        with socket.create_connection((addr, 22), timeout=2) as s:
            s.settimeout(2)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(timeout, addrs):
    deadline = time.monotonic() + timeout
    pending = list(addrs)
    while pending and time.monotonic() < deadline:
        pending = [a for a in pending if not banner(a)]
        if pending:
            time.sleep(0.2)
    if pending:
        sys.stderr.write(f"relay: sshd not answering after {timeout}s on: {' '.join(pending)}\n")
        return 1
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "--wait-ssh":
        return wait_ssh(float(argv[2]), argv[3:])
    if len(argv) == 3:
        return relay(argv[1], argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
