// The decision (pure): skip, deny with a reason a user can act on, or inject through a gateway.

import type { ClusterRanges } from '../cluster/ranges.js';
import { missingRanges } from '../cluster/ranges.js';
import type { Config, Gateway } from '../config/schema.js';
import {
  ANNOTATION_ALLOW_EXISTING_VPN,
  ANNOTATION_DATA_PLANE,
  ANNOTATION_GATEWAY,
  ANNOTATION_MIRROR,
  ANNOTATION_STATUS,
  CLIENT_INIT_NAME,
  CLIENT_NO_TOKEN_VOLUME_NAME,
  CLIENT_SIDECAR_NAME,
  CLIENT_VOLUME_NAME,
  DATA_PLANES,
  type DataPlane,
  EXCLUDED_NAMESPACES,
  FOREIGN_MESH_INIT_CONTAINERS,
  GATE_INIT_NAME,
  LABEL_INJECT,
  LABEL_PSA_ENFORCE,
  LABEL_PSA_WARN,
  LABEL_ROUTED,
} from '../constants.js';
import type { DenyReason, SkipReason } from '../errors.js';
import { clip } from '../util/clip.js';
import { podExitKey } from '../exits/assign.js';
import { type ExitFacts, exitForPod } from '../exits/admission.js';
import { searchesProblem } from './dns.js';
import { gatewayNameFor, isPodCreate, namespaceOptedIn } from './rules.js';
import type { NamespaceFacts, Pod, PodSpec } from './types.js';

export interface DecisionInput {
  operation: string;
  /** request.resource.resource, e.g. "pods". */
  resource: string;
  subResource?: string | undefined;
  /** request.namespace: a controller-created pod often has no metadata.namespace. */
  namespace: string;
  /** Narrowed from the wire by readPod() (wire.ts) at the edge. */
  pod: Pod;
  /** undefined: no namespace cache (standalone). The API server only sends opted-in pods. */
  namespaceFacts: NamespaceFacts | undefined;
  /** undefined or incomplete: the pod is denied rather than routed around a guessed range. */
  ranges: ClusterRanges | undefined;
  /** Why the ranges are unknown, with what to configure (discovery's problem): the denial says it. */
  rangesProblem?: string | undefined;
  config: Config;
  /** Exit groups: the review's uid (tells apart replicas with no name yet; src/exits/assign.ts). */
  reviewUid?: string | undefined;
  /** Exit groups: the key to hash instead of the pod's (offline: the workload's). */
  exitKey?: string | undefined;
  /** Exit groups: what is known of a group's exits' health and loads. */
  exitFacts?: ((gateway: string) => ExitFacts | undefined) | undefined;
}

export type Decision =
  | { action: 'skip'; reason: SkipReason }
  /** Injected before (reinvocation, a manifest injected offline): ensure its gateway's kill switch, keep its clients first. */
  | { action: 'readmit'; gateway: string }
  | { action: 'deny'; reason: DenyReason; message: string }
  /** `ranges`: the complete ranges the injection and the kill switch are built from. `exit`: the exit of a group. */
  | { action: 'inject'; gateway: Gateway; dataPlane: DataPlane; ranges: ClusterRanges; warnings: string[]; exit?: string };

const RESTRICTIVE_LEVELS = new Set(['baseline', 'restricted']);

