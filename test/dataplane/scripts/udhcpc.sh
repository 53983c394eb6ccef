#!/bin/sh
# busybox udhcpc event script, doing what dhclient-script does for pod-gateway's dhclient.conf:
# the address and the default route from the lease; resolv.conf is never touched (not requested).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$subnet" dev "$interface"
    if [ -n "$router" ]; then
      ip route del default 2>/dev/null || true
      set -- $router
      ip route add default via "$1" dev "$interface"
    fi
    ;;
esac
exit 0
