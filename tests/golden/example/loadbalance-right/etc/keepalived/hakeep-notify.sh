#!/bin/sh
# Managed by hakeep (cluster devops, host loadbalance-right).
# keepalived's notify script: called as `notify TYPE NAME STATE PRIORITY` on every VRRP state change;
# records the state so `hakeep status` and the deploy health gates can read it.
# Only this config's instances: after a reload keepalived also notifies the instances it deleted (as
# FAULT), which would otherwise be recorded as this LB's state.
case "$2" in devops-vip) ;; *) exit 0 ;; esac
mkdir -p "$(dirname "/run/hakeep/vrrp-state")"
printf '%s %s %s\n' "$3" "$4" "$(date +%s)" > "/run/hakeep/vrrp-state.tmp" && mv "/run/hakeep/vrrp-state.tmp" "/run/hakeep/vrrp-state"