export function decide(input: DecisionInput): Decision {
  const { pod, config } = input;
  if (!isPodCreate(input)) {
    return skip('not-pod-create');
  }
  // System namespaces first: nothing a review claims (a status annotation, a routed label) may make
  // podvpn write a policy there. The webhook has no caller authentication.
  if (EXCLUDED_NAMESPACES.includes(input.namespace)) return skip('excluded-namespace');
  const labels = objectOrEmpty(pod.metadata?.labels);
  const annotations = objectOrEmpty(pod.metadata?.annotations);
  if (ANNOTATION_MIRROR in annotations) return skip('mirror-pod');
  if (ANNOTATION_STATUS in annotations) {
    // Re-admission (reinvocation, a pod injected offline): nothing to add, but the kill switch selects
    // the routed label, so a pod that lost it would run outside the kill switch.
    const routed = labels[LABEL_ROUTED];
    if (typeof routed !== 'string' || routed === '') {
      return deny(
        'incomplete-injection',
        `the pod carries ${ANNOTATION_STATUS} but not the ${LABEL_ROUTED} label the kill switch selects; ` +
          `remove the ${ANNOTATION_STATUS} annotation so podvpn injects the pod again`,
      );
    }
    // The routed label names the policy podvpn ensures next: only a configured gateway, checked as an
    // own property ("constructor" or "__proto__" are not gateways).
    if (!Object.hasOwn(config.gateways, routed)) {
      return deny(
        'unknown-gateway',
        `the pod label ${LABEL_ROUTED}="${clip(routed)}" names no configured gateway ` +
          `(configured: ${Object.keys(config.gateways).join(', ')}); podvpn ensures a kill switch only for its own gateways`,
      );
    }
    return { action: 'readmit', gateway: routed };
  }

  const podChoice = labels[LABEL_INJECT];
  if (podChoice !== undefined && podChoice !== 'true' && podChoice !== 'false') {
    return deny(
      'invalid-inject-label',
      `pod label ${LABEL_INJECT}="${clip(String(podChoice))}" is not valid: use "true" to route the pod through the VPN or "false" to opt it out`,
    );
  }
  if (podChoice === 'false') return skip('opted-out');
  const nsFacts = input.namespaceFacts;
  const nsOptedIn = nsFacts === undefined || namespaceOptedIn(nsFacts.labels);
  if (podChoice !== 'true' && !nsOptedIn) return skip('not-opted-in');

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

  const notLinux = linuxExcluded(spec);
  if (notLinux !== undefined) {
    return deny(
      'unsupported-os',
      `the pod can only run on ${notLinux}, but the VPN client is a Linux container; ` +
        `run the pod on Linux nodes, or label it ${LABEL_INJECT}=false to run it unrouted`,
    );
  }

  const vpn = existingVpn(spec);
  const keepVpn = annotations[ANNOTATION_ALLOW_EXISTING_VPN] === 'true';
  if (vpn !== undefined && !keepVpn) {
    return deny(
      'existing-vpn',
      `${vpn.where} already runs a VPN (${vpn.what}); podvpn would put a second tunnel around it and the two ` +
        `would fight over the pod's routes and DNS. Remove the "${vpn.container}" container (and what only it needs: ` +
        `its NET_ADMIN capability, /dev/net/tun, its VPN credentials), or annotate the pod ` +
        `${ANNOTATION_ALLOW_EXISTING_VPN}: "true" to keep it and route through podvpn anyway`,
    );
  }

  const gatewayName = gatewayNameFor(annotations, nsFacts?.annotations, config);
  const gateway = Object.hasOwn(config.gateways, gatewayName) ? config.gateways[gatewayName] : undefined;
  if (gateway === undefined) {
    const source = ANNOTATION_GATEWAY in annotations ? 'pod' : 'namespace';
    return deny(
      'unknown-gateway',
      `the ${source} annotation ${ANNOTATION_GATEWAY}="${clip(String(gatewayName))}" names no configured gateway ` +
        `(configured: ${Object.keys(config.gateways).join(', ')}); fix the annotation or add the gateway to podvpn's config`,
    );
  }

  const mode = dataPlaneFor(config.dataPlane, nsFacts);
  if (!mode.ok) {
    return deny(
      'invalid-data-plane',
      `namespace annotation ${ANNOTATION_DATA_PLANE}="${clip(mode.value)}" is not a data plane podvpn knows ` +
        `(use ${DATA_PLANES.map((d) => `"${d}"`).join(' or ')}); podvpn will not pick one for the pod`,
    );
  }
  const dataPlane = mode.dataPlane;

  // Exit groups: the pin or the assigned exit; `routed.gateway` is that exit's view of the group.
  const routed = exitForPod({
    gateway,
    podAnnotations: annotations,
    key: input.exitKey ?? podExitKey({ namespace: input.namespace, name: pod.metadata?.name, generateName: pod.metadata?.generateName, reviewUid: input.reviewUid }),
    dataPlane,
    config,
    facts: input.exitFacts?.(gateway.name),
  });
  if (!routed.ok) return deny(routed.reason, routed.message);

  // Pod Security follows the mode: only pod-gateway's client needs NET_ADMIN and root. The agent-mode
  // gate passes "restricted" (see agent-patch.ts and pod-security.test.ts).
  const enforce = nsFacts?.labels[LABEL_PSA_ENFORCE];
  if (dataPlane === 'pod-gateway' && enforce !== undefined && RESTRICTIVE_LEVELS.has(enforce)) {
    return deny(
      'pod-security',
      `namespace ${clip(input.namespace)} enforces Pod Security level "${enforce}", which forbids the NET_ADMIN and NET_RAW ` +
        `capabilities the VPN client needs; label the namespace ${LABEL_PSA_ENFORCE}=privileged, annotate it ` +
        `${ANNOTATION_DATA_PLANE}=agent (no capabilities in the pod; needs the podvpn-agent DaemonSet), or opt the pod out with ${LABEL_INJECT}=false`,
    );
  }

  const ranges = input.ranges;
  const missing = missingRanges(ranges);
  if (ranges === undefined || missing.length > 0) {
    return deny(
      'cluster-ranges-unknown',
      input.rangesProblem ??
        `podvpn does not know the cluster's ${missing.join(', ')} and will not guess the kill switch's ranges; ` +
          `set them in podvpn's config file (${missing.join(', ')})`,
    );
  }

  const dnsProblem = searchesProblem(input.namespace, config.cluster.domain, spec.dnsConfig?.searches);
  if (dnsProblem !== undefined) return deny('dns-config-too-large', dnsProblem);

  const taken = [...(spec.initContainers ?? []), ...spec.containers].map((c) => c?.name);
  const volumes = (spec.volumes ?? []).map((v) => v?.name);
  const clash = [CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, GATE_INIT_NAME].find((n) => taken.includes(n)) ??
    [CLIENT_VOLUME_NAME, CLIENT_NO_TOKEN_VOLUME_NAME].find((n) => volumes.includes(n));
  if (clash !== undefined) {
    return deny(
      'name-conflict',
      `the pod already has "${clash}" but no ${ANNOTATION_STATUS} annotation; remove it or let podvpn inject the pod unmodified`,
    );
  }

  const warnings = warningsFor(input, spec.initContainers ?? [], nsFacts, dataPlane);
  if (vpn !== undefined) {
    warnings.push(`podvpn: ${vpn.where} runs its own VPN (${vpn.what}); kept because ${ANNOTATION_ALLOW_EXISTING_VPN} is "true"`);
  }
  warnings.push(...routed.warnings);
  return { action: 'inject', gateway: routed.gateway, dataPlane, ranges, warnings, ...(routed.exit === undefined ? {} : { exit: routed.exit }) };
}

