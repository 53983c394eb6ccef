// The pieces both injections (pod-gateway's client, agent mode's gate) build their patch from: the
// input and output types, DNS through the gateway, the no-token volume and the JSON pointer helpers.

import type { V1PodDNSConfig, V1Volume } from '@kubernetes/client-node';
import type { Config, Gateway } from '../config/schema.js';
import { CLIENT_NO_TOKEN_VOLUME_NAME, type DataPlane } from '../constants.js';
import { clusterSearches, droppedNameservers, mergeSearches } from './dns.js';
import type { ClientSettings } from './settings.js';
import type { InjectionStatus, PatchOperation, Pod } from './types.js';

export interface InjectionInput {
  pod: Pod;
  /** The namespace the pod is created in (request.namespace). */
  namespace: string;
  gateway: Gateway;
  settings: ClientSettings;
  config: Config;
  /** The decision's data plane; absent means pod-gateway. */
  dataPlane?: DataPlane;
  /** Exit groups: the decision's exit (labelled podvpn.io/exit and recorded in the status). */
  exit?: string | undefined;
}

export interface Injection {
  patch: PatchOperation[];
  warnings: string[];
}

/** An empty directory: what the client sees where the app's API token would be. */
export function noTokenVolume(): V1Volume {
  return { name: CLIENT_NO_TOKEN_VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '1Ki' } };
}

/**
 * DNS goes to the gateway's dnsmasq through the tunnel. The pod keeps its namespace's search path
 * for in-cluster names (dnsmasq forwards the cluster domain to cluster DNS) and the user's own
 * searches and options. The user's own nameservers are dropped: they would be asked outside the VPN.
 */
export function dnsConfig(input: InjectionInput): { config: V1PodDNSConfig; warnings: string[] } {
  const domain = input.config.cluster.domain;
  const user = input.pod.spec?.dnsConfig ?? {};
  // decide() denies a list that does not fit; the merge never copies more than the API server accepts.
  const { searches } = mergeSearches(clusterSearches(input.namespace, domain), user.searches);
  const options = Array.isArray(user.options) ? user.options.filter((o) => o !== null && typeof o === 'object') : [];
  if (!options.some((o) => o.name === 'ndots')) options.unshift({ name: 'ndots', value: '5' });
  const warnings: string[] = [];
  const dropped = droppedNameservers(user.nameservers, input.gateway.dns);
  if (dropped.length > 0) {
    warnings.push(`podvpn: dnsConfig nameservers ${dropped.join(', ')} replaced by the VPN gateway's DNS`);
  }
  return { config: { nameservers: [input.gateway.dns], searches, options }, warnings };
}

/** Add keys to a map that may be missing or null (then the whole map is added). */
export function mapEntries(path: string, current: unknown, entries: Record<string, string>): PatchOperation[] {
  if (current === undefined || current === null || typeof current !== 'object') {
    return [{ op: 'add', path, value: { ...entries } }];
  }
  return Object.entries(entries).map(([key, value]) => ({ op: 'add', path: `${path}/${escapePointer(key)}`, value }));
}

export function listAppend(path: string, current: unknown, ...values: unknown[]): PatchOperation[] {
  return Array.isArray(current)
    ? values.map((value) => ({ op: 'add', path: `${path}/-`, value }))
    : [{ op: 'add', path, value: values }];
}

/** RFC 6901: "~" is "~0" and "/" is "~1" in a JSON pointer. */
export function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * What `podvpn uninject` needs to give the pod back exactly: the values podvpn replaced (`prior`) and
 * what it created where nothing was (`created`, JSON pointers). Containers, the volume, the label and
 * the annotations are removed by name.
 */
export function undoRecord(pod: Pod, native: boolean): Pick<InjectionStatus, 'prior' | 'created'> {
  const prior: Record<string, unknown> = {};
  const created: string[] = [];
  const note = (path: string, value: unknown): void => {
    if (value === undefined) created.push(path);
    else prior[path] = value;
  };
  const spec = pod.spec ?? undefined; // readPod(): an object, or absent or null
  if (!isMap(pod.metadata)) note('/metadata', pod.metadata);
  if (!isMap(pod.metadata?.labels)) note('/metadata/labels', pod.metadata?.labels);
  if (!isMap(pod.metadata?.annotations)) note('/metadata/annotations', pod.metadata?.annotations);
  if (spec === undefined) note('/spec', pod.spec);
  if (!Array.isArray(spec?.initContainers)) note('/spec/initContainers', spec?.initContainers);
  if (!native && !Array.isArray(spec?.containers)) note('/spec/containers', spec?.containers);
  if (!Array.isArray(spec?.volumes)) note('/spec/volumes', spec?.volumes);
  note('/spec/dnsPolicy', spec?.dnsPolicy);
  note('/spec/dnsConfig', spec?.dnsConfig);
  return { ...(Object.keys(prior).length > 0 ? { prior } : {}), ...(created.length > 0 ? { created } : {}) };
}

function isMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
