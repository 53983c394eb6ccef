#!/usr/bin/env bash
# podvpn end to end on kind, with a CNI that enforces NetworkPolicy (Calico).
#
# THIS SCRIPT NEEDS A DOCKER ENGINE, kind AND kubectl. It cannot run in the project's CI sandbox
# (there is no Docker engine there); run it on a workstation. `bash -n` and test/image check only
# that it parses and that the names it uses match the manifests.
#
# What it builds:
#   - a kind cluster (1 control plane, 2 workers) with the default CNI disabled and Calico installed;
#   - "the internet": a Docker network 203.0.113.0/24 (TEST-NET-3, a non-private range, so the
#     gateway and the kill switch treat it as internet) with an HTTP echo server at 203.0.113.10
#     that answers with the caller's source IP. The kind nodes are attached to it too, so a pod that
#     leaks (egress not through the VPN) reaches it directly and shows up as a node address;
#   - "the VPN provider": a WireGuard server container (kernel WireGuard) on the kind network and on
#     "the internet" at 203.0.113.2; traffic through the VPN reaches the echo server as 203.0.113.2;
#   - podvpn from this checkout: the image (docker build + kind load), `kubectl apply -k manifests/`,
#     the gateway's VPN Secret for gluetun's `custom` WireGuard provider.
#
# What it checks:
#   1. the webhook is up (2 replicas) and the gateway is Ready (gluetun's tunnel is healthy);
#   2. a pod in a namespace labelled podvpn.io/inject=enabled is injected (client init first,
#      native sidecar) and its namespace has the kill-switch NetworkPolicy;
#   3. a pod in a namespace that is not opted in reaches the echo server directly (a node address):
#      the leak path exists, so the next checks mean something;
#   4. the routed pod reaches the echo server as 203.0.113.2: its traffic leaves through the VPN;
#   5. tunnel down, gateway pod alive (WireGuard server's interface down): the routed pod reaches
#      nothing (gluetun's firewall);
#   6. gateway down (Deployment scaled to 0): the routed pod reaches nothing (the NetworkPolicy);
#   7. gateway back: the routed pod's sidecar rebuilds the tunnel and egress is through the VPN again.
#
# Usage: scripts/kind-e2e.sh            (KEEP=1 keeps the cluster and containers afterwards)

set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-podvpn-e2e}
IMAGE=${IMAGE:-ghcr.io/podvpn/podvpn:v$(node -p 'require("./package.json").version')}
CALICO_VERSION=${CALICO_VERSION:-v3.29.1}
INET_NET=podvpn-inet
INET_SUBNET=203.0.113.0/24
ECHO_IP=203.0.113.10
VPN_EXIT_IP=203.0.113.2
WG_NAME=podvpn-e2e-wg
ECHO_NAME=podvpn-e2e-echo
NS_SYSTEM=podvpn-system
GATEWAY=podvpn-gateway-default
CTX="kind-${CLUSTER}"

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "$CTX" "$@"; }

for tool in docker kind kubectl node; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
docker info >/dev/null 2>&1 || fail "no Docker engine reachable"

cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then
    log "KEEP=1: leaving cluster ${CLUSTER}, containers ${WG_NAME} ${ECHO_NAME} and network ${INET_NET}"
    return
  fi
  log "cleaning up"
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  docker rm -f "$WG_NAME" "$ECHO_NAME" >/dev/null 2>&1 || true
  docker network rm "$INET_NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
log "kind cluster ${CLUSTER} without its default CNI (Calico enforces NetworkPolicy; kindnet does not fully)"
cat <<EOF | kind create cluster --name "$CLUSTER" --config -
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF

log "Calico ${CALICO_VERSION}"
k apply -f "https://raw.githubusercontent.com/projectcalico/calico/${CALICO_VERSION}/manifests/calico.yaml" >/dev/null
k -n kube-system rollout status daemonset/calico-node --timeout=300s
k wait --for=condition=Ready nodes --all --timeout=300s

