#!/bin/bash
# LAB STAND-IN for pod-gateway v1.13.0 bin/client_sidecar.sh, written for the lab: every 10 s a ping
# of the gateway's overlay address; when it fails, client_init.sh again. Under `set -e` a failed
# re-init ends this script (and the container: the kubelet restarts it with its backoff).
set -e

cat /default_config/settings.sh
. /default_config/settings.sh
cat /config/settings.sh
. /config/settings.sh

VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"

while true; do
  echo "Monitor connection to $VXLAN_GATEWAY_IP"
  while ping -c "${CONNECTION_RETRY_COUNT}" "$VXLAN_GATEWAY_IP" > /dev/null; do
    sleep 10 &
    wait $!
  done
  echo
  echo "Reconnecting to ${GATEWAY_NAME}"
  client_init.sh
done
