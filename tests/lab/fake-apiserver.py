#!/usr/bin/python3
"""Stand-in for kube-apiserver on the lab's master hosts (python3 stdlib only).

- https://0.0.0.0:6443  /readyz /healthz /livez -> 200 "<hostname>\n"
                        (500 "<hostname> unhealthy\n" while FLAG exists), other paths -> 200 too
- http://0.0.0.0:30080  any path -> 200 "<hostname>\n" (a NodePort-like ingress)

The body names the host, so round robin through a load balancer is visible.
`tests/lab/lab master HOST unhealthy|healthy` creates/removes FLAG.
"""
import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = socket.gethostname()
FLAG = "/etc/hklab/unhealthy"
TLS_DIR = "/etc/hklab/tls"
HEALTH_PATHS = ("/readyz", "/healthz", "/livez")


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
        if self.server.tls and path in HEALTH_PATHS and os.path.exists(FLAG):
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


def main():
    servers = [Server(("0.0.0.0", 6443), tls=True), Server(("0.0.0.0", 30080), tls=False)]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"{NAME}: serving https :6443 and http :30080", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    sys.exit(main())
