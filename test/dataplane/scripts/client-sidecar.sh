#!/bin/bash
# pod-gateway's bin/client_sidecar.sh: ping the gateway through the tunnel; when it stops answering,
# run client_init.sh again (re-entry: vxlan0 rebuilt towards the gateway's new address, new lease).
# LAB: sleeps LAB_SIDECAR_INTERVAL seconds between pings (upstream: 10) to keep the lab short.
. "$LAB_DEFAULT_SETTINGS"
. "$LAB_SETTINGS"
VXLAN_GATEWAY_IP="${VXLAN_IP_NETWORK}.1"
while true; do
  if ping -c "${CONNECTION_RETRY_COUNT}" -W 1 "$VXLAN_GATEWAY_IP" > /dev/null; then
    sleep "${LAB_SIDECAR_INTERVAL:-1}"
  else
    echo "$(date +%s.%N) Reconnecting to ${GATEWAY_NAME}"
    bash "$LAB_CLIENT_INIT" || echo "$(date +%s.%N) client_init failed"
  fi
done
