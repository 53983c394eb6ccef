#!/bin/bash
# LAB STAND-IN for pod-gateway v1.13.0 bin/gateway_init.sh, written for the lab: the same commands in
# the same order under `set -ex`, defects kept (the nat.conf read that fails when /config has no
# nat.conf, the `[ A >= B ]` MTU test). Not the post-v1.13.0 `FORWARD -d <local cidr>` rule.
set -ex

cat /default_config/settings.sh
. /default_config/settings.sh
cat /config/settings.sh
. /config/settings.sh

if [ "${IPTABLES_NFT:-no}" = "yes" ];then
  rm /sbin/iptables
  ln -s /sbin/iptables-translate /sbin/iptables
fi

# An earlier run of this init container may have left vxlan0.
if ip addr | grep -q vxlan0; then
  ip link del vxlan0
fi

if [[ $(cat /proc/sys/net/ipv4/ip_forward) -ne 1 ]]; then
  echo "ip_forward is not enabled; enabling."
  sysctl -w net.ipv4.ip_forward=1
fi

VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"
ip link add vxlan0 type vxlan id $VXLAN_ID dev eth0 dstport "${VXLAN_PORT:-0}" || true
ip addr add ${VXLAN_GATEWAY_IP}/24 dev vxlan0 || true
ip link set up dev vxlan0
if [[ -n "$VPN_INTERFACE_MTU" ]]; then
  ETH0_INTERFACE_MTU=$(cat /sys/class/net/eth0/mtu)
  VXLAN0_INTERFACE_MAX_MTU=$((ETH0_INTERFACE_MTU-50))
  # As upstream: always the else branch (see client_init.sh).
  if [ ${VPN_INTERFACE_MTU} >= ${VXLAN0_INTERFACE_MAX_MTU} ];then
    ip link set mtu "${VXLAN0_INTERFACE_MAX_MTU}" dev vxlan0
  else
    ip link set mtu "${VPN_INTERFACE_MTU}" dev vxlan0
  fi
fi

if ! ip rule | grep -q "from all lookup main suppress_prefixlength 0"; then
  ip rule add from all lookup main suppress_prefixlength 0 preference 50;
fi

if [[ -n "$SNAT_IP" ]]; then
  echo "Enable SNAT"
  iptables -t nat -A POSTROUTING -o "$VPN_INTERFACE" -j SNAT --to "$SNAT_IP"
else
  echo "Enable Masquerading"
  iptables -t nat -A POSTROUTING -j MASQUERADE
fi

if [[ -n "$VPN_INTERFACE" ]]; then
  # Port forwards from /config/nat.conf ("name ip proto:port,..."). The redirection fails, and with
  # it the script, when /config has no nat.conf.
  while read -r line; do
    [[ $line =~ ^#.* ]] && continue
    echo "Processing line: $line"
    NAME=$(cut -d' ' -f1 <<< "$line")
    IP=$(cut -d' ' -f2 <<< "$line")
    PORTS=$(cut -d' ' -f3 <<< "$line")
    for port_string in ${PORTS//,/ }; do
      PORT_TYPE=$(cut -d':' -f1 <<< "$port_string")
      PORT_NUMBER=$(cut -d':' -f2 <<< "$port_string")
      echo "IP: $IP , NAME: $NAME , PORT: $PORT_NUMBER , TYPE: $PORT_TYPE"
      iptables -t nat -A PREROUTING -p "$PORT_TYPE" -i "$VPN_INTERFACE" \
        --dport "$PORT_NUMBER" -j DNAT --to-destination "${VXLAN_IP_NETWORK}.${IP}:${PORT_NUMBER}"
      iptables -A FORWARD -p "$PORT_TYPE" -d "${VXLAN_IP_NETWORK}.${IP}" \
        --dport "$PORT_NUMBER" -m state --state NEW,ESTABLISHED,RELATED -j ACCEPT
    done
  done </config/nat.conf

  if [ -n "$VXLAN_PORT" ]; then
    echo "Allow VXLAN traffic from eth0"
    iptables -A INPUT -i eth0 -p udp --dport=${VXLAN_PORT} -j ACCEPT
    iptables -A OUTPUT -o eth0 -p udp --dport=${VXLAN_PORT} -j ACCEPT
  fi

  echo "Allow DHCP traffic from vxlan"
  iptables -A INPUT -i vxlan0 -p udp --sport=68 --dport=67 -j ACCEPT

  echo "Setting iptables for VPN with NIC ${VPN_INTERFACE}"
  iptables -A FORWARD -i "$VPN_INTERFACE" -m state --state ESTABLISHED,RELATED -j ACCEPT
  iptables -A FORWARD -i "$VPN_INTERFACE" -j REJECT

  if [[ $VPN_BLOCK_OTHER_TRAFFIC == true ]] ; then
    iptables --policy FORWARD DROP
    iptables -I FORWARD -o "$VPN_INTERFACE" -j ACCEPT

    iptables --policy OUTPUT DROP
    iptables -A OUTPUT -p udp --dport "$VPN_TRAFFIC_PORT" -j ACCEPT
    iptables -A OUTPUT -p tcp --dport "$VPN_TRAFFIC_PORT" -j ACCEPT

    for local_cidr in $VPN_LOCAL_CIDRS; do
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
