// What the lab takes from the product: the webhook's injection for a pod (settings annotation,
// labels, dnsConfig), the kill-switch NetworkPolicy for the lab's ranges, and the gateway manifest.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastJsonPatch from 'fast-json-patch';
import type { ClusterRanges } from '../../../src/cluster/ranges.js';
import { parseConfig } from '../../../src/config/schema.js';
import { ANNOTATION_CLIENT_SETTINGS } from '../../../src/constants.js';
import { injectionPatch } from '../../../src/inject/patch.js';
import { clientSettings } from '../../../src/inject/settings.js';
import type { Pod } from '../../../src/inject/types.js';
import { buildKillSwitchPolicy } from '../../../src/killswitch/policy.js';
import { tryRun } from './exec.js';
import { parseAllDocuments, stringify } from 'yaml';
import { GATEWAY_DEPLOYMENT, type GatewayManifestSettings, readGatewayManifest } from './gateway.js';
import { ADDR } from './lab.js';
import type { NetworkPolicy } from './netpol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
export const GATEWAY_FIXTURE = join(HERE, '..', 'fixtures', 'gateway-manifest.fixture.yaml');
export const CLIENT_NAMESPACE = 'downloads';

export const LAB_RANGES: ClusterRanges = {
  podCIDRs: [ADDR.podCIDR],
  serviceCIDRs: [ADDR.serviceCIDR],
  extraCIDRs: [],
  dnsIPs: [ADDR.dnsService],
  sources: { podCIDRs: 'lab', serviceCIDRs: 'lab', dnsIPs: 'lab' },
};

export interface ProductInputs {
  clientSettingsScript: string;
  clientSettings: Record<string, string>;
  clientResolvConf: string;
  clientLabels: Record<string, string>;
  gatewayName: string;
  clusterDomain: string;
  policies: NetworkPolicy[];
  /** The injected client init and sidecar containers' commands. */
  clientInitCommand: string[];
  clientSidecarCommand: string[];
}

/** Runs the webhook's pure injection on a plain pod and reads back what a real pod would carry. */
export function productInputs(): ProductInputs {
  const config = parseConfig({
    cluster: { podCIDRs: LAB_RANGES.podCIDRs, serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs },
    gateways: { default: {} },
  });
  const gateway = config.gateways.default;
  if (!gateway) throw new Error('config has no default gateway');
  const settings = clientSettings(gateway, LAB_RANGES);
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'qbittorrent', namespace: CLIENT_NAMESPACE, labels: { app: 'qbittorrent' } },
    spec: { containers: [{ name: 'app', image: 'qbittorrent' }] },
  };
  const { patch } = injectionPatch({ pod, namespace: CLIENT_NAMESPACE, gateway, settings, config });
  const mutated = fastJsonPatch.applyPatch(structuredClone(pod), patch as fastJsonPatch.Operation[], true, false)
    .newDocument;
  const injected = readInjectedPod(mutated, config.images.client);
  const policy = buildKillSwitchPolicy({ namespace: CLIENT_NAMESPACE, gateway: gateway.name, ranges: LAB_RANGES });
  return {
    ...injected,
    clientSettings: settings,
    gatewayName: gateway.address,
    clusterDomain: config.cluster.domain,
    policies: [policy],
  };
}

/** What a pod the webhook injected (pod-gateway mode) carries into the lab: settings, resolv.conf, labels, the client commands. */
export interface InjectedPod {
  clientSettingsScript: string;
  clientResolvConf: string;
  clientLabels: Record<string, string>;
  clientInitCommand: string[];
  clientSidecarCommand: string[];
}

