#!/usr/bin/env bash
# Removes a lab left standing (LAB_KEEP=1, or a run killed from outside): the processes it recorded
# (by PID, nothing else), its namespaces, wireguard-go sockets and files. Usage: down.sh PREFIX
set -u
P=${1:?usage: down.sh PREFIX}
for pid in $(cat "/run/podvpn-lab/$P/pids" "/run/podvpn-lab/$P.rootcap.pid" 2>/dev/null); do
  kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
done
bash "$(dirname "$0")/scripts/cgroups-down.sh" "$P"
for n in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$n"; done
rm -rf "/run/podvpn-lab/$P" "/run/podvpn-lab/$P.rootcap" "/run/podvpn-lab/$P.rootcap.pid" /etc/netns/"$P"-* "/var/run/wireguard/${P:0:10}g.sock" "/var/run/wireguard/${P:0:10}s.sock"
