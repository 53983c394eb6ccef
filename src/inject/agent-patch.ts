// Agent mode's injection (pure): the node's podvpn-agent builds the tunnel and the firewall inside the
// pod's network namespace, so the pod gets no client and no capabilities. It gets one init container,
// first, that waits until the agent's work is visible from inside the pod and then exits: the app's
// own init containers and containers never start unrouted, and a Job still completes.
//
// How the gate knows, without privileges: every check reads the pod's own network namespace through
// /proc/self/net (no capability needed, no API token, no host access):
//   - /proc/net/dev lists vxlan0, the tunnel link;
//   - /proc/net/route has the default route on vxlan0 via the gateway's overlay address (.1);
//   - /proc/net/dev lists podvpn-ready, a link (an empty bridge, kept down) the agent creates LAST, after the firewall.
// The pod cannot fake any of them: creating a link or a route needs CAP_NET_ADMIN, which it lacks.
// (A file in a shared emptyDir would need the agent to mount kubelet directories; an HTTP call to the
// agent on the host would trust the agent's word rather than the kernel's state, and needs a host port.)

import type { V1Container } from '@kubernetes/client-node';
import {
  AGENT_READY_LINK,
  ANNOTATION_STATUS,
  CLIENT_NO_TOKEN_VOLUME_NAME,
  GATE_INIT_NAME,
  GATE_TIMEOUT_SECONDS,
  GATE_UID,
  LABEL_EXIT,
  LABEL_ROUTED,
  SERVICE_ACCOUNT_TOKEN_PATH,
  VERSION,
} from '../constants.js';
import type { Config, Gateway } from '../config/schema.js';
import { dnsConfig, type Injection, type InjectionInput, listAppend, mapEntries, noTokenVolume, undoRecord } from './patch-parts.js';
import type { InjectionStatus, PatchOperation } from './types.js';

/**
 * The gate's resources: it reads two /proc files twice a second. Node's own footprint dominates: the
 * built gate peaked at 43 MiB RSS (GNU time, Node 20, x86_64), so 48Mi requested, 96Mi limit.
 */
export const GATE_RESOURCES = {
  requests: { cpu: '5m', memory: '48Mi' },
  limits: { cpu: '50m', memory: '96Mi' },
};

export function agentInjectionPatch(input: InjectionInput): Injection {
  const { pod, gateway, config } = input;
  const spec = pod.spec ?? {};
  const status: InjectionStatus = {
    version: VERSION,
    gateway: gateway.name,
    dataPlane: 'agent',
    ...(input.exit === undefined ? {} : { exit: input.exit }),
    initContainers: [GATE_INIT_NAME],
    containers: [],
    volumes: [CLIENT_NO_TOKEN_VOLUME_NAME],
    // The gate is an init container: like pod-gateway's native sidecar, nothing lands in containers.
    ...undoRecord(pod, true),
  };
  const dns = dnsConfig(input);
  const patch: PatchOperation[] = [];
  if (pod.metadata === undefined || pod.metadata === null) patch.push({ op: 'add', path: '/metadata', value: {} });
  // An exit group's pod: the exit it leaves through, which the agent reads (and moves on a failover)
  patch.push(...mapEntries('/metadata/labels', pod.metadata?.labels, { [LABEL_ROUTED]: gateway.name, ...(input.exit === undefined ? {} : { [LABEL_EXIT]: input.exit }) }));
  patch.push(...mapEntries('/metadata/annotations', pod.metadata?.annotations, { [ANNOTATION_STATUS]: JSON.stringify(status) }));
  if (pod.spec === undefined || pod.spec === null) patch.push({ op: 'add', path: '/spec', value: {} });
  const gate = gateContainer(gateway, config);
  if (Array.isArray(spec.initContainers)) {
    patch.push({ op: 'add', path: '/spec/initContainers/0', value: gate });
  } else {
    patch.push({ op: 'add', path: '/spec/initContainers', value: [gate] });
  }
  patch.push(...listAppend('/spec/volumes', spec.volumes, noTokenVolume()));
  patch.push({ op: 'add', path: '/spec/dnsPolicy', value: 'None' });
  patch.push({ op: 'add', path: '/spec/dnsConfig', value: dns.config });
  return { patch, warnings: dns.warnings };
}

/** The command the gate runs: podvpn's image, its gate entry, what to wait for. */
export function gateCommand(gateway: Gateway): string[] {
  return [
    '/nodejs/bin/node',
    '/app/dist/agent/gate.js',
    `--gateway=${gateway.overlayGatewayIP}`,
    `--ready-link=${AGENT_READY_LINK}`,
    `--timeout=${GATE_TIMEOUT_SECONDS}`,
  ];
}

function gateContainer(gateway: Gateway, config: Config): V1Container {
  return {
    name: GATE_INIT_NAME,
    image: config.images.podvpn,
    imagePullPolicy: config.images.pullPolicy,
    command: gateCommand(gateway),
    resources: { requests: { ...GATE_RESOURCES.requests }, limits: { ...GATE_RESOURCES.limits } },
    // Everything Pod Security "restricted" asks of a container, set on the container itself so it
    // holds whatever the pod's own securityContext says.
    securityContext: {
      capabilities: { drop: ['ALL'] },
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: GATE_UID,
      runAsGroup: GATE_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // The gate never calls the API: it does not carry the app's token.
    volumeMounts: [{ name: CLIENT_NO_TOKEN_VOLUME_NAME, mountPath: SERVICE_ACCOUNT_TOKEN_PATH, readOnly: true }],
  };
}
