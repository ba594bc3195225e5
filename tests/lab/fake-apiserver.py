#!/usr/bin/python3
"""Stand-in for kube-apiserver on the lab's master hosts (python3 stdlib only).

- https://[::]:6443  /readyz /healthz /livez -> 200 "<hostname>\n"
                     (500 "<hostname> unhealthy\n" while FLAG exists), other paths -> 200 too
- http://[::]:30080  any path -> 200 "<hostname>\n" (a NodePort-like ingress)

Both on IPv4 and IPv6 (one dual-stack socket each: the lab's hosts have both).

The body names the host, so round robin through a load balancer is visible.
`tests/lab/lab master HOST unhealthy|healthy` creates/removes FLAG.

SIGTERM (systemctl stop/restart) shuts down as kube-apiserver does with --shutdown-delay-duration:
the health paths answer 500 at once while everything else is still served for DELAY seconds (from
DELAY_FILE, default 0), then the listeners close. `lab master HOST restart SECONDS` uses it.
"""
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = socket.gethostname()
FLAG = "/etc/hklab/unhealthy"
TLS_DIR = "/etc/hklab/tls"
DELAY_FILE = "/etc/hklab/shutdown-delay"
HEALTH_PATHS = ("/readyz", "/healthz", "/livez")
UNREADY = threading.Event()  # set from SIGTERM on: shutting down


class Handler(BaseHTTPRequestHandler):
    server_version = "hklab-apiserver"
    timeout = 10  # seconds, per connection (slow or silent health-check clients)

    def setup(self):
        super().setup()
        if self.server.tls:  # handshake here, in the connection's thread
            self.request.do_handshake()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        code, body = 200, NAME + "\n"
        if self.server.tls and path in HEALTH_PATHS and (os.path.exists(FLAG) or UNREADY.is_set()):
            code, body = 500, NAME + " unhealthy\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Lab-Host", NAME)
        self.end_headers()
        self.wfile.write(data)

    do_HEAD = do_GET

    def log_message(self, fmt, *args):  # keep the journal quiet
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 clients too
        super().server_bind()

    def __init__(self, addr, tls):
        super().__init__(addr, Handler)
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(f"{TLS_DIR}/server.crt", f"{TLS_DIR}/server.key")

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):  # TLS probes that hang up etc.
        pass


def shutdown_delay():
    try:
        with open(DELAY_FILE) as f:
            return max(0.0, float(f.read().strip() or 0))
    except (OSError, ValueError):
        return 0.0


def main():
    servers = [Server(("::", 6443), tls=True), Server(("::", 30080), tls=False)]

    def stop_later(delay):
        time.sleep(delay)
        print(f"{NAME}: closing the listeners", flush=True)
        for s in servers:
            s.shutdown()

    def on_term(signum, frame):  # unready now, serving for DELAY more seconds, then gone
        if not UNREADY.is_set():
            UNREADY.set()
            delay = shutdown_delay()
            print(f"{NAME}: SIGTERM: unready, serving {delay:g}s more", flush=True)
            threading.Thread(target=stop_later, args=(delay,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    print(f"{NAME}: serving https :6443 and http :30080", flush=True)
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    for s in servers:
        s.server_close()
    time.sleep(0.5)  # requests in flight finish


if __name__ == "__main__":
    sys.exit(main())
