// What the agent reads from the API, reduced to the plan's inputs (pure): the agent-mode routed pods
// on its node, each gateway's current pod and readiness, and the cluster ranges.

import type { V1Node, V1Pod, V1ServiceCIDR } from '@kubernetes/client-node';
import { parseCidr } from '../cidr/cidr.js';
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
