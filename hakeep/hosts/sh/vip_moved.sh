# shellcheck shell=sh
# After keepalived stopped on an LB leaving the set: the VIP is no longer on this host, another host
# answers ARP for it, and each of PORTS answers on it from here. Prints "ok" (exit 0) or what is
# wrong (exit 1). Variables: VIP_IP, PORTS, PROBE_TIMEOUT.
[ -z "$(hk_vip_interfaces "$VIP_IP")" ] || hk_fail "vip:still-here"
iface=$(ip route get "$VIP_IP" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
claimants=$(hk_arp_claimants "${iface:-eth0}" "$VIP_IP")
case "$claimants" in
    "") hk_fail "vip:no-other-host-answers-arp" ;;
    unknown) ;;  # this host cannot probe ARP: the ports below decide
esac
for port in $PORTS; do
    hk_port_open "$VIP_IP" "$port" "$PROBE_TIMEOUT" || hk_fail "vip:port-$port-does-not-answer"
done
hk_report
