#!/bin/bash
# LAB STAND-IN for pod-gateway v1.13.0 bin/gateway_sidecar.sh, written for the lab: dnsmasq's
# config derived as upstream derives it (the cluster DNS is the pod's first IPv4 resolv.conf
# nameserver unless DNS_LOCAL_SERVER is set; DNSSEC per GATEWAY_ENABLE_DNSSEC; every query logged).
set -ex

cat /default_config/settings.sh
. /default_config/settings.sh
cat /config/settings.sh
. /config/settings.sh

if [ ! -f /etc/resolv.conf.org ]; then
  cp /etc/resolv.conf /etc/resolv.conf.org
  echo "/etc/resolv.conf.org written"
fi

if [ -z "$DNS_LOCAL_SERVER" ]; then
  DNS_LOCAL_SERVER=$(grep nameserver /etc/resolv.conf.org | awk '/nameserver [0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/ {print $2}')
fi

cat << EOC > /etc/dnsmasq.d/pod-gateway.conf
interface=vxlan0
bind-interfaces
dhcp-range=${VXLAN_IP_NETWORK}.${VXLAN_GATEWAY_FIRST_DYNAMIC_IP},${VXLAN_IP_NETWORK}.255,12h
log-queries
log-dhcp
log-facility=-
clear-on-reload
resolv-file=${RESOLV_CONF_COPY}
EOC

if [[ ${GATEWAY_ENABLE_DNSSEC} == true ]]; then
cat << EOC >> /etc/dnsmasq.d/pod-gateway.conf
  conf-file=/usr/share/dnsmasq/trust-anchors.conf
  dnssec
EOC
fi

for local_cidr in $DNS_LOCAL_CIDRS; do
  cat << EOC >> /etc/dnsmasq.d/pod-gateway.conf
  server=/${local_cidr}/${DNS_LOCAL_SERVER}
EOC
done

/bin/copy_resolv.sh

dnsmasq -k &
dnsmasq=$!

inotifyd /bin/copy_resolv.sh /etc/resolv.conf:ce &
inotifyd=$!

_kill_procs() {
  echo "Signal received -> killing processes"
  kill -TERM $dnsmasq || /bin/true
  wait $dnsmasq
  rc=$?
  kill -TERM $inotifyd || /bin/true
  wait $inotifyd
  rc=$(( $rc || $? ))
  echo "Terminated with RC: $rc"
  exit $rc
}

trap _kill_procs SIGTERM

wait -n

echo "TERMINATING"
_kill_procs