/** Reads back what the injection put on a pod: the settings annotation, dnsConfig as resolv.conf, labels, the client containers' commands. */
export function readInjectedPod(mutated: Pod, clientImage: string): InjectedPod {
  const annotations = mutated.metadata?.annotations ?? {};
  const script = annotations[ANNOTATION_CLIENT_SETTINGS];
  if (script === undefined) throw new Error(`the injected pod has no ${ANNOTATION_CLIENT_SETTINGS} annotation`);
  const dns = mutated.spec?.dnsConfig;
  if (mutated.spec?.dnsPolicy !== 'None' || !dns) throw new Error('the injected pod has no dnsPolicy None + dnsConfig');
  const resolv = [
    ...(dns.nameservers ?? []).map((n) => `nameserver ${n}`),
    ...(dns.searches && dns.searches.length > 0 ? [`search ${dns.searches.join(' ')}`] : []),
    ...(dns.options && dns.options.length > 0
      ? [`options ${dns.options.map((o) => (o.value !== undefined ? `${o.name}:${o.value}` : o.name)).join(' ')}`]
      : []),
  ].join('\n');
  const injected = (mutated.spec?.initContainers ?? []).filter((c) => (c.image ?? '') === clientImage);
  const [initC, sidecarC] = [injected[0], injected[1] ?? (mutated.spec?.containers ?? []).find((c) => c.image === clientImage)];
  if (!initC?.command || !sidecarC?.command) throw new Error('the injected pod has no client init and sidecar containers with commands');
  return {
    clientSettingsScript: script,
    clientResolvConf: `${resolv}\n`,
    clientLabels: { ...(mutated.metadata?.labels ?? {}) },
    clientInitCommand: [...initC.command],
    clientSidecarCommand: [...sidecarC.command],
  };
}

/** The gateway's settings: `kubectl kustomize manifests/` when kubectl is there, else the fixture. */
export async function gatewayInputs(): Promise<GatewayManifestSettings> {
  // LAB_GATEWAY_MANIFEST=FILE runs the lab against another rendered manifest (mutation checks).
  const other = process.env.LAB_GATEWAY_MANIFEST;
  if (other) return readGatewayManifest(readFileSync(other, 'utf8'), `LAB_GATEWAY_MANIFEST ${other}`);
  // LAB_GATEWAY_FIXTURE=1 forces the fixture (to exercise the fallback).
  const rendered = process.env.LAB_GATEWAY_FIXTURE === '1' ? undefined : await renderManifests();
  if (rendered !== undefined) return readGatewayManifest(rendered, 'kubectl kustomize manifests/');
  return readGatewayManifest(
    readFileSync(GATEWAY_FIXTURE, 'utf8'),
    'FIXTURE test/dataplane/fixtures/gateway-manifest.fixture.yaml (kubectl not found: the rendered manifests/ were NOT used)',
  );
}

/** `kubectl kustomize manifests/`, or undefined when kubectl is not installed. A render error throws. */
export async function renderManifests(): Promise<string | undefined> {
  if ((await tryRun('command -v kubectl')).code !== 0) return undefined;
  const r = await tryRun(`kubectl kustomize ${JSON.stringify(join(REPO, 'manifests'))}`, 60_000);
  if (r.code !== 0) throw new Error(`kubectl kustomize manifests/ failed:\n${r.stderr}`);
  return r.stdout;
}

/** The fixture: the gateway Deployment and its ConfigMaps, cut from a render of manifests/. */
export function gatewayFixtureFrom(rendered: string): string {
  const docs = parseAllDocuments(rendered).map((d) => d.toJS() as Record<string, unknown>);
  const meta = (d: Record<string, unknown>) => (d.metadata ?? {}) as { name?: string; namespace?: string };
  const deployment = docs.find((d) => d.kind === 'Deployment' && meta(d).name === GATEWAY_DEPLOYMENT);
  if (!deployment) throw new Error('no gateway Deployment in the render');
  const text = JSON.stringify(deployment);
  const configMaps = docs.filter((d) => d.kind === 'ConfigMap' && text.includes(`"${meta(d).name}"`));
  return [
    '# FIXTURE: the gateway Deployment and its ConfigMaps as `kubectl kustomize manifests/` renders them.',
    '# The lab uses it only where kubectl is missing. Refresh: REFRESH_GATEWAY_FIXTURE=1 npm run test:dataplane',
    ...[...configMaps, deployment].map((d) => `---\n${stringify(d)}`),
  ].join('\n');
}
