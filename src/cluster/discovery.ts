// Cluster range discovery: the edge that asks the API server for the pod and service ranges and the
// cluster DNS IP. Config always wins; a kind of range the config gives is never looked up.
//
//   pod CIDRs      nodes' spec.podCIDRs (merged); instead the first cluster-wide range that covers
//                  them all (kubeadm-config podSubnet, kube-proxy clusterCIDR, Flannel's Network,
//                  k3s --cluster-cidr: stable as nodes come and go); plus Calico's IPPools and
//                  Cilium's cluster pool, where those CNIs really give pods addresses
//                  (src/cluster/pod-range-sources.ts)
//   service CIDRs  the ServiceCIDR API (networking.k8s.io/v1, else v1beta1), else the error of a
//                  dryRun=All Service create with an out-of-range clusterIP, else kubeadm-config's
//                  serviceSubnet
//   DNS IPs        Service kube-system/kube-dns
//   pod MTU        what the CNI publishes (src/cluster/pod-mtu.ts): Calico's calico-config veth_mtu or
//                  its operator's Installation, Cilium's cilium-config mtu; Flannel says none. The
//                  ConfigMaps the pod-range sources read are read once and serve both.
//
// IPv6 ranges are found but not used unless configured: the policy carries no IPv6 by default.
// Each result says where it came from; what failed is kept as notes for the log and the deny message.
// Calls made here are listed in src/kube/permissions.ts (the RBAC must grant them).

import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig, NetworkingV1Api, NetworkingV1beta1Api, type V1Node } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { type CidrError, mergeCidrStrings, parseAddress, parseCidr } from '../cidr/cidr.js';
import type { Config } from '../config/schema.js';
import { SYSTEM_NAMESPACE } from '../constants.js';
import { checkRanges, type Found, type RangeCheck, resolveRanges } from './ranges.js';
import { calicoPools, ciliumClusterPool, combinePodRanges, flannelNetwork, k3sClusterCIDR, kubeProxyClusterCIDR } from './pod-range-sources.js';
import { type PodMTU, podMTUFromCni } from './pod-mtu.js';
import { withDeadline } from '../util/deadline.js';
import { apiMessage, describeError } from '../kube/errors.js';

export interface Discovered {
  podCIDRs?: Found;
  serviceCIDRs?: Found;
  dnsIPs?: Found;
  /** The pod network's MTU, where the CNI publishes it. */
  podMTU?: PodMTU;
  /** Each node's own IPv4 pod ranges (when the nodes were listed): the coverage check reads them. */
  nodeRanges?: NodeRange[];
  /** What was tried and did not answer, one line each. */
  notes: string[];
}

export interface NodeRange {
  node: string;
  cidrs: string[];
}

/** The ConfigMaps and API the pod-range sources read (src/kube/permissions.ts grants exactly these). */
export const POD_RANGE_CONFIGMAPS = { kubeProxy: 'kube-proxy', cilium: 'cilium-config', flannel: 'kube-flannel-cfg' } as const;
/** Where Calico's manifest install keeps veth_mtu (the pod MTU source; src/kube/permissions.ts grants it). */
export const CALICO_CONFIGMAP = 'calico-config';
/** The Tigera operator's Installation: spec.calicoNetwork.mtu. */
export const TIGERA_INSTALLATION = { group: 'operator.tigera.io', version: 'v1', plural: 'installations', name: 'default' } as const;
export const FLANNEL_NAMESPACES = ['kube-flannel', 'kube-system'];

/** An address no service range contains: the dry-run probe asks for it and reads the refusal. */
export const PROBE_CLUSTER_IP = '1.1.1.1';
export const PROBE_SERVICE_NAME = 'podvpn-service-range-probe';

type Kind = 'podCIDRs' | 'serviceCIDRs' | 'dnsIPs' | 'podMTU';

/** Ask the cluster for the kinds listed in `want` (default: all four). */
export interface DiscoveryOptions {
  /** Each API call gets this long (default 5 s): a hung API server must not hang start-up. */
  timeoutMs?: number;
}

type Timed = <T>(p: Promise<T>) => Promise<T>;

