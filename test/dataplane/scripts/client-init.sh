#!/bin/bash
# pod-gateway's bin/client_init.sh, step for step, run in the client pod's network namespace with the
# settings podvpn's webhook injects (/config/settings.sh = LAB_SETTINGS). Lab differences, all marked
# LAB: the "nothing reachable" probe pings the lab's internet host instead of 8.8.8.8; busybox
# udhcpc stands in for dhclient (same requested options: subnet mask, broadcast, routers; no DNS);
# bounded timeouts on every probe.
PS4='+ ${EPOCHREALTIME} '  # LAB: timestamps in the trace (client-init.log)
set -ex

# Load main settings
. "$LAB_DEFAULT_SETTINGS"
. "$LAB_SETTINGS"

# in re-entry we need to remove the vxlan
# on first entry set a routing rule to the k8s DNS server
if ip addr | grep -q vxlan0; then
  ip link del vxlan0
else
  K8S_GW_IP=$(/sbin/ip route | awk '/default/ { print $3 }')
  for local_cidr in $NOT_ROUTED_TO_GATEWAY_CIDRS; do
    # command might fail if rule already set
    ip route add "$local_cidr" via "$K8S_GW_IP" || /bin/true
  done
fi

# Delete default GW to prevent outgoing traffic to leave this docker
echo "Deleting existing default GWs"
ip route del 0/0 || /bin/true

# After this point nothing should be reachable -> check (LAB: the lab's internet host)
if ping -c 1 -W 1 "$LAB_INTERNET_IP"; then
  echo "WE SHOULD NOT BE ABLE TO PING -> EXIT"
  exit 255
fi

# Derived settings
K8S_DNS_IP="$(cut -d ' ' -f 1 <<< "$K8S_DNS_IPS")"
GATEWAY_IP="$(dig +short +time=1 +tries=3 "$GATEWAY_NAME" "@${K8S_DNS_IP}" | tail -n 1)"
VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"
if [[ -z "$GATEWAY_IP" ]]; then echo "cannot resolve $GATEWAY_NAME"; exit 1; fi

# Make sure there is correct route for gateway
if [ -n "$K8S_GW_IP" ]; then
  ip route add "$GATEWAY_IP" via "$K8S_GW_IP" || /bin/true
fi

# Check we can connect to the GATEWAY IP
ping -c "${CONNECTION_RETRY_COUNT}" -W 1 "$GATEWAY_IP"

# Create tunnel NIC
ip link add vxlan0 type vxlan id "$VXLAN_ID" dev eth0 dstport "${VXLAN_PORT:-0}" || true
bridge fdb append to 00:00:00:00:00:00 dst "$GATEWAY_IP" dev vxlan0
ip link set up dev vxlan0
if [[ -n "$VPN_INTERFACE_MTU" ]]; then
  ETH0_INTERFACE_MTU=$(cat /sys/class/net/eth0/mtu)
  VXLAN0_INTERFACE_MAX_MTU=$((ETH0_INTERFACE_MTU-50))
  if [ "${VPN_INTERFACE_MTU}" -ge "${VXLAN0_INTERFACE_MAX_MTU}" ]; then
    ip link set mtu "${VXLAN0_INTERFACE_MAX_MTU}" dev vxlan0
  else
    ip link set mtu "${VPN_INTERFACE_MTU}" dev vxlan0
  fi
fi

# Configure IP and default GW though the gateway (LAB: udhcpc for dhclient)
echo "Get dynamic IP"
busybox udhcpc -i vxlan0 -f -q -n -t 6 -T 1 -A 1 -o -O subnet -O broadcast -O router \
  -s "$LAB_UDHCPC_SCRIPT"

ip addr
ip route

# Check we can connect to the gateway using the vxlan device
ping -c "${CONNECTION_RETRY_COUNT}" -W 1 "$VXLAN_GATEWAY_IP"

echo "Gateway ready and reachable"
