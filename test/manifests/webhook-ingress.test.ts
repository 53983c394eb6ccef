// The optional component manifests/components/webhook-ingress: an overlay that adds it renders the
// default install plus one NetworkPolicy, which selects the webhook's pods and names their ports.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type K8sObject, MANIFESTS, render } from './render.js';

describe('components/webhook-ingress', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podvpn-overlay-'));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      `  - ${relative(dir, join(MANIFESTS, 'overlays/default'))}`,
      'components:',
      `  - ${relative(dir, join(MANIFESTS, 'components/webhook-ingress'))}`,
      '',
    ].join('\n'),
  );
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  const objects = parseAllDocuments(out).map((d) => d.toJS() as K8sObject);

  it('adds exactly one NetworkPolicy to the default install', () => {
    const added = objects.filter((o) => !render('.').some((d) => d.kind === o.kind && d.metadata.name === o.metadata.name));
    expect(added.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['NetworkPolicy/podvpn-system/podvpn-webhook-ingress']);
    expect(() => new NetworkPolicy(added[0] as never).validate()).not.toThrow();
  });

  it("selects the webhook Deployment's pods and lets in only its two named ports, the admin port from monitoring", () => {
    const policy = objects.find((o) => o.kind === 'NetworkPolicy')!;
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'podvpn-webhook')!;
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels as Record<string, string>)) expect(podLabels[k]).toBe(v);
    const gateway = objects.find((o) => o.kind === 'Deployment' && o.metadata.name !== 'podvpn-webhook');
    if (gateway !== undefined) {
      const g = gateway.spec.template.metadata.labels as Record<string, string>;
      expect(Object.entries(policy.spec.podSelector.matchLabels).every(([k, v]) => g[k] === v), 'the gateway is not selected').toBe(false);
    }
    const portNames = (deployment.spec.template.spec.containers[0].ports as Array<{ name: string }>).map((p) => p.name);
    const ingress = policy.spec.ingress as Array<{ ports: Array<{ port: string }>; from?: unknown[] }>;
    expect(ingress.flatMap((r) => r.ports.map((p) => p.port)).sort()).toEqual(['admin', 'webhook']);
    for (const r of ingress) for (const p of r.ports) expect(portNames).toContain(p.port);
    expect(ingress.find((r) => r.ports[0]!.port === 'admin')!.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
  });
});