/** One GET per ConfigMap per discovery: the pod-range and the pod-MTU sources share the answer. */
type ConfigMapRead = { data: Record<string, string> } | { missing: true } | { error: unknown };
type ReadConfigMap = (namespace: string, name: string) => Promise<ConfigMapRead>;

function configMapReader(core: CoreV1Api, t: Timed): ReadConfigMap {
  const reads = new Map<string, Promise<ConfigMapRead>>();
  return (namespace, name) => {
    const key = `${namespace}/${name}`;
    let read = reads.get(key);
    if (read === undefined) {
      read = t(core.readNamespacedConfigMap({ namespace, name })).then(
        (cm): ConfigMapRead => ({ data: cm.data ?? {} }),
        (err: unknown): ConfigMapRead => (err instanceof ApiException && err.code === 404 ? { missing: true } : { error: err }),
      );
      reads.set(key, read);
    }
    return read;
  };
}

function timed(ms: number): Timed {
  return <T>(p: Promise<T>) => withDeadline(p, ms);
}

export async function discover(
  kc: KubeConfig,
  want: readonly Kind[] = ['podCIDRs', 'serviceCIDRs', 'dnsIPs', 'podMTU'],
  opts: DiscoveryOptions = {},
): Promise<Discovered> {
  const core = kc.makeApiClient(CoreV1Api);
  const t = timed(opts.timeoutMs ?? 5000);
  const notes: string[] = [];
  const out: Discovered = { notes };
  const cm = configMapReader(core, t);
  let kubeadm: { podSubnet?: string[]; serviceSubnet?: string[] } | undefined | null = null;
  const kubeadmConfig = async () => {
    if (kubeadm === null) kubeadm = await readKubeadm(core, notes, t);
    return kubeadm;
  };

  if (want.includes('podCIDRs')) {
    const listed = await fromNodes(core, notes, t);
    out.nodeRanges = listed?.perNode;
    const nodes = listed?.found;
    const wide = [
      fromKubeadm((await kubeadmConfig())?.podSubnet, 'podSubnet', notes),
      await fromConfigMap(cm, notes, 'kube-system', POD_RANGE_CONFIGMAPS.kubeProxy, (d) => kubeProxyClusterCIDR(d['config.conf']), 'config.conf clusterCIDR'),
      await fromFlannel(cm, notes),
      fromK3s(listed?.items ?? [], notes),
    ].filter((f): f is Found => f !== undefined);
    const ipam = [
      await fromCalico(kc, t, notes),
      await fromConfigMap(cm, notes, 'kube-system', POD_RANGE_CONFIGMAPS.cilium, (d) => ciliumClusterPool(d), 'cluster-pool-ipv4-cidr'),
    ].filter((f): f is Found => f !== undefined);
    out.podCIDRs = combinePodRanges(nodes, wide, ipam);
  }
  if (want.includes('serviceCIDRs')) {
    out.serviceCIDRs =
      (await fromServiceCIDRApi(kc, notes, t)) ??
      (await fromDryRunProbe(core, notes, t)) ??
      fromKubeadm((await kubeadmConfig())?.serviceSubnet, 'serviceSubnet', notes);
  }
  if (want.includes('dnsIPs')) out.dnsIPs = await fromKubeDns(core, notes, t);
  if (want.includes('podMTU')) {
    const podMTU = await fromCni(kc, cm, t, notes);
    if (podMTU !== undefined) out.podMTU = podMTU;
  }
  return out;
}

async function fromNodes(
  core: CoreV1Api,
  notes: string[],
  t: Timed,
): Promise<{ found: Found | undefined; perNode: NodeRange[]; items: Array<{ annotations?: Record<string, string> }> } | undefined> {
  try {
    const nodes = await t(core.listNode());
    const own = (n: V1Node) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []);
    const cidrs = nodes.items.flatMap(own);
    const usable = ipv4Only(cidrs, "nodes' spec.podCIDRs", notes);
    const perNode = nodes.items.map((n) => ({ node: n.metadata?.name ?? '', cidrs: own(n).filter((c) => usable.includes(c)) }));
    const items = nodes.items.map((n) => ({ annotations: n.metadata?.annotations }));
    if (usable.length === 0) {
      notes.push(`nodes' spec.podCIDRs: none of ${nodes.items.length} node(s) has an IPv4 pod range (the CNI allocates its own)`);
      return { found: undefined, perNode, items };
    }
    return { found: { values: mergeCidrStrings(usable), source: `nodes' spec.podCIDRs (${nodes.items.length} node(s))` }, perNode, items };
  } catch (err) {
    notes.push(`nodes' spec.podCIDRs: ${describeError(err)}`);
    return undefined;
  }
}

