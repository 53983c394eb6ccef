// The webhook's manifests agree with the server's constants (src/constants.ts) and its config
// schema, and the webhook pod meets the `restricted` Pod Security level.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  ADMIN_PORT,
  EXCLUDED_NAMESPACES,
  HEALTHZ_PATH,
  LABEL_INJECT,
  LABEL_NAMESPACE_NAME,
  LABEL_PSA_ENFORCE,
  MUTATE_PATH,
  NAMESPACE_INJECT_VALUE,
  READYZ_PATH,
  SYSTEM_NAMESPACE,
  VERSION,
  WEBHOOK_CONFIGURATION_NAME,
  WEBHOOK_PORT,
  WEBHOOK_SERVICE_NAME,
} from '../../src/constants.js';
import { parseConfig } from '../../src/config/schema.js';
import { webhookDnsNames } from '../../src/tls/names.js';
import { type K8sObject, MANIFESTS, find, render, volumeConfigMap } from './render.js';

const objects = render('.');
const webhookConfig = find(objects, 'MutatingWebhookConfiguration', WEBHOOK_CONFIGURATION_NAME);
const service = find(objects, 'Service', WEBHOOK_SERVICE_NAME, SYSTEM_NAMESPACE);
const deployment = find(objects, 'Deployment', WEBHOOK_SERVICE_NAME, SYSTEM_NAMESPACE);
const podSpec = deployment.spec.template.spec;
const container = podSpec.containers[0];

interface Expr {
  key: string;
  operator: string;
  values?: string[];
}
interface Webhook {
  name: string;
  clientConfig: { service: { name: string; namespace: string; path: string; port: number }; caBundle?: string };
  namespaceSelector: { matchExpressions?: Expr[]; matchLabels?: Record<string, string> };
  objectSelector: { matchExpressions?: Expr[]; matchLabels?: Record<string, string> };
  [k: string]: unknown;
}
const webhooks = webhookConfig.webhooks as Webhook[];

