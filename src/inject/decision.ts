// The decision (pure): skip, deny with a reason a user can act on, or inject through a gateway.

import type { ClusterRanges } from '../cluster/ranges.js';
import { missingRanges } from '../cluster/ranges.js';
import type { Config, Gateway } from '../config/schema.js';
import {
  ANNOTATION_GATEWAY,
  ANNOTATION_MIRROR,
  ANNOTATION_STATUS,
  CLIENT_INIT_NAME,
  CLIENT_SIDECAR_NAME,
  CLIENT_VOLUME_NAME,
  EXCLUDED_NAMESPACES,
  FOREIGN_MESH_INIT_CONTAINERS,
  LABEL_INJECT,
  LABEL_PSA_ENFORCE,
  LABEL_PSA_WARN,
  LABEL_ROUTED,
  NAMESPACE_INJECT_VALUE,
} from '../constants.js';
import type { DenyReason, SkipReason } from '../errors.js';
import { clip } from '../util/clip.js';
import { searchesProblem } from './dns.js';
import type { NamespaceFacts, Pod } from './types.js';

export interface DecisionInput {
  operation: string;
  /** request.resource.resource, e.g. "pods". */
  resource: string;
  subResource?: string | undefined;
  /** request.namespace: a controller-created pod often has no metadata.namespace. */
  namespace: string;
  pod: Pod;
  /** undefined: no namespace cache (standalone). The API server only sends opted-in pods. */
  namespaceFacts: NamespaceFacts | undefined;
  /** undefined or incomplete: the pod is denied rather than routed around a guessed range. */
  ranges: ClusterRanges | undefined;
  config: Config;
}

export type Decision =
  | { action: 'skip'; reason: SkipReason }
  | { action: 'deny'; reason: DenyReason; message: string }
  | { action: 'inject'; gateway: Gateway; warnings: string[] };

const RESTRICTIVE_LEVELS = new Set(['baseline', 'restricted']);

