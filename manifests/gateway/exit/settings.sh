# pod-gateway server settings for one exit of an exit group (sourced by gateway_init.sh and
# gateway_sidecar.sh after the image's /default_config/settings.sh). The group's settings: every
# exit shares the overlay, its .1, the MTU and the port, so a pod's DNS server stays valid when it
# moves. Each exit's own VXLAN_ID comes from /config/exit.sh, which its kustomization writes (the
# last line here sources it). Must agree with podvpn's config (gateways.<group>); test/manifests
# checks it. Why each value: manifests/README.md, "The gateway".
VXLAN_PORT="4789"
VXLAN_IP_NETWORK="172.16.0"
VXLAN_GATEWAY_FIRST_DYNAMIC_IP="20"
VPN_INTERFACE="wg0"
VPN_INTERFACE_MTU="1320"
VPN_BLOCK_OTHER_TRAFFIC="true"
VPN_TRAFFIC_PORT="51820"
VPN_LOCAL_CIDRS="10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16"
DNS_LOCAL_CIDRS="cluster.local"
DNS_LOCAL_SERVER=""
SNAT_IP=""
IPTABLES_NFT="no"
# No DNSSEC validation in dnsmasq (the image's default is true): the upstreams (dnsmasq.conf,
# 1.1.1.1/1.0.0.1) validate and answer SERVFAIL for bogus data, and a provider resolver that strips
# DNSSEC records (a common replacement, manifests/README.md) would make every internet name fail.
GATEWAY_ENABLE_DNSSEC="false"
# This exit's own settings (VXLAN_ID), written by the exit's kustomization.
. /config/exit.sh