/** Evaluate a label selector the way the API server does. */
function matches(selector: Webhook['namespaceSelector'], labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const ok =
      e.operator === 'In'
        ? has && e.values!.includes(value!)
        : e.operator === 'NotIn'
          ? !has || !e.values!.includes(value!)
          : e.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

/** Which webhook entries a pod CREATE goes to. */
function routedTo(nsName: string, nsLabels: Record<string, string>, podLabels: Record<string, string>): string[] {
  const ns = { ...nsLabels, [LABEL_NAMESPACE_NAME]: nsName };
  return webhooks.filter((w) => matches(w.namespaceSelector, ns) && matches(w.objectSelector, podLabels)).map((w) => w.name);
}

describe('MutatingWebhookConfiguration', () => {
  it('has two entries, one for opted-in namespaces and one for opted-in pods', () => {
    expect(webhookConfig.metadata.name).toBe(WEBHOOK_CONFIGURATION_NAME);
    expect(webhooks.map((w) => w.name)).toEqual(['namespace.inject.podvpn.io', 'pod.inject.podvpn.io']);
  });

  it.each(webhooks.map((w) => [w.name, w] as const))('%s: the contract settings', (_name, w) => {
    expect(w.admissionReviewVersions).toEqual(['v1']);
    expect(w.sideEffects).toBe('NoneOnDryRun');
    expect(w.failurePolicy).toBe('Fail');
    expect(w.reinvocationPolicy).toBe('IfNeeded');
    expect(w.timeoutSeconds).toBe(5);
    expect(w.rules).toEqual([
      { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' },
    ]);
    // The Service, its port and the path the server serves.
    expect(w.clientConfig.service).toEqual({ name: WEBHOOK_SERVICE_NAME, namespace: SYSTEM_NAMESPACE, path: MUTATE_PATH, port: 443 });
    // caBundle is written at run time (self-managed) or by cainjector; a stale one must not ship.
    expect(w.clientConfig.caBundle).toBeUndefined();
    // The excluded namespaces, by their immutable name label, exactly as the server excludes them.
    const byName = w.namespaceSelector.matchExpressions!.find((e) => e.key === LABEL_NAMESPACE_NAME)!;
    expect(byName.operator).toBe('NotIn');
    expect([...byName.values!].sort()).toEqual([...EXCLUDED_NAMESPACES].sort());
  });

  it('routes every pod to at most one entry, and honours opt-in, opt-out and the excluded namespaces', () => {
    const on = { [LABEL_INJECT]: NAMESPACE_INJECT_VALUE };
    expect(routedTo('downloads', on, {})).toEqual(['namespace.inject.podvpn.io']);
    expect(routedTo('downloads', on, { [LABEL_INJECT]: 'true' })).toEqual(['namespace.inject.podvpn.io']);
    expect(routedTo('downloads', on, { [LABEL_INJECT]: 'false' })).toEqual([]);
    expect(routedTo('apps', {}, {})).toEqual([]);
    expect(routedTo('apps', {}, { [LABEL_INJECT]: 'true' })).toEqual(['pod.inject.podvpn.io']);
    expect(routedTo('apps', {}, { [LABEL_INJECT]: 'false' })).toEqual([]);
    expect(routedTo('apps', { [LABEL_INJECT]: 'disabled' }, { [LABEL_INJECT]: 'true' })).toEqual(['pod.inject.podvpn.io']);
    for (const ns of EXCLUDED_NAMESPACES) {
      expect(routedTo(ns, on, { [LABEL_INJECT]: 'true' }), ns).toEqual([]);
      expect(routedTo(ns, {}, { [LABEL_INJECT]: 'true' }), ns).toEqual([]);
    }
  });

  it('pre-filters mirror pods in CEL, but never hostNetwork pods (the webhook must see them to deny them)', () => {
    for (const w of webhooks) {
      const exprs = (w.matchConditions as Array<{ expression: string }>).map((m) => m.expression).join('\n');
      expect(exprs).toContain('kubernetes.io/config.mirror');
      expect(exprs).not.toContain('hostNetwork');
    }
  });
});

describe('Service and Deployment', () => {
  it('the Service sends port 443 to the container port the server listens on', () => {
    const https = service.spec.ports.find((p: { port: number }) => p.port === 443);
    expect(https.targetPort).toBe('webhook');
    const ports = container.ports as Array<{ name: string; containerPort: number }>;
    expect(ports.find((p) => p.name === 'webhook')?.containerPort).toBe(WEBHOOK_PORT);
    expect(ports.find((p) => p.name === 'admin')?.containerPort).toBe(ADMIN_PORT);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(container.args).toContain(`--listen=0.0.0.0:${WEBHOOK_PORT}`);
    expect(container.args).toContain(`--admin-listen=0.0.0.0:${ADMIN_PORT}`);
  });

  it('probes the admin port at /healthz and /readyz', () => {
    expect(container.livenessProbe.httpGet).toEqual({ path: HEALTHZ_PATH, port: 'admin' });
    expect(container.startupProbe.httpGet).toEqual({ path: HEALTHZ_PATH, port: 'admin' });
    expect(container.readinessProbe.httpGet).toEqual({ path: READYZ_PATH, port: 'admin' });
  });

  it('the serving certificate names match the Service', () => {
    const dnsNames = webhookDnsNames();
    expect(dnsNames).toContain(`${service.metadata.name}.${service.metadata.namespace}.svc`);
    const cert = find(render('overlays/cert-manager'), 'Certificate', 'podvpn-webhook', SYSTEM_NAMESPACE);
    expect(cert.spec.dnsNames).toEqual(dnsNames);
  });

  it('runs two replicas spread over nodes, with a PDB that keeps one', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    const spread = podSpec.topologySpreadConstraints as Array<{ topologyKey: string; labelSelector: { matchLabels: unknown } }>;
    expect(spread.map((s) => s.topologyKey)).toContain('kubernetes.io/hostname');
    for (const s of spread) expect(s.labelSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const pdb = find(objects, 'PodDisruptionBudget', WEBHOOK_SERVICE_NAME, SYSTEM_NAMESPACE);
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
  });

  it('meets the restricted Pod Security level, with requests and limits', () => {
    expect(podSpec.securityContext.runAsNonRoot).toBe(true);
    expect(podSpec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(podSpec.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    expect(podSpec.hostNetwork ?? false).toBe(false);
    for (const c of [...podSpec.containers, ...(podSpec.initContainers ?? [])] as K8sObject[]) {
      expect(c.securityContext.allowPrivilegeEscalation, c.name).toBe(false);
      expect(c.securityContext.readOnlyRootFilesystem, c.name).toBe(true);
      expect(c.securityContext.capabilities.drop, c.name).toEqual(['ALL']);
      expect(c.securityContext.capabilities.add, c.name).toBeUndefined();
      expect(c.securityContext.privileged ?? false, c.name).toBe(false);
      expect(Object.keys(c.resources.requests).sort(), c.name).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.limits).sort(), c.name).toEqual(['cpu', 'memory']);
    }
    const volumeTypes = (podSpec.volumes as Array<Record<string, unknown>>).map((v) => Object.keys(v).filter((k) => k !== 'name')[0]);
    for (const t of volumeTypes) expect(['configMap', 'secret', 'emptyDir', 'projected', 'downwardAPI']).toContain(t);
  });

  it('uses the image tag of this version', () => {
    expect(container.image).toMatch(new RegExp(`:v${VERSION.replaceAll('.', '\\.')}$`));
  });

  it('mounts a config that the server accepts, at the path --config names', () => {
    const cm = volumeConfigMap(objects, deployment, 'config');
    const mount = (container.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.name === 'config')!;
    const flag = (container.args as string[]).find((a) => a.startsWith('--config='))!;
    expect(flag).toBe(`--config=${mount.mountPath}/config.yaml`);
    const config = parseConfig(parseYaml(cm.data['config.yaml'] as string), 'manifests config');
    expect(Object.keys(config.gateways)).toEqual(['default']);
    expect(config.defaultGateway).toBe('default');
  });
});

describe('namespace podvpn-system', () => {
  it('allows the privileged gateway, is never injected, and audits the rest against restricted', () => {
    const ns = find(objects, 'Namespace', SYSTEM_NAMESPACE);
    expect(ns.metadata.labels[LABEL_PSA_ENFORCE]).toBe('privileged');
    expect(ns.metadata.labels['pod-security.kubernetes.io/audit']).toBe('restricted');
    expect(ns.metadata.labels[LABEL_INJECT]).not.toBe(NAMESPACE_INJECT_VALUE);
  });
});

describe('cert-manager overlay', () => {
  const cm = render('overlays/cert-manager');
  it('asks cainjector for the CA of the serving Certificate, and serves the mounted certificate', () => {
    const wh = find(cm, 'MutatingWebhookConfiguration', WEBHOOK_CONFIGURATION_NAME);
    const cert = find(cm, 'Certificate', 'podvpn-webhook', SYSTEM_NAMESPACE);
    expect(wh.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${SYSTEM_NAMESPACE}/${cert.metadata.name}`);
    const dep = find(cm, 'Deployment', WEBHOOK_SERVICE_NAME, SYSTEM_NAMESPACE);
    const c = dep.spec.template.spec.containers[0];
    const tls = (dep.spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>).find((v) => v.name === 'tls')!;
    expect(tls.secret!.secretName).toBe(cert.spec.secretName);
    const mount = (c.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.name === 'tls')!;
    expect(c.args).toContain(`--tls-cert=${mount.mountPath}/tls.crt`);
    expect(c.args).toContain(`--tls-key=${mount.mountPath}/tls.key`);
  });

  it('chains the serving Certificate to a CA issuer made from a self-signed root', () => {
    const cert = find(cm, 'Certificate', 'podvpn-webhook', SYSTEM_NAMESPACE);
    const caIssuer = find(cm, 'Issuer', cert.spec.issuerRef.name, SYSTEM_NAMESPACE);
    const ca = cm.find((o) => o.kind === 'Certificate' && o.spec.secretName === caIssuer.spec.ca.secretName)!;
    expect(ca.spec.isCA).toBe(true);
    expect(find(cm, 'Issuer', ca.spec.issuerRef.name, SYSTEM_NAMESPACE).spec.selfSigned).toEqual({});
    expect(cert.spec.usages).toContain('server auth');
  });
});

describe('example: a routed namespace running qBittorrent', () => {
  const ex = render('examples/qbittorrent');
  it('opts the namespace in with the contract label and allows NET_ADMIN', () => {
    const ns = ex.find((o) => o.kind === 'Namespace')!;
    expect(ns.metadata.labels[LABEL_INJECT]).toBe(NAMESPACE_INJECT_VALUE);
    expect(ns.metadata.labels[LABEL_PSA_ENFORCE]).toBe('privileged');
    expect(EXCLUDED_NAMESPACES).not.toContain(ns.metadata.name);
    expect(routedTo(ns.metadata.name, ns.metadata.labels, {})).toEqual(['namespace.inject.podvpn.io']);
  });

  it('mentions no VPN container: the webhook adds them', () => {
    const text = readFileSync(join(MANIFESTS, 'examples/qbittorrent/qbittorrent.yaml'), 'utf8');
    expect(text).not.toMatch(/pod-gateway|gluetun|NET_ADMIN/);
  });
});
