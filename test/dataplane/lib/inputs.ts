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
import { buildKillSwitchPolicy } from '../../../src/policy/killswitch.js';
import { tryRun } from './exec.js';
import { type GatewayManifestSettings, readGatewayManifest } from './gateway.js';
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
    .newDocument as Pod;
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
  const policy = buildKillSwitchPolicy({ namespace: CLIENT_NAMESPACE, gateway: gateway.name, ranges: LAB_RANGES });
  return {
    clientSettingsScript: script,
    clientSettings: settings,
    clientResolvConf: `${resolv}\n`,
    clientLabels: { ...(mutated.metadata?.labels ?? {}) },
    gatewayName: gateway.address,
    clusterDomain: config.cluster.domain,
    policies: [policy as unknown as NetworkPolicy],
  };
}

/** The gateway's settings: `kubectl kustomize manifests/` when it renders the gateway, else the fixture. */
export async function gatewayInputs(): Promise<GatewayManifestSettings> {
  const r = await tryRun(`kubectl kustomize ${JSON.stringify(join(REPO, 'manifests'))}`, 60_000);
  if (r.code === 0) {
    try {
      return readGatewayManifest(r.stdout, 'kubectl kustomize manifests/');
    } catch (err) {
      if (!/no Deployment/.test(String(err))) throw err;
    }
  }
  return readGatewayManifest(readFileSync(GATEWAY_FIXTURE, 'utf8'), 'FIXTURE test/dataplane/fixtures/gateway-manifest.fixture.yaml');
}
