# LAB STAND-IN for the pod-gateway v1.13.0 image's /default_config/settings.sh (and /config/settings.sh
# before a volume hides it): the image's default values, one per key the scripts read. Written for
# the lab from the pinned release's defaults; LAB_POD_GATEWAY_DIR runs the real file instead.
GATEWAY_NAME="$gateway"
K8S_DNS_IPS="$K8S_DNS_ips"
NOT_ROUTED_TO_GATEWAY_CIDRS=""
VXLAN_ID="42"
VXLAN_PORT="0"
VXLAN_IP_NETWORK="172.16.0"
VXLAN_GATEWAY_FIRST_DYNAMIC_IP=20
VPN_INTERFACE=tun0
VPN_BLOCK_OTHER_TRAFFIC=true
VPN_TRAFFIC_PORT=443
VPN_LOCAL_CIDRS="10.0.0.0/8 192.168.0.0/16"
DNS_LOCAL_CIDRS="local"
DNS_LOCAL_SERVER=
RESOLV_CONF_COPY=/etc/resolv_copy.conf
CONNECTION_RETRY_COUNT=1
GATEWAY_ENABLE_DNSSEC=true
IPTABLES_NFT=no
SNAT_IP=""
VPN_INTERFACE_MTU=""
