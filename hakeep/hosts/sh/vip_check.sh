# shellcheck shell=sh
# Where the VIP is, seen from this host: "holder=IFACE" when this host carries VIP_IP, then
# "port=N:open|closed" for each of PORTS reached on the VIP from here (all ports at once, each
# bounded by PROBE_TIMEOUT seconds). Variables: VIP_IP, PORTS, PROBE_TIMEOUT.
hk_vip_interfaces "$VIP_IP" | sed 's/^/holder=/'
for port in $PORTS; do
    (
        if command -v bash >/dev/null 2>&1; then
            timeout "$PROBE_TIMEOUT" bash -c "exec 3<>/dev/tcp/$VIP_IP/$port" 2>/dev/null
        else
            nc -z -w "$PROBE_TIMEOUT" "$VIP_IP" "$port" 2>/dev/null
        fi && echo "port=$port:open" || echo "port=$port:closed"
    ) &
done
wait
