// What the agent reads from the API, reduced to the plan's inputs (pure): the agent-mode routed pods
// on its node, each gateway's (and each exit's) current pod and readiness, and the cluster ranges.
//
// Exit groups: a pod's exit is its label podvpn.io/exit (set by the webhook at admission, moved by the
// agent on a failover). Each exit's gateway pod carries app.kubernetes.io/instance=podvpn-gateway-<exit>
// (manifests/examples/exit-group/vpn-a), as a single gateway's carries podvpn-gateway-<gateway>.

import type { V1Node, V1Pod, V1ServiceCIDR } from '@kubernetes/client-node';
import { parseCidr } from '../cidr/cidr.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { gatewayServiceName } from '../config/schema.js';
import { ANNOTATION_EXIT, ANNOTATION_STATUS, LABEL_EXIT, LABEL_ROUTED } from '../constants.js';
import type { GatewayState, PodDesired } from './reconcile.js';

export const GATEWAY_POD_SELECTOR = 'app.kubernetes.io/name=podvpn-gateway';
export const GATEWAY_INSTANCE_LABEL = 'app.kubernetes.io/instance';

/**
 * Routed pods whose status says agent mode, on this node, not finished. With the config, an exit
 * group's pod gets its exit: its pin (annotation podvpn.io/exit) if it names an exit of the group,
 * else the label podvpn.io/exit if that does; else no exit and a reason to wait (never a guess here:
 * the exit planner, exit-moves.ts, assigns one and the label follows).
 */
export function agentPods(pods: V1Pod[], nodeName: string, config?: Config): PodDesired[] {
  const out: PodDesired[] = [];
  for (const p of pods) {
    const meta = p.metadata;
    const gateway = meta?.labels?.[LABEL_ROUTED];
    if (meta?.uid === undefined || gateway === undefined || p.spec?.nodeName !== nodeName) continue;
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    let dataPlane: unknown;
    try {
      dataPlane = (JSON.parse(meta.annotations?.[ANNOTATION_STATUS] ?? '{}') as { dataPlane?: unknown }).dataPlane;
    } catch {
      continue;
    }
    if (dataPlane !== 'agent') continue;
    const desired: PodDesired = { uid: meta.uid, namespace: meta.namespace ?? '', name: meta.name ?? '', gateway };
    const exits = config?.gateways[gateway]?.exits;
    if (exits !== undefined) {
      const label = meta.labels?.[LABEL_EXIT];
      const rawPin = meta.annotations?.[ANNOTATION_EXIT];
      const known = (e: string | undefined) => e !== undefined && exits.some((x) => x.name === e);
      if (typeof rawPin === 'string') desired.pin = rawPin;
      // The pin is the user's word: it wins over a label that says otherwise
      if (known(rawPin)) desired.exit = rawPin;
      else if (known(label)) desired.exit = label;
      else {
        desired.waitReason =
          label === undefined
            ? `an exit of group "${gateway}" has no ${LABEL_EXIT} label on the pod yet (waiting for one to be assigned)`
            : `${LABEL_EXIT}="${label.slice(0, 63)}" names no exit of group "${gateway}" (exits: ${exits.map((e) => e.name).join(', ')}); waiting for another to be assigned`;
      }
    }
    out.push(desired);
  }
  return out;
}

/** An exit's gateway pod, as the exit planner sees it. */
export interface ExitPodState extends GatewayState {
  /** The chosen pod is terminating (deletionTimestamp): the exit is draining. */
  terminating: boolean;
}

/**
 * Each configured gateway's pod: a running, non-terminating one, Ready preferred. Keyed by tunnel
 * target: a gateway's name, or for an exit group each exit's name (with the exit's VXLAN id). An exit
 * whose only pod is terminating still gets that pod (terminating: true): it serves until it stops, and
 * the agent drains it meanwhile. A single gateway's terminating pod is ignored as before.
 */
export function gatewayStates(pods: V1Pod[], config: Config): Map<string, ExitPodState> {
  const out = new Map<string, ExitPodState>();
  const ready = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const terminating = (p: V1Pod) => p.metadata?.deletionTimestamp !== undefined && p.metadata.deletionTimestamp !== null;
  const state = (name: string, vxlanId: number, allowTerminating: boolean): ExitPodState => {
    const candidates = pods.filter(
      (p) => p.metadata?.labels?.[GATEWAY_INSTANCE_LABEL] === gatewayServiceName(name) && typeof p.status?.podIP === 'string' && p.status.podIP !== '',
    );
    const live = candidates.filter((p) => !terminating(p));
    const chosen = live.find(ready) ?? live[0] ?? (allowTerminating ? (candidates.find(ready) ?? candidates[0]) : undefined);
    return { name, podIP: chosen?.status?.podIP, ready: chosen !== undefined && ready(chosen), vxlanId, terminating: chosen !== undefined && terminating(chosen) };
  };
  for (const [name, gw] of Object.entries(config.gateways)) {
    if (gw.exits === undefined) out.set(name, state(name, gw.vxlanId, false));
    else for (const exit of gw.exits) out.set(exit.name, state(exit.name, exit.vxlanId, true));
  }
  return out;
}

/**
 * The ranges, each kind from the config when the config sets it (config wins, as for the webhook):
 * - pods: the config's cluster.podCIDRs plus every node's IPv4 spec.podCIDRs (a node added later is
 *   reached directly; with config ranges that already cover the nodes' the merge changes nothing);
 * - services: the config's cluster.serviceCIDRs, else the IPv4 ranges of the cluster's ServiceCIDR
 *   objects (networking.k8s.io/v1, the source the webhook's discovery tries first);
 * - DNS IPs and extra ranges: the config's.
 * IPv6 ranges are used only when configured (as the webhook's discovery does). undefined when the
 * service range or every pod range is unknown: the agent then routes nothing (the gate holds the
 * pods) rather than guess.
 */
export function agentRanges(config: Config, nodes: V1Node[], serviceCIDRs: V1ServiceCIDR[] = []): ClusterRanges | undefined {
  const nodeCIDRs = ipv4(nodes.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : [])));
  const podCIDRs = [...new Set([...config.cluster.podCIDRs, ...nodeCIDRs])];
  const fromConfig = config.cluster.serviceCIDRs.length > 0;
  const services = fromConfig ? [...config.cluster.serviceCIDRs] : [...new Set(ipv4(serviceCIDRs.flatMap((s) => s.spec?.cidrs ?? [])))];
  if (podCIDRs.length === 0 || services.length === 0) return undefined;
  const podSource = [config.cluster.podCIDRs.length > 0 ? 'config cluster.podCIDRs' : '', nodeCIDRs.length > 0 ? "nodes' spec.podCIDRs" : ''].filter(Boolean).join(' + ');
  return {
    podCIDRs,
    serviceCIDRs: services,
    extraCIDRs: [...config.cluster.extraAllowedCIDRs],
    dnsIPs: [...config.cluster.dnsIPs],
    sources: { podCIDRs: podSource, serviceCIDRs: fromConfig ? 'config cluster.serviceCIDRs' : 'ServiceCIDR API (networking.k8s.io/v1)', dnsIPs: 'config cluster.dnsIPs' },
  };
}

/** Well-formed IPv4 CIDRs only: what the API says is input, not trusted. */
function ipv4(cidrs: string[]): string[] {
  return cidrs.filter((c) => {
    try {
      return parseCidr(c).family === 4;
    } catch {
      return false;
    }
  });
}
