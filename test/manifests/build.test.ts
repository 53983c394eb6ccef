// Every kustomization builds with `kubectl kustomize`, and every object it renders validates against
// the Kubernetes OpenAPI schemas (kubernetes-models). cert-manager's kinds get a structural check.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MutatingWebhookConfiguration,
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type K8sObject, MANIFESTS, kustomizations, render } from './render.js';

type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/** cert-manager CRDs are not in kubernetes-models: check the fields cert-manager requires. */
function checkCertManager(o: K8sObject): void {
  expect(o.metadata.namespace, `${o.kind} ${o.metadata.name} namespace`).toBe('podvpn-system');
  if (o.kind === 'Issuer') {
    const kinds = ['selfSigned', 'ca', 'acme', 'vault', 'venafi'].filter((k) => o.spec?.[k] !== undefined);
    expect(kinds, `Issuer ${o.metadata.name} has exactly one issuer type`).toHaveLength(1);
    if (o.spec.ca !== undefined) expect(typeof o.spec.ca.secretName).toBe('string');
  } else if (o.kind === 'Certificate') {
    expect(typeof o.spec.secretName).toBe('string');
    expect(o.spec.issuerRef?.name).toBeTypeOf('string');
    expect(['Issuer', 'ClusterIssuer']).toContain(o.spec.issuerRef.kind);
    expect(o.spec.dnsNames ?? o.spec.commonName).toBeDefined();
  } else {
    throw new Error(`unexpected cert-manager kind ${o.kind}`);
  }
}

const DIRS = kustomizations();

describe('kustomizations', () => {
  it('finds the overlays the install documents', () => {
    for (const dir of ['.', 'base', 'gateway', 'overlays/default', 'overlays/cert-manager', 'examples/qbittorrent', 'examples/second-gateway', 'examples/exit-group', 'gateway/exit']) {
      expect(DIRS).toContain(dir);
    }
  });

  describe.each(DIRS)('%s', (dir) => {
    it('builds with kubectl kustomize and every object validates against the Kubernetes schema', () => {
      const objects = render(dir);
      expect(objects.length).toBeGreaterThan(0);
      for (const o of objects) {
        const label = `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
        if (o.apiVersion === 'cert-manager.io/v1') {
          checkCertManager(o);
          continue;
        }
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        expect(Model, `no schema registered for ${o.apiVersion} ${o.kind} (${label})`).toBeDefined();
        expect(() => new Model!(o as never).validate(), label).not.toThrow();
      }
    });

    it('gives every object a unique identity', () => {
      const ids = render(dir).map((o) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
      expect(new Set(ids).size).toBe(ids.length);
    });
  });
});

describe('the schema check', () => {
  it('is not a no-op: it rejects a Deployment with a mistyped field', () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: { selector: {}, template: { spec: { containers: [{ name: 'x', ports: [{ containerPort: 'https' }] }] } } },
    };
    expect(() => new Deployment(bad as never).validate()).toThrow();
  });
});

describe('the default install', () => {
  it('is manifests/ itself: the same objects as overlays/default', () => {
    expect(render('.')).toEqual(render('overlays/default'));
  });

  it('puts everything but cluster-scoped objects in podvpn-system (and two discovery grants in kube-system)', () => {
    const clusterScoped = new Set([
      'Namespace',
      'ClusterRole',
      'ClusterRoleBinding',
      'MutatingWebhookConfiguration',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of render('.')) {
      if (clusterScoped.has(o.kind)) {
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBeUndefined();
      } else if (o.metadata.name === 'podvpn-webhook-discovery') {
        expect(o.metadata.namespace).toBe('kube-system');
      } else {
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe('podvpn-system');
      }
    }
  });

  it('ships no Secret: VPN credentials come from a Secret the user creates', () => {
    expect(render('.').filter((o) => o.kind === 'Secret')).toEqual([]);
  });
});

describe('the VPN Secret template', () => {
  const text = readFileSync(join(MANIFESTS, 'gateway/vpn-secret.example.yaml'), 'utf8');
  const secret = parseYaml(text) as K8sObject;

  it('validates and names the Secret the default gateway reads', () => {
    expect(() => new Secret(secret as never).validate()).not.toThrow();
    const gw = render('.').find((o) => o.kind === 'Deployment' && o.metadata.name === 'podvpn-gateway-default')!;
    const gluetun = gw.spec.template.spec.initContainers.find((c: { name: string }) => c.name === 'gluetun');
    expect(gluetun.envFrom[0].secretRef.name).toBe(secret.metadata.name);
    expect(secret.metadata.namespace).toBe('podvpn-system');
  });

  it('holds placeholders only, never a credential', () => {
    for (const [key, value] of Object.entries(secret.stringData as Record<string, string>)) {
      expect(value, key).toMatch(/^<.*>$/);
    }
    // A WireGuard key is 44 base64 characters ending in '='.
    expect(text).not.toMatch(/[A-Za-z0-9+/]{42,43}=/);
  });

  it('is not part of any kustomization', () => {
    for (const dir of DIRS) {
      const k = parseYaml(readFileSync(join(MANIFESTS, dir, 'kustomization.yaml'), 'utf8')) as { resources?: string[] };
      expect(k.resources ?? [], dir).not.toContain('vpn-secret.example.yaml');
    }
  });
});