/** A VPN the pod already runs: what the user has to remove before podvpn can route the pod. */
export interface ExistingVpn {
  container: string;
  /** `container "gluetun" (image qmcgaw/gluetun:v3.40.0)` */
  where: string;
  what: string;
}

/**
 * Images and settings of the VPNs home-lab manifests put into download-client pods: gluetun (as a
 * container or a native sidecar), pod-gateway's client added by hand, WireGuard and OpenVPN clients,
 * and app images with a VPN built in (haugene/transmission-openvpn, binhex's *vpn images).
 * podvpn's own containers are not counted: a pod carrying them is handled by the status checks.
 */
const VPN_SIGNS: Array<{ what: string; image?: RegExp; name?: RegExp; command?: RegExp; env?: RegExp }> = [
  { what: 'gluetun', image: /(^|\/)gluetun([:@]|$)/, name: /^gluetun$/, env: /^VPN_SERVICE_PROVIDER$/ },
  { what: "a pod-gateway client added by hand", image: /(^|\/)pod-gateway([:@]|$)/, command: /client_(init|sidecar)\.sh/ },
  { what: 'an app image with OpenVPN built in', image: /transmission-openvpn|(^|\/)arch-[a-z0-9]+vpn([:@]|$)/, env: /^OPENVPN_PROVIDER$/ },
  { what: 'WireGuard', image: /wireguard|(^|\/)wg-easy([:@]|$)|boringtun/, name: /^(wireguard|wg)$/, command: /wg-quick/ },
  { what: 'OpenVPN', image: /openvpn/, name: /^openvpn$/, command: /(^|\/)openvpn$/ },
];

export function existingVpn(spec: Pick<PodSpec, 'containers' | 'initContainers'>): ExistingVpn | undefined {
  const all = [...(Array.isArray(spec.initContainers) ? spec.initContainers : []), ...(Array.isArray(spec.containers) ? spec.containers : [])];
  for (const c of all) {
    // List items are not checked by readPod(): a null or a scalar is no container.
    if (c === null || typeof c !== 'object') continue;
    const name = typeof c.name === 'string' ? c.name : '';
    if (name === CLIENT_INIT_NAME || name === CLIENT_SIDECAR_NAME) continue;
    const image = typeof c.image === 'string' ? c.image.toLowerCase() : '';
    const words = [...(Array.isArray(c.command) ? c.command : []), ...(Array.isArray(c.args) ? c.args : [])].filter(
      (w): w is string => typeof w === 'string',
    );
    const envNames = (Array.isArray(c.env) ? c.env : []).map((e) => (e !== null && typeof e === 'object' ? e.name : undefined));
    for (const sign of VPN_SIGNS) {
      const hit =
        (sign.image?.test(image) ?? false) ||
        (sign.name?.test(name) ?? false) ||
        words.some((w) => sign.command?.test(w) ?? false) ||
        envNames.some((e) => typeof e === 'string' && (sign.env?.test(e) ?? false));
      if (hit) {
        return { container: name, where: `container "${name}"${image === '' ? '' : ` (image ${c.image})`}`, what: sign.what };
      }
    }
  }
  return undefined;
}


/**
 * The data plane: the namespace's podvpn.io/data-plane annotation, else the config's `dataPlane`.
 * An unknown value is reported, never replaced by the default (a typo must not silently pick a mode).
 */
