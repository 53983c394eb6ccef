#!/bin/sh
# udhcpc's event script for podvpn-agent (installed as /usr/share/podvpn/udhcpc-lease.sh in the agent
# image). udhcpc calls it with deconfig, bound, renew, leasefail or nak; the agent sets the address and
# routes itself (src/agent/tunnel.ts), so this only prints the lease and changes nothing.
case "$1" in
  bound | renew)
    echo "ip=$ip"
    echo "subnet=$subnet"
    echo "router=$router"
    echo "lease=$lease"
    ;;
esac
exit 0
