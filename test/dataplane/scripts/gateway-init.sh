#!/bin/bash
# pod-gateway's bin/gateway_init.sh, step for step, in the gateway pod's network namespace, with the
# gateway settings from podvpn's manifest (/config/settings.sh = LAB_SETTINGS). No nat.conf entries.
set -ex

. "$LAB_DEFAULT_SETTINGS"
. "$LAB_SETTINGS"

if ip addr | grep -q vxlan0; then
  ip link del vxlan0
fi

# Enable IP forwarding
if [[ $(cat /proc/sys/net/ipv4/ip_forward) -ne 1 ]]; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# Create VXLAN NIC
VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"
ip link add vxlan0 type vxlan id $VXLAN_ID dev eth0 dstport "${VXLAN_PORT:-0}" || true
ip addr add ${VXLAN_GATEWAY_IP}/24 dev vxlan0 || true
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

if ! ip rule | grep -q "from all lookup main suppress_prefixlength 0"; then
  ip rule add from all lookup main suppress_prefixlength 0 preference 50;
fi

# Enable outbound NAT
if [[ -n "$SNAT_IP" ]]; then
  iptables -t nat -A POSTROUTING -o "$VPN_INTERFACE" -j SNAT --to "$SNAT_IP"
else
  iptables -t nat -A POSTROUTING -j MASQUERADE
fi

if [[ -n "$VPN_INTERFACE" ]]; then
  if [ -n "$VXLAN_PORT" ]; then
    iptables -A INPUT -i eth0 -p udp --dport=${VXLAN_PORT} -j ACCEPT
    iptables -A OUTPUT -o eth0 -p udp --dport=${VXLAN_PORT} -j ACCEPT
  fi

  iptables -A INPUT -i vxlan0 -p udp --sport=68 --dport=67 -j ACCEPT

  iptables -A FORWARD -i "$VPN_INTERFACE" -m state --state ESTABLISHED,RELATED -j ACCEPT
  iptables -A FORWARD -i "$VPN_INTERFACE" -j REJECT

  if [[ $VPN_BLOCK_OTHER_TRAFFIC == true ]] ; then
    iptables --policy FORWARD DROP
    iptables -I FORWARD -o "$VPN_INTERFACE" -j ACCEPT

    iptables --policy OUTPUT DROP
    iptables -A OUTPUT -p udp --dport "$VPN_TRAFFIC_PORT" -j ACCEPT
    iptables -A OUTPUT -p tcp --dport "$VPN_TRAFFIC_PORT" -j ACCEPT

    for local_cidr in $VPN_LOCAL_CIDRS; do
      iptables -A FORWARD -d "$local_cidr" -j ACCEPT
      iptables -A OUTPUT -d "$local_cidr" -j ACCEPT
    done

    iptables -A OUTPUT -o "$VPN_INTERFACE" -j ACCEPT
    iptables -A OUTPUT -o vxlan0 -j ACCEPT
  fi

  K8S_GW_IP=$(/sbin/ip route | awk '/default/ { print $3 }')
  for local_cidr in $VPN_LOCAL_CIDRS; do
    ip route add "$local_cidr" via "$K8S_GW_IP" || /bin/true
  done
fi