# ---------------------------------------------------------------------------------------------
log "\"the internet\" ${INET_SUBNET} with an echo server at ${ECHO_IP}"
docker network create --subnet "$INET_SUBNET" "$INET_NET" >/dev/null
docker run -d --name "$ECHO_NAME" --network "$INET_NET" --ip "$ECHO_IP" python:3.12-alpine python -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (self.client_address[0] + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
' >/dev/null
for node in $(kind get nodes --name "$CLUSTER"); do
  docker network connect "$INET_NET" "$node"
done

log "\"the VPN provider\": a WireGuard server at ${VPN_EXIT_IP} on the internet side"
docker run -d --name "$WG_NAME" --network kind --cap-add NET_ADMIN --sysctl net.ipv4.ip_forward=1 \
  alpine:3.20 sleep infinity >/dev/null
docker network connect --ip "$VPN_EXIT_IP" "$INET_NET" "$WG_NAME"
docker exec "$WG_NAME" apk add --no-cache wireguard-tools iptables >/dev/null
docker exec "$WG_NAME" sh -euc '
  umask 077
  wg genkey > /srv.key; wg pubkey < /srv.key > /srv.pub
  wg genkey > /cli.key; wg pubkey < /cli.key > /cli.pub
  ip link add wg0 type wireguard
  wg set wg0 listen-port 51820 private-key /srv.key peer "$(cat /cli.pub)" allowed-ips 10.13.13.2/32
  ip addr add 10.13.13.1/24 dev wg0
  ip link set wg0 mtu 1420 up
  iptables -t nat -A POSTROUTING -s 10.13.13.0/24 ! -o wg0 -j MASQUERADE
'
WG_ENDPOINT=$(docker inspect -f '{{ (index .NetworkSettings.Networks "kind").IPAddress }}' "$WG_NAME")
WG_SERVER_PUB=$(docker exec "$WG_NAME" cat /srv.pub)
WG_CLIENT_KEY=$(docker exec "$WG_NAME" cat /cli.key)

# ---------------------------------------------------------------------------------------------
log "podvpn image ${IMAGE}"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "kubectl apply -k manifests/"
k apply -k manifests/
k -n "$NS_SYSTEM" create secret generic "${GATEWAY}-vpn" \
  --from-literal=VPN_SERVICE_PROVIDER=custom \
  --from-literal=VPN_ENDPOINT_IP="$WG_ENDPOINT" \
  --from-literal=VPN_ENDPOINT_PORT=51820 \
  --from-literal=WIREGUARD_PUBLIC_KEY="$WG_SERVER_PUB" \
  --from-literal=WIREGUARD_PRIVATE_KEY="$WG_CLIENT_KEY" \
  --from-literal=WIREGUARD_ADDRESSES=10.13.13.2/32 \
  --dry-run=client -o yaml | k apply -f -

log "check 1: webhook (2 replicas) and gateway Ready"
k -n "$NS_SYSTEM" rollout status deployment/podvpn-webhook --timeout=300s
k -n "$NS_SYSTEM" rollout status deployment/"$GATEWAY" --timeout=600s
ready=$(k -n "$NS_SYSTEM" get deployment podvpn-webhook -o jsonpath='{.status.readyReplicas}')
[[ "$ready" == 2 ]] || fail "webhook has ${ready:-0} ready replicas, want 2"
bundle=$(k get mutatingwebhookconfiguration podvpn -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
[[ -n "$bundle" ]] || fail "caBundle was not written by the self-managed certificates"

# ---------------------------------------------------------------------------------------------
log "check 2: a routed pod is injected and its namespace gets the kill-switch policy"
k apply -f - <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-routed
  labels:
    podvpn.io/inject: enabled
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-plain
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: e2e-routed
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: curl
      image: curlimages/curl:8.10.1
      command: [sleep, infinity]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: e2e-plain
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: curl
      image: curlimages/curl:8.10.1
      command: [sleep, infinity]
EOF
k -n e2e-routed wait --for=condition=Ready pod/client --timeout=300s
k -n e2e-plain wait --for=condition=Ready pod/client --timeout=300s
first_init=$(k -n e2e-routed get pod client -o jsonpath='{.spec.initContainers[0].name}')
[[ "$first_init" == podvpn-client-init ]] || fail "first init container is '${first_init}', want podvpn-client-init"
k -n e2e-routed get pod client -o jsonpath='{.metadata.labels.podvpn\.io/routed}' | grep -qx default \
  || fail "routed pod lacks label podvpn.io/routed=default"
[[ -n "$(k -n e2e-routed get networkpolicy -l app.kubernetes.io/managed-by=podvpn -o name)" ]] \
  || fail "no kill-switch NetworkPolicy in e2e-routed"

echo_from() { # namespace -> the source IP the echo server saw, or "" when unreachable
  k -n "$1" exec client -c curl -- curl -s --max-time 5 "http://${ECHO_IP}:8080/" 2>/dev/null | tr -d '\r\n' || true
}
expect_blocked() { # namespace, what -> every attempt over ~30 s must fail
  local i seen
  for i in $(seq 1 6); do
    seen=$(echo_from "$1")
    [[ -z "$seen" ]] || fail "$2: the routed pod reached the internet as ${seen}"
    sleep 5
  done
  echo "ok: $2: no egress"
}

log "check 3: the leak path exists (a pod that is not routed reaches the echo server directly)"
plain=$(echo_from e2e-plain)
[[ -n "$plain" && "$plain" != "$VPN_EXIT_IP" ]] || fail "unrouted pod saw '${plain}', want a node address"
echo "ok: unrouted pod leaves as ${plain}"

log "check 4: the routed pod's traffic leaves through the VPN"
routed=$(echo_from e2e-routed)
[[ "$routed" == "$VPN_EXIT_IP" ]] || fail "routed pod left as '${routed}', want the VPN exit ${VPN_EXIT_IP}"
echo "ok: routed pod leaves as ${routed}"

log "check 5: tunnel down, gateway alive: gluetun's firewall stops everything"
docker exec "$WG_NAME" ip link set wg0 down
expect_blocked e2e-routed "tunnel down"
docker exec "$WG_NAME" ip link set wg0 up

log "check 6: gateway down: the NetworkPolicy stops everything"
k -n "$NS_SYSTEM" scale deployment "$GATEWAY" --replicas=0
k -n "$NS_SYSTEM" wait --for=delete pod -l app.kubernetes.io/instance="$GATEWAY" --timeout=120s || true
expect_blocked e2e-routed "gateway down"

log "check 7: gateway back: the tunnel is rebuilt and egress is through the VPN again"
k -n "$NS_SYSTEM" scale deployment "$GATEWAY" --replicas=1
k -n "$NS_SYSTEM" rollout status deployment/"$GATEWAY" --timeout=600s
for i in $(seq 1 24); do
  routed=$(echo_from e2e-routed)
  [[ "$routed" == "$VPN_EXIT_IP" ]] && break
  [[ -z "$routed" ]] || fail "after the gateway came back the pod left as ${routed}"
  sleep 5
done
[[ "$routed" == "$VPN_EXIT_IP" ]] || fail "routed pod did not reconnect through the VPN within 2 minutes"
echo "ok: routed pod leaves as ${routed} again"

log "all checks passed"