/**
 * A pod range named in a ConfigMap. A missing ConfigMap (404) is the normal case (one CNI, one proxy)
 * and is not noted; a refusal or an unreadable value is.
 */
async function fromConfigMap(
  cm: ReadConfigMap,
  notes: string[],
  namespace: string,
  name: string,
  read: (data: Record<string, string>) => string[],
  field: string,
): Promise<Found | undefined> {
  const label = `ConfigMap ${namespace}/${name}`;
  const answer = await cm(namespace, name);
  if ('error' in answer) notes.push(`${label}: ${describeError(answer.error)}`);
  if (!('data' in answer)) return undefined;
  const data = answer.data;
  let values: string[];
  try {
    values = ipv4Only(read(data), `${label} ${field}`, notes);
  } catch (err) {
    notes.push(`${label}: ${field} cannot be read (${(err as Error).message})`);
    return undefined;
  }
  if (values.length === 0) {
    notes.push(`${label}: no IPv4 ${field}`);
    return undefined;
  }
  return { values: mergeCidrStrings(values), source: `${label} (${field})` };
}

async function fromFlannel(cm: ReadConfigMap, notes: string[]): Promise<Found | undefined> {
  for (const ns of FLANNEL_NAMESPACES) {
    const found = await fromConfigMap(cm, notes, ns, POD_RANGE_CONFIGMAPS.flannel, (d) => flannelNetwork(d['net-conf.json']), 'net-conf.json Network');
    if (found !== undefined) return found;
  }
  return undefined;
}

function fromK3s(nodes: Array<{ annotations?: Record<string, string> }>, notes: string[]): Found | undefined {
  const k3s = k3sClusterCIDR(nodes);
  if (k3s === undefined) return undefined;
  const values = ipv4Only(k3s.values, 'k3s --cluster-cidr', notes);
  if (values.length === 0) return undefined;
  return {
    values: mergeCidrStrings(values),
    source: k3s.defaulted ? "k3s's default --cluster-cidr (a server's k3s.io/node-args sets none)" : "k3s --cluster-cidr (a server node's k3s.io/node-args)",
  };
}

/**
 * The pod network's MTU from the CNIs' own objects. ConfigMaps already read for the pod ranges are
 * not read again; a missing object (404) is the normal case (one CNI) and is not noted.
 */
async function fromCni(kc: KubeConfig, cm: ReadConfigMap, t: Timed, notes: string[]): Promise<PodMTU | undefined> {
  const dataOf = async (namespace: string, name: string): Promise<Record<string, string> | undefined> => {
    const read = await cm(namespace, name);
    if ('error' in read) notes.push(`pod MTU: ConfigMap ${namespace}/${name}: ${describeError(read.error)}`);
    return 'data' in read ? read.data : undefined;
  };
  let flannel: { namespace: string; data: Record<string, string> } | undefined;
  for (const namespace of FLANNEL_NAMESPACES) {
    const data = await dataOf(namespace, POD_RANGE_CONFIGMAPS.flannel);
    if (data !== undefined) {
      flannel = { namespace, data };
      break;
    }
  }
  let installation: { spec?: { calicoNetwork?: { mtu?: unknown } } } | undefined;
  try {
    installation = (await t(kc.makeApiClient(CustomObjectsApi).getClusterCustomObject({ ...TIGERA_INSTALLATION }))) as typeof installation;
  } catch (err) {
    // 404: no Tigera operator (its CRD is not served), or no Installation named default.
    if (!(err instanceof ApiException && err.code === 404)) notes.push(`pod MTU: Installation ${TIGERA_INSTALLATION.name} (${TIGERA_INSTALLATION.group}): ${describeError(err)}`);
  }
  const calico = await dataOf('kube-system', CALICO_CONFIGMAP);
  const cilium = await dataOf('kube-system', POD_RANGE_CONFIGMAPS.cilium);
  const reading = podMTUFromCni({
    ...(calico !== undefined ? { calicoConfig: calico } : {}),
    ...(installation !== undefined ? { tigeraInstallation: installation } : {}),
    ...(cilium !== undefined ? { ciliumConfig: cilium } : {}),
    ...(flannel !== undefined ? { flannelConfig: flannel } : {}),
  });
  notes.push(...reading.notes.map((n) => `pod MTU: ${n}`));
  return reading.found;
}

