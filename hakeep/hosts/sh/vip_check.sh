# shellcheck shell=sh
# Where the VIP is, seen from this host: "holder=IFACE" when this host carries VIP_IP, then
# "port=N:open|closed" for each of PORTS reached on the VIP from here (all ports at once, each
# bounded by PROBE_TIMEOUT seconds). With IFACE set: "mac=M" (this host's on IFACE) and, for each
# other MAC that answers ARP for the VIP there, "arp=M ip=A" (A: an address this host's neighbour
# table has for M, or -), or "arp=unknown" when this host cannot probe; IFACE "auto": the interface
# carrying the VIP here, else the one its route goes out of. Variables: VIP_IP, PORTS, PROBE_TIMEOUT,
# IFACE.
hk_vip_interfaces "$VIP_IP" | sed 's/^/holder=/'
if [ "$IFACE" = auto ]; then  # the interface the VIP is on here, else the one that reaches it
    IFACE=$(hk_vip_interfaces "$VIP_IP" | head -n 1)
    [ -n "$IFACE" ] || IFACE=$(ip route get "$VIP_IP" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
fi
if [ -n "$IFACE" ]; then
    hk_vip_arp "$IFACE" "$VIP_IP" &
fi
for port in $PORTS; do
    (hk_port_open "$VIP_IP" "$port" "$PROBE_TIMEOUT" && echo "port=$port:open" || echo "port=$port:closed") &
done
wait
