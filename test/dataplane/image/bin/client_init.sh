#!/bin/bash
# LAB STAND-IN for pod-gateway v1.13.0 bin/client_init.sh, written for the lab: the same commands in
# the same order under `set -ex`, its defects kept (the `[ A >= B ]` MTU test, udhcpc left to die
# with the container). LAB_POD_GATEWAY_DIR=<pod-gateway checkout> runs the real script instead.
# Differences: none in behaviour; see test/dataplane/README.md.
set -ex

cat /default_config/settings.sh
. /default_config/settings.sh
cat /config/settings.sh
. /config/settings.sh

# Re-entry (vxlan0 exists): drop it. First entry: route the cluster ranges via the pod's gateway.
if ip addr | grep -q vxlan0; then
  ip link del vxlan0
else
  K8S_GW_IP=$(/sbin/ip route | awk '/default/ { print $3 }')
  for local_cidr in $NOT_ROUTED_TO_GATEWAY_CIDRS; do
    ip route add "$local_cidr" via "$K8S_GW_IP" || /bin/true
  done
fi

echo "Deleting existing default GWs"
ip route del 0/0 || /bin/true
echo "Deleting existing default IPv6 route to prevent leakage"
ip -6 route del default || /bin/true

if ping -c 1 -W 1000 8.8.8.8; then
  echo "WE SHOULD NOT BE ABLE TO PING -> EXIT"
  exit 255
fi

ip addr
ip route

if [ -n "$KUBERNETES_SERVICE_HOST" ]; then
  HOSTNAME_REAL=$(hostname | cut -d'-' -f1)
else
  HOSTNAME_REAL=$(hostname)
fi
echo $HOSTNAME_REAL

K8S_DNS_IP="$(cut -d ' ' -f 1 <<< "$K8S_DNS_IPS")"
GATEWAY_IP="$(dig +short "$GATEWAY_NAME" "@${K8S_DNS_IP}")"
NAT_ENTRY="$(grep "^$HOSTNAME_REAL " /config/nat.conf || true)"
VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"

# K8S_GW_IP is empty on re-entry: the route to the gateway is expected to be there already.
if [ -n "$K8S_GW_IP" ]; then
  ip route add "$GATEWAY_IP" via "$K8S_GW_IP"
fi

ip addr
ip route

ping -c "${CONNECTION_RETRY_COUNT}" "$GATEWAY_IP"

ip link add vxlan0 type vxlan id "$VXLAN_ID" dev eth0 dstport "${VXLAN_PORT:-0}" || true
bridge fdb append to 00:00:00:00:00:00 dst "$GATEWAY_IP" dev vxlan0
ip link set up dev vxlan0
if [[ -n "$VPN_INTERFACE_MTU" ]]; then
  ETH0_INTERFACE_MTU=$(cat /sys/class/net/eth0/mtu)
  VXLAN0_INTERFACE_MAX_MTU=$((ETH0_INTERFACE_MTU-50))
  # Upstream's test, kept as it is: `>` redirects (to a file named "="), so `[` gets two operands,
  # fails, and the else branch always runs: vxlan0 gets VPN_INTERFACE_MTU whatever eth0's MTU is.
  if [ ${VPN_INTERFACE_MTU} >= ${VXLAN0_INTERFACE_MAX_MTU} ];then
    ip link set mtu "${VXLAN0_INTERFACE_MAX_MTU}" dev vxlan0
  else
    ip link set mtu "${VPN_INTERFACE_MTU}" dev vxlan0
  fi
fi

if [[ -z "$NAT_ENTRY" ]]; then
  echo "Get dynamic IP"
  killall -q udhcpc || true
  udhcpc --now --interface=vxlan0
else
  IP=$(cut -d' ' -f2 <<< "$NAT_ENTRY")
  VXLAN_IP="${VXLAN_IP_NETWORK}.${IP}"
  echo "Use fixed IP $VXLAN_IP"
  ip addr add "${VXLAN_IP}/24" dev vxlan0
  route add default gw "$VXLAN_GATEWAY_IP"
fi

ip addr
ip route

ping -c "${CONNECTION_RETRY_COUNT}" "$VXLAN_GATEWAY_IP"

echo "Gateway ready and reachable"
