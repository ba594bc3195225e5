#!/bin/sh
# Managed by hakeep (cluster devops, host loadbalance-right).
# keepalived's health check: exit 0 only while haproxy runs and listens on every frontend port.
# Read-only: needs neither killall (psmisc) nor a pid file.
systemctl is-active --quiet haproxy.service || exit 1
command -v ss >/dev/null 2>&1 || exit 0
for port in 6443 30080; do
    ss -ltn "sport = :$port" | grep -q LISTEN || exit 1
done
exit 0
