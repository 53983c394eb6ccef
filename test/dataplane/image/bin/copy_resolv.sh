#!/bin/bash
# LAB STAND-IN for pod-gateway v1.13.0 bin/copy_resolv.sh: the pod's resolv.conf copied where
# dnsmasq's resolv-file points (moot with podvpn's no-resolv).
. /default_config/settings.sh
. /config/settings.sh
echo "copying /etc/resolv.conf to ${RESOLV_CONF_COPY}"
cp /etc/resolv.conf ${RESOLV_CONF_COPY}
exit 0
