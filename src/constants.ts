// Contracts shared by the server, the CLI, the manifests and the tests.
// The names here are fixed by the product brief: users and other tools depend on them.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkg = require('../package.json') as { version: string };

export const PRODUCT = 'podvpn';
export const VERSION: string = pkg.version;
export const SYSTEM_NAMESPACE = 'podvpn-system';
export const FIELD_MANAGER = 'podvpn';

/** Labels and annotations, all under the `podvpn.io/` prefix. */
export const LABEL_INJECT = 'podvpn.io/inject';
export const NAMESPACE_INJECT_VALUE = 'enabled';
export const LABEL_ROUTED = 'podvpn.io/routed';
export const ANNOTATION_GATEWAY = 'podvpn.io/gateway';
export const ANNOTATION_STATUS = 'podvpn.io/status';
/** The pod-gateway client's settings.sh, projected into the client's /config by a downward API volume. */
export const ANNOTATION_CLIENT_SETTINGS = 'podvpn.io/client-settings';
/** Pod annotation: "true" keeps a VPN the pod already runs (gluetun, WireGuard, ...) instead of refusing. */
export const ANNOTATION_ALLOW_EXISTING_VPN = 'podvpn.io/allow-existing-vpn';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const ANNOTATION_MIRROR = 'kubernetes.io/config.mirror';
export const LABEL_NAMESPACE_NAME = 'kubernetes.io/metadata.name';
export const LABEL_PSA_ENFORCE = 'pod-security.kubernetes.io/enforce';
export const LABEL_PSA_WARN = 'pod-security.kubernetes.io/warn';

/** What the webhook injects. */
export const CLIENT_INIT_NAME = 'podvpn-client-init';
export const CLIENT_SIDECAR_NAME = 'podvpn-client';
export const CLIENT_VOLUME_NAME = 'podvpn-client-config';
/** pod-gateway's scripts source /default_config/settings.sh, then /config/settings.sh. */
export const CLIENT_CONFIG_MOUNT = '/config';
export const CLIENT_SETTINGS_FILE = 'settings.sh';
export const CLIENT_INIT_COMMAND = ['/bin/client_init.sh'];
/**
 * client_sidecar.sh exits (set -e) when a re-init fails, as it does while a replaced gateway is not
 * Ready yet; the kubelet would then restart it only after its back-off (10 s doubling to 300 s), so
 * a gateway gone for minutes cost minutes more. The loop runs it again 2 s later instead. TERM ends
 * the loop (bash as PID 1 would ignore it without the trap and hold the pod's shutdown).
 */
export const CLIENT_SIDECAR_COMMAND = [
  '/bin/bash',
  '-c',
  'trap "exit 0" TERM INT; while :; do /bin/client_sidecar.sh & wait $!; echo "podvpn: client_sidecar.sh exited $?, again in 2 s"; sleep 2 & wait $!; done',
];

/** Other meshes' init containers that rewrite the pod's routing or iptables. */
export const FOREIGN_MESH_INIT_CONTAINERS = ['istio-init', 'linkerd-init'];

/** Namespaces the webhook never mutates (the API server's own, and ours: a self-deadlock). */
export const EXCLUDED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', SYSTEM_NAMESPACE];

/** HTTP surface. */
export const MUTATE_PATH = '/mutate';
export const HEALTHZ_PATH = '/healthz';
export const READYZ_PATH = '/readyz';
export const METRICS_PATH = '/metrics';
export const DEFAULT_LISTEN = '0.0.0.0:8443';
export const DEFAULT_ADMIN_LISTEN = '0.0.0.0:9090';
export const WEBHOOK_PORT = 8443;
export const ADMIN_PORT = 9090;
/** Istio caps reviews at 6 MiB: twice the API server's 3 MiB object limit. */
export const MAX_REVIEW_BYTES = 6 * 1024 * 1024;

export const WEBHOOK_SERVICE_NAME = 'podvpn-webhook';
export const WEBHOOK_CONFIGURATION_NAME = 'podvpn';
export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

/**
 * The ServiceAccount admission plugin mounts the pod's API token into every container that has no
 * mount at this path, and the API server re-runs it after a webhook mutates. podvpn's client
 * containers mount an empty, read-only volume here instead: the plugin skips them, so the root,
 * NET_ADMIN client never carries the app's token and the re-run changes nothing (no second review).
 * The name must not start with "kube-api-access-": the plugin would take it for the token volume.
 */
export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
export const CLIENT_NO_TOKEN_VOLUME_NAME = 'podvpn-no-api-token';

/** The Secret holding the self-managed CA and serving certificate (src/tls/self-managed.ts). */
export const SELF_MANAGED_SECRET_NAME = 'podvpn-webhook-tls';

/** Data-plane modes (config `dataPlane`, namespace annotation below). */
export const DATA_PLANES = ['pod-gateway', 'agent'] as const;
export type DataPlane = (typeof DATA_PLANES)[number];
export const ANNOTATION_DATA_PLANE = 'podvpn.io/data-plane';
/** Agent mode: the one init container podvpn injects, unprivileged; it waits for the node agent. */
export const GATE_INIT_NAME = 'podvpn-gate';
/** distroless "nonroot": the gate runs as this fixed non-root UID and GID. */
export const GATE_UID = 65532;
/** How long the gate waits for the tunnel and firewall before it fails (the kubelet then retries it). */
export const GATE_TIMEOUT_SECONDS = 120;
/**
 * The agent's readiness marker inside the pod's network namespace: a link (an empty bridge, kept down;
 * "dummy" was not built into the kernel the tests run on, the bridge driver was) it creates last, after
 * the tunnel and the firewall. Any process in the namespace sees it in /proc/net/dev without
 * privileges; only a holder of CAP_NET_ADMIN (the agent, not the pod) can create or remove it.
 */
export const AGENT_READY_LINK = 'podvpn-ready';

/**
 * Exit groups (src/exits). The pod annotation pins a pod to one exit of its gateway's group (user
 * input); the pod label records the exit the pod leaves through (set by podvpn), so
 * `kubectl get pods -L podvpn.io/exit` shows it. Same key, different maps: a pin is never mistaken
 * for a record.
 */
export const ANNOTATION_EXIT = 'podvpn.io/exit';
export const LABEL_EXIT = 'podvpn.io/exit';

/**
 * Agent mode, exit groups: a request to rebalance a group, as an annotation on its exits' gateway pods
 * in podvpn-system (any value; each new value is one request). Every agent acts on a value once.
 */
export const ANNOTATION_REBALANCE = 'podvpn.io/rebalance';
