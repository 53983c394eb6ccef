// A pod network whose MTU (as its CNI publishes it) is too small for a gateway's tunnel: podvpn,
// connected to a cluster (the API double, through a kubeconfig), denies that gateway's routed pods
// with the numbers and the fix instead of injecting a client whose vxlan0 the kernel would refuse
// (a crash-looping init container), routes pods of a gateway that fits, and says it in /metrics.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiDouble } from './kube-api-double/index.js';
import { podvpnChainWebhook, startServer, tempDir } from './helpers.js';

let api: KubeApiDouble;
let server: Awaited<ReturnType<typeof startServer>>;
let core: CoreV1Api;

beforeAll(async () => {
  api = await KubeApiDouble.start();
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] } });
  for (const name of ['kube-system', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } });
  // Calico with IPIP on a 1400-byte underlay (an OpenStack tenant network): pods get 1400 - 20.
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'calico-config', namespace: 'kube-system' }, data: { calico_backend: 'bird', veth_mtu: '1380' } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' } } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'small', labels: { 'podvpn.io/inject': 'enabled' }, annotations: { 'podvpn.io/gateway': 'small' } } });
  const dir = tempDir();
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'gateways:\n  default: {}\n  small:\n    mtu: 1300\n    vxlanId: 43\n    overlayNetwork: 172.16.1.0/24\n');
  server = await startServer({ noKube: false, kubeconfig, config });
  api.setAdmission({
    serviceAccount: true,
    mutatingWebhooks: [podvpnChainWebhook(server)],
  });
  core = api.kubeConfig().makeApiClient(CoreV1Api);
});
afterAll(async () => {
  await server?.shutdown();
  await api?.close();
});

const app = (name: string): V1Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'app', image: 'example.com/app:1.0' }] } });

describe('a gateway tunnel MTU the pod network cannot carry', () => {
  it("denies the gateway's routed pods with the numbers and the config line; the pod is not stored", async () => {
    const err = await core.createNamespacedPod({ namespace: 'downloads', body: app('qbittorrent') }).then(
      () => undefined,
      (e: unknown) => e as { code: number; body: string },
    );
    expect(err?.code).toBe(403);
    const message = (JSON.parse(err!.body) as { message: string }).message;
    expect(message).toContain('admission webhook "namespace.inject.podvpn.io" denied the request: podvpn will not route pods through gateway "default"');
    expect(message).toContain("its tunnel MTU 1320 does not fit the pod network's MTU 1380 (from ConfigMap kube-system/calico-config veth_mtu 1380), which leaves at most 1300");
    expect(message).toContain('gateways:\n    default:\n      mtu: 1300\n');
    expect(message).toContain('WIREGUARD_MTU: "1300"');
    expect(api.get('v1', 'Pod', 'downloads', 'qbittorrent')).toBeUndefined();
  });

  it('negative control: a gateway whose mtu fits (1300 <= 1380 - 80) is injected as before', async () => {
    const stored = await core.createNamespacedPod({ namespace: 'small', body: app('sabnzbd') });
    expect((stored.spec?.initContainers ?? []).map((c) => c.name)).toEqual(['podvpn-client-init', 'podvpn-client']);
    expect(stored.metadata?.annotations?.['podvpn.io/client-settings']).toContain("VPN_INTERFACE_MTU='1300'");
  });

  it('/metrics says the pod network MTU and which gateway does not fit', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    expect(text).toMatch(/^podvpn_pod_network_mtu 1380$/m);
    expect(text).toMatch(/^podvpn_gateway_mtu_too_large\{gateway="default"\} 1$/m);
    expect(text).toMatch(/^podvpn_gateway_mtu_too_large\{gateway="small"\} 0$/m);
    expect(text).toMatch(/^podvpn_admission_reviews_total\{outcome="denied",reason="gateway-mtu-too-large"\} 1$/m);
  });
});