export const CALICO_IPPOOLS = { group: 'crd.projectcalico.org', version: 'v1', plural: 'ippools' } as const;

async function fromCalico(kc: KubeConfig, t: Timed, notes: string[]): Promise<Found | undefined> {
  let items: Array<{ spec?: { cidr?: unknown; disabled?: unknown } }>;
  try {
    const list = (await t(kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ ...CALICO_IPPOOLS }))) as { items?: typeof items };
    items = list.items ?? [];
  } catch (err) {
    // 404: Calico is not installed.
    if (!(err instanceof ApiException && err.code === 404)) notes.push(`Calico IPPools: ${describeError(err)}`);
    return undefined;
  }
  const values = ipv4Only(calicoPools(items), 'Calico IPPools', notes);
  if (values.length === 0) return undefined;
  return { values: mergeCidrStrings(values), source: `Calico IPPools (${CALICO_IPPOOLS.group}/${CALICO_IPPOOLS.version})` };
}

async function fromServiceCIDRApi(kc: KubeConfig, notes: string[], t: Timed): Promise<Found | undefined> {
  const attempts: Array<[string, () => Promise<{ items: Array<{ spec?: { cidrs?: string[] } }> }>]> = [
    ['networking.k8s.io/v1', () => kc.makeApiClient(NetworkingV1Api).listServiceCIDR()],
    ['networking.k8s.io/v1beta1', () => kc.makeApiClient(NetworkingV1beta1Api).listServiceCIDR()],
  ];
  for (const [version, list] of attempts) {
    try {
      const res = await t(list());
      const cidrs = ipv4Only(res.items.flatMap((i) => i.spec?.cidrs ?? []), `ServiceCIDR ${version}`, notes);
      if (cidrs.length === 0) {
        notes.push(`ServiceCIDR ${version}: no IPv4 ranges listed`);
        return undefined;
      }
      return { values: mergeCidrStrings(cidrs), source: `ServiceCIDR API (${version})` };
    } catch (err) {
      notes.push(`ServiceCIDR ${version}: ${describeError(err)}`);
      // 404: this version is not served; try the next. Anything else: the API exists but refused.
      if (!(err instanceof ApiException && err.code === 404)) return undefined;
    }
  }
  return undefined;
}

async function fromDryRunProbe(core: CoreV1Api, notes: string[], t: Timed): Promise<Found | undefined> {
  try {
    await t(core.createNamespacedService({
      namespace: SYSTEM_NAMESPACE,
      dryRun: 'All',
      body: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: PROBE_SERVICE_NAME },
        spec: { clusterIP: PROBE_CLUSTER_IP, ports: [{ port: 443, protocol: 'TCP' }] },
      },
    }));
    notes.push(`dry-run Service probe: the API server accepted clusterIP ${PROBE_CLUSTER_IP}, so its error names no range`);
    return undefined;
  } catch (err) {
    const message = apiMessage(err);
    const ranges = message === undefined ? [] : parseValidRange(message);
    if (ranges.length === 0) {
      notes.push(`dry-run Service probe: ${describeError(err)}`);
      return undefined;
    }
    return { values: mergeCidrStrings(ranges), source: 'dry-run Service probe (the API server named its service range)' };
  }
}

