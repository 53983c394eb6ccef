// What the agent reads from the API, reduced to the plan's inputs (pure): the agent-mode routed pods
// on its node, each gateway's current pod and readiness, and the cluster ranges.

import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { gatewayServiceName } from '../config/schema.js';
import { ANNOTATION_STATUS, LABEL_ROUTED } from '../constants.js';
import type { GatewayState, PodDesired } from './reconcile.js';

export const GATEWAY_POD_SELECTOR = 'app.kubernetes.io/name=podvpn-gateway';
export const GATEWAY_INSTANCE_LABEL = 'app.kubernetes.io/instance';

/** Routed pods whose status says agent mode, on this node, not finished. */
export function agentPods(pods: V1Pod[], nodeName: string): PodDesired[] {
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
    out.push({ uid: meta.uid, namespace: meta.namespace ?? '', name: meta.name ?? '', gateway });
  }
  return out;
}

/** Each configured gateway's pod: a running, non-terminating one, Ready preferred. */
export function gatewayStates(pods: V1Pod[], config: Config): Map<string, GatewayState> {
  const out = new Map<string, GatewayState>();
  for (const name of Object.keys(config.gateways)) {
    const candidates = pods.filter(
      (p) =>
        p.metadata?.labels?.[GATEWAY_INSTANCE_LABEL] === gatewayServiceName(name) &&
        p.metadata?.deletionTimestamp === undefined &&
        typeof p.status?.podIP === 'string' &&
        p.status.podIP !== '',
    );
    const ready = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    const chosen = candidates.find(ready) ?? candidates[0];
    out.set(name, { name, podIP: chosen?.status?.podIP, ready: chosen !== undefined && ready(chosen) });
  }
  return out;
}

/**
 * The ranges: the config's, plus every node's spec.podCIDRs (a node added later is reached directly).
 * undefined when the service range or a pod range is unknown: the agent then routes nothing (the gate
 * holds the pods) rather than guess.
 */
export function agentRanges(config: Config, nodes: V1Node[]): ClusterRanges | undefined {
  const nodeCIDRs = nodes.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
  const podCIDRs = [...new Set([...config.cluster.podCIDRs, ...nodeCIDRs])];
  if (podCIDRs.length === 0 || config.cluster.serviceCIDRs.length === 0) return undefined;
  return {
    podCIDRs,
    serviceCIDRs: [...config.cluster.serviceCIDRs],
    extraCIDRs: [...config.cluster.extraAllowedCIDRs],
    dnsIPs: [...config.cluster.dnsIPs],
    sources: { podCIDRs: 'config + nodes spec.podCIDRs', serviceCIDRs: 'config', dnsIPs: 'config' },
  };
}