export function decide(input: DecisionInput): Decision {
  const { pod, config } = input;
  if (input.operation !== 'CREATE' || input.resource !== 'pods' || (input.subResource ?? '') !== '') {
    return skip('not-pod-create');
  }
  if (!isObject(pod) || (pod.spec !== undefined && pod.spec !== null && !isObject(pod.spec))) {
    return deny('invalid-pod', 'the pod in the AdmissionReview is not an object; podvpn cannot route it');
  }
  const labels = objectOrEmpty(pod.metadata?.labels);
  const annotations = objectOrEmpty(pod.metadata?.annotations);
  if (ANNOTATION_MIRROR in annotations) return skip('mirror-pod');
  if (ANNOTATION_STATUS in annotations) {
    // Re-admission (reinvocation, a pod injected offline): nothing to add, but the kill switch selects
    // the routed label, so a pod that lost it would run outside the kill switch.
    if (typeof labels[LABEL_ROUTED] !== 'string' || labels[LABEL_ROUTED] === '') {
      return deny(
        'incomplete-injection',
        `the pod carries ${ANNOTATION_STATUS} but not the ${LABEL_ROUTED} label the kill switch selects; ` +
          `remove the ${ANNOTATION_STATUS} annotation so podvpn injects the pod again`,
      );
    }
    return skip('already-injected');
  }
  if (EXCLUDED_NAMESPACES.includes(input.namespace)) return skip('excluded-namespace');

  const podChoice = labels[LABEL_INJECT];
  if (podChoice !== undefined && podChoice !== 'true' && podChoice !== 'false') {
    return deny(
      'invalid-inject-label',
      `pod label ${LABEL_INJECT}="${clip(String(podChoice))}" is not valid: use "true" to route the pod through the VPN or "false" to opt it out`,
    );
  }
  if (podChoice === 'false') return skip('opted-out');
  const nsFacts = input.namespaceFacts;
  const namespaceOptedIn = nsFacts === undefined || nsFacts.labels[LABEL_INJECT] === NAMESPACE_INJECT_VALUE;
  if (podChoice !== 'true' && !namespaceOptedIn) return skip('not-opted-in');

  const spec = pod.spec ?? {};
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) {
    return deny('invalid-pod', 'the pod has no containers; podvpn cannot route it');
  }
  if (spec.hostNetwork === true) {
    return deny(
      'host-network',
      `pod uses hostNetwork, so its traffic would leave with the node's address and cannot be routed through the VPN; ` +
        `remove hostNetwork, or label the pod ${LABEL_INJECT}=false to run it unrouted`,
    );
  }

  const gatewayName = annotations[ANNOTATION_GATEWAY] ?? nsFacts?.annotations[ANNOTATION_GATEWAY] ?? config.defaultGateway;
  const gateway = config.gateways[gatewayName];
  if (gateway === undefined) {
    const source = ANNOTATION_GATEWAY in annotations ? 'pod' : 'namespace';
    return deny(
      'unknown-gateway',
      `the ${source} annotation ${ANNOTATION_GATEWAY}="${clip(String(gatewayName))}" names no configured gateway ` +
        `(configured: ${Object.keys(config.gateways).join(', ')}); fix the annotation or add the gateway to podvpn's config`,
    );
  }

  const enforce = nsFacts?.labels[LABEL_PSA_ENFORCE];
  if (enforce !== undefined && RESTRICTIVE_LEVELS.has(enforce)) {
    return deny(
      'pod-security',
      `namespace ${clip(input.namespace)} enforces Pod Security level "${enforce}", which forbids the NET_ADMIN and NET_RAW ` +
        `capabilities the VPN client needs; label the namespace ${LABEL_PSA_ENFORCE}=privileged, or opt the pod out with ${LABEL_INJECT}=false`,
    );
  }

  const missing = missingRanges(input.ranges);
  if (missing.length > 0) {
    return deny(
      'cluster-ranges-unknown',
      `podvpn does not know the cluster's ${missing.join(', ')} and will not guess the kill switch's ranges; ` +
        `set them in podvpn's config file (${missing.join(', ')})`,
    );
  }

  const dnsProblem = searchesProblem(input.namespace, config.cluster.domain, spec.dnsConfig?.searches);
  if (dnsProblem !== undefined) return deny('dns-config-too-large', dnsProblem);

  const taken = [...(spec.initContainers ?? []), ...spec.containers].map((c) => c?.name);
  const volumes = (spec.volumes ?? []).map((v) => v?.name);
  const clash = [CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME].find((n) => taken.includes(n)) ??
    (volumes.includes(CLIENT_VOLUME_NAME) ? CLIENT_VOLUME_NAME : undefined);
  if (clash !== undefined) {
    return deny(
      'name-conflict',
      `the pod already has "${clash}" but no ${ANNOTATION_STATUS} annotation; remove it or let podvpn inject the pod unmodified`,
    );
  }

  return { action: 'inject', gateway, warnings: warningsFor(input, spec.initContainers ?? [], nsFacts) };
}

function warningsFor(
  input: DecisionInput,
  initContainers: Array<{ name?: string } | null>,
  nsFacts: NamespaceFacts | undefined,
): string[] {
  const warnings: string[] = [];
  const warnLevel = nsFacts?.labels[LABEL_PSA_WARN];
  if (warnLevel !== undefined && RESTRICTIVE_LEVELS.has(warnLevel)) {
    warnings.push(`podvpn: namespace Pod Security warn=${warnLevel} flags the VPN client's NET_ADMIN; set it to privileged`);
  }
  const meshes = new Set<string>(); // one warning per mesh, however many containers carry its name
  for (const c of initContainers) {
    if (c?.name !== undefined && FOREIGN_MESH_INIT_CONTAINERS.includes(c.name) && !meshes.has(c.name)) {
      meshes.add(c.name);
      warnings.push(`podvpn: ${c.name} also rewrites this pod's routing; the VPN route may conflict with that mesh`);
    }
  }
  const owners = input.pod.metadata?.ownerReferences ?? [];
  if (input.config.sidecarMode === 'container' && Array.isArray(owners) && owners.some((o) => o?.kind === 'Job')) {
    warnings.push('podvpn: sidecarMode "container" keeps this Job\'s pod running; use "native" so Jobs complete');
  }
  return warnings;
}

function skip(reason: SkipReason): Decision {
  return { action: 'skip', reason };
}

function deny(reason: DenyReason, message: string): Decision {
  return { action: 'deny', reason, message };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectOrEmpty(value: unknown): Record<string, string> {
  return isObject(value) ? (value as Record<string, string>) : {};
}