/** The ranges in the API server's "not in the valid range" error, IPv4 only. */
export function parseValidRange(message: string): string[] {
  const m = /The range of valid IPs is (.+)$/m.exec(message);
  if (m === null) return [];
  return (m[1]!.match(/[0-9a-fA-F:.]+\/\d{1,3}/g) ?? []).filter((c) => {
    try {
      return parseCidr(c).family === 4;
    } catch {
      return false;
    }
  });
}

async function readKubeadm(core: CoreV1Api, notes: string[], t: Timed): Promise<{ podSubnet?: string[]; serviceSubnet?: string[] } | undefined> {
  try {
    const cm = await t(core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'kubeadm-config' }));
    const text = cm.data?.ClusterConfiguration;
    if (text === undefined) {
      notes.push('kubeadm-config: no ClusterConfiguration key');
      return undefined;
    }
    const parsed = parseYaml(text) as { networking?: { podSubnet?: string; serviceSubnet?: string } } | null;
    const split = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.split(',').map((s) => s.trim()));
    return { podSubnet: split(parsed?.networking?.podSubnet), serviceSubnet: split(parsed?.networking?.serviceSubnet) };
  } catch (err) {
    notes.push(`kubeadm-config: ${describeError(err)}`);
    return undefined;
  }
}

function fromKubeadm(values: string[] | undefined, field: string, notes: string[]): Found | undefined {
  if (values === undefined) {
    notes.push(`kubeadm-config: no networking.${field}`);
    return undefined;
  }
  const usable = ipv4Only(values, `kubeadm-config networking.${field}`, notes);
  if (usable.length === 0) return undefined;
  return { values: mergeCidrStrings(usable), source: `kubeadm-config ConfigMap (networking.${field})` };
}

async function fromKubeDns(core: CoreV1Api, notes: string[], t: Timed): Promise<Found | undefined> {
  try {
    const svc = await t(core.readNamespacedService({ namespace: 'kube-system', name: 'kube-dns' }));
    const ips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter((ip) => {
      try {
        return parseAddress(ip).family === 4;
      } catch {
        return false;
      }
    });
    if (ips.length === 0) {
      notes.push('Service kube-system/kube-dns: no IPv4 clusterIP');
      return undefined;
    }
    return { values: ips, source: 'Service kube-system/kube-dns' };
  } catch (err) {
    notes.push(`Service kube-system/kube-dns: ${describeError(err)}`);
    return undefined;
  }
}

/** Keep valid IPv4 ranges; note IPv6 (used only when configured) and garbage. */
function ipv4Only(cidrs: string[], source: string, notes: string[]): string[] {
  const out: string[] = [];
  for (const c of cidrs) {
    try {
      if (parseCidr(c).family === 4) out.push(c);
      else notes.push(`${source}: IPv6 range ${c} ignored (IPv6 is allowed only when configured)`);
    } catch (err) {
      notes.push(`${source}: ${(err as CidrError).message}`);
    }
  }
  return out;
}

export interface RangesOutcome extends RangeCheck {
  /** Each node's pod ranges, when discovery listed the nodes (for the coverage check). */
  nodeRanges?: NodeRange[];
}

/**
 * Config over discovery, then the checks: every range parses, nothing public unless forced, nothing
 * missing. Never throws: a problem makes routed pods be denied with `problem` as the reason.
 */
export async function resolveClusterRanges(kc: KubeConfig, config: Config, log: Logger, opts: DiscoveryOptions = {}): Promise<RangesOutcome> {
  const c = config.cluster;
  const want: Kind[] = [];
  if (c.podCIDRs.length === 0) want.push('podCIDRs');
  if (c.serviceCIDRs.length === 0) want.push('serviceCIDRs');
  if (c.dnsIPs.length === 0) want.push('dnsIPs');
  if (c.podMTU === undefined) want.push('podMTU');
  const found: Discovered = want.length === 0 ? { notes: [] } : await discover(kc, want, opts);
  const outcome = checkRanges(resolveRanges(c, found), config, found.notes, log);
  return found.nodeRanges === undefined ? outcome : { ...outcome, nodeRanges: found.nodeRanges };
}