export function dataPlaneFor(
  configured: DataPlane,
  nsFacts: NamespaceFacts | undefined,
): { ok: true; dataPlane: DataPlane } | { ok: false; value: string } {
  const annotations = nsFacts?.annotations;
  if (annotations === undefined || !Object.hasOwn(annotations, ANNOTATION_DATA_PLANE)) return { ok: true, dataPlane: configured };
  const value = annotations[ANNOTATION_DATA_PLANE];
  const known = DATA_PLANES.find((d) => d === value);
  if (known !== undefined) return { ok: true, dataPlane: known };
  return { ok: false, value: String(value) };
}

function warningsFor(
  input: DecisionInput,
  initContainers: Array<{ name?: string } | null>,
  nsFacts: NamespaceFacts | undefined,
  dataPlane: DataPlane,
): string[] {
  const warnings: string[] = [];
  const warnLevel = nsFacts?.labels[LABEL_PSA_WARN];
  if (dataPlane === 'pod-gateway' && warnLevel !== undefined && RESTRICTIVE_LEVELS.has(warnLevel)) {
    warnings.push(`podvpn: namespace Pod Security warn=${warnLevel} flags the VPN client's NET_ADMIN; set it to privileged`);
  }
  const meshes = new Set<string>(); // one warning per mesh, however many containers carry its name
  for (const c of initContainers) {
    if (c?.name !== undefined && FOREIGN_MESH_INIT_CONTAINERS.includes(c.name) && !meshes.has(c.name)) {
      meshes.add(c.name);
      warnings.push(`podvpn: ${c.name} also rewrites this pod's routing; the VPN route may conflict with that mesh`);
    }
  }
  if (dataPlane === 'agent') {
    // The in-pod firewall holds against pods without NET_ADMIN; one with it (or privileged) can undo it.
    const spec = input.pod.spec ?? {};
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const sc = c?.securityContext;
      const add = Array.isArray(sc?.capabilities?.add) ? sc.capabilities.add : [];
      if (sc?.privileged === true || add.includes('NET_ADMIN') || add.includes('ALL')) {
        warnings.push(`podvpn: container ${clip(String(c?.name))} has NET_ADMIN and can undo agent mode's in-pod firewall`);
      }
    }
  }
  const owners = input.pod.metadata?.ownerReferences ?? [];
  if (dataPlane === 'pod-gateway' && input.config.sidecarMode === 'container' && Array.isArray(owners) && owners.some((o) => o?.kind === 'Job')) {
    warnings.push('podvpn: sidecarMode "container" keeps this Job\'s pod running; use "native" so Jobs complete');
  }
  return warnings;
}

const OS_LABELS = ['kubernetes.io/os', 'beta.kubernetes.io/os'];

/**
 * Where the pod says it cannot run on Linux: spec.os.name, a node selector on the OS label, or a
 * required node affinity whose every term excludes Linux nodes (terms are ORed, expressions ANDed).
 * Returns what it can run on, for the denial; undefined when a Linux node may take it.
 */
export function linuxExcluded(spec: Record<string, unknown>): string | undefined {
  const os = spec.os;
  if (isObject(os) && typeof os.name === 'string' && os.name !== '' && os.name !== 'linux') {
    return `${clip(os.name)} (spec.os.name)`;
  }
  const selector = spec.nodeSelector;
  if (isObject(selector)) {
    for (const key of OS_LABELS) {
      const value = selector[key];
      if (typeof value === 'string' && value !== 'linux') return `${clip(value)} nodes (nodeSelector ${key}=${clip(value)})`;
    }
  }
  const affinity = isObject(spec.affinity) ? spec.affinity : undefined;
  const nodeAffinity = isObject(affinity?.nodeAffinity) ? affinity.nodeAffinity : undefined;
  const required = nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  const terms = isObject(required) ? required.nodeSelectorTerms : undefined;
  if (!Array.isArray(terms) || terms.length === 0) return undefined;
  const termExcludesLinux = (term: unknown): boolean => {
    const expressions = isObject(term) && Array.isArray(term.matchExpressions) ? term.matchExpressions : [];
    return expressions.some((e: unknown) => {
      if (!isObject(e) || typeof e.key !== 'string' || !OS_LABELS.includes(e.key)) return false;
      const values = Array.isArray(e.values) ? e.values : [];
      if (e.operator === 'In') return !values.includes('linux');
      if (e.operator === 'NotIn') return values.includes('linux');
      return e.operator === 'DoesNotExist'; // every node carries the OS label
    });
  };
  return terms.every(termExcludesLinux) ? 'non-Linux nodes (required node affinity on kubernetes.io/os)' : undefined;
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

function objectOrEmpty(value: Record<string, string> | null | undefined): Record<string, string> {
  return isObject(value) ? value : {};
}
