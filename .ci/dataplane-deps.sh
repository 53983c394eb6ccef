#!/usr/bin/env bash
# The data-plane lab's Debian packages (test/dataplane): kernel tools for network namespaces, VXLAN,
# WireGuard in userspace (no kernel module on CI machines), nftables/iptables (the CNI and gluetun
# stand-ins), dnsmasq (cluster DNS, the gateway's DHCP/DNS), busybox's udhcpc (the client's DHCP),
# openssl (the lab's TLS server certificate), tcpdump (proof that the machine's own namespace
# sees none of the lab's packets), python3 (the exits lab's long-lived flows, scripts/flows.py) and the probes. Idempotent and quiet: skips the install when every tool is already present.
set -euo pipefail
need=(ip nft iptables iptables-save wireguard-go wg dnsmasq busybox ping socat iperf3 curl dig openssl tcpdump python3)
missing=0
for t in "${need[@]}"; do command -v "$t" >/dev/null 2>&1 || missing=1; done
if [[ $missing -eq 0 ]]; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
# One retry: a mirror hiccup should not fail CI.
timeout 300 apt-get update -qq >/dev/null || { sleep 5; timeout 300 apt-get update -qq >/dev/null; }
timeout 600 apt-get install -y -qq --no-install-recommends \
  iproute2 nftables iptables wireguard-go wireguard-tools dnsmasq-base busybox \
  iputils-ping socat iperf3 curl bind9-dnsutils openssl tcpdump python3 >/dev/null
for t in "${need[@]}"; do
  command -v "$t" >/dev/null 2>&1 || { echo "dataplane-deps: $t still missing" >&2; exit 1; }
done
