// Self-managed certificates (src/tls/self-managed.ts) against the Kubernetes API test double (real HTTP, real client-node):
// create, reuse, two replicas racing, caBundle patch and drift, renewal of the serving certificate
// and of the CA, a broken Secret, API errors; and every call it makes is in src/kube/permissions.ts.

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SELF_MANAGED_SECRET_NAME, SYSTEM_NAMESPACE, WEBHOOK_CONFIGURATION_NAME } from '../../src/constants.js';
import { API_PERMISSIONS } from '../../src/kube/permissions.js';
import { webhookDnsNames } from '../../src/tls/names.js';
import { SECRET_KEYS } from '../../src/tls/secret-store.js';
import { type SelfManagedCerts, type SelfManagedCertsOptions, startSelfManagedCerts } from '../../src/tls/self-managed.js';
import { splitPems } from '../../src/tls/x509.js';
import { startServer, tempDir } from '../helpers.js';
import { KubeApiDouble } from '../kube-api-double/index.js';
import { type K8sObject, find, render } from '../manifests/render.js';

const DAY = 24 * 60 * 60 * 1000;
const logger = pino({ level: 'silent' });

let api: KubeApiDouble;
let running: SelfManagedCerts[] = [];

/** The webhook configuration exactly as the install manifests render it. */
const manifestWebhook = find(render('.'), 'MutatingWebhookConfiguration', WEBHOOK_CONFIGURATION_NAME);

beforeEach(async () => {
  api = await KubeApiDouble.start();
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NAMESPACE } });
  api.put(structuredClone(manifestWebhook));
  running = [];
});
afterEach(async () => {
  for (const r of running) r.stop();
  await api.close();
});

interface Replica {
  certs: SelfManagedCerts;
  served: Array<{ cert: string; key: string }>;
}

async function replica(extra: Partial<SelfManagedCertsOptions> = {}): Promise<Replica> {
  const certs = await startSelfManagedCerts({
    kubeConfig: api.kubeConfig(),
    logger,
    checkIntervalMs: 3_600_000, // the tests call refresh() themselves
    startRetryMs: 10,
    ...extra,
  });
  const served: Replica['served'] = [certs.current()];
  certs.onChange((pair) => served.push(pair));
  running.push(certs);
  return { certs, served };
}

function secret(): K8sObject {
  const s = api.get('v1', 'Secret', SYSTEM_NAMESPACE, SELF_MANAGED_SECRET_NAME) as K8sObject | undefined;
  if (s === undefined) throw new Error('no Secret');
  return s;
}

function secretText(key: string): string {
  return Buffer.from(secret().data[key] as string, 'base64').toString('utf8');
}

function caBundles(): string[] {
  const wh = api.get('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', '', WEBHOOK_CONFIGURATION_NAME) as K8sObject;
  return (wh.webhooks as Array<{ clientConfig: { caBundle?: string } }>).map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
}

/** Does a CA in the bundle verify the certificate, as the API server would? */
function trusted(bundle: string, certPem: string): boolean {
  const leaf = new X509Certificate(certPem);
  return splitPems(bundle).some((ca) => {
    const c = new X509Certificate(ca);
    return leaf.checkIssued(c) && leaf.verify(c.publicKey);
  });
}

/** openssl verifies the chain, the purpose and the Service name, as the API server's TLS would. */
function opensslVerify(bundle: string, certPem: string, hostname: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'podvpn-verify-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), bundle);
    writeFileSync(join(dir, 'cert.pem'), certPem);
    return execFileSync(
      'openssl',
      ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslserver', '-verify_hostname', hostname, join(dir, 'cert.pem')],
      { encoding: 'utf8', stdio: 'pipe' },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const secretWrites = (): number => api.writes().filter((w) => w.resource === 'secrets').length;

describe('self-managed certificates', () => {
  it('creates the Secret, serves its certificate and writes caBundle into both webhook entries', async () => {
    const r = await replica();
    expect(r.served).toHaveLength(1);
    const s = secret();
    expect(s.type).toBe('kubernetes.io/tls');
    expect(Object.keys(s.data).sort()).toEqual(Object.values(SECRET_KEYS).sort());
    const leaf = new X509Certificate(r.served[0]!.cert);
    expect(r.served[0]!.cert).toBe(secretText(SECRET_KEYS.cert));
    for (const n of webhookDnsNames()) expect(leaf.subjectAltName).toContain(`DNS:${n}`);
    expect(leaf.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(r.served[0]!.key)))).toBe(true);
    const bundles = caBundles();
    expect(bundles).toHaveLength(2);
    for (const b of bundles) {
      expect(b).toBe(r.certs.caBundle());
      expect(trusted(b, r.served[0]!.cert)).toBe(true);
    }
    expect(opensslVerify(bundles[0]!, r.served[0]!.cert, `podvpn-webhook.${SYSTEM_NAMESPACE}.svc`)).toMatch(/: OK/);
    expect(() => opensslVerify(bundles[0]!, r.served[0]!.cert, 'elsewhere.example')).toThrow();
    // The rest of the webhook configuration is untouched.
    const wh = api.get('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', '', WEBHOOK_CONFIGURATION_NAME) as K8sObject;
    const strip = (w: K8sObject): unknown => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: undefined } });
    expect((wh.webhooks as K8sObject[]).map(strip)).toEqual((manifestWebhook.webhooks as K8sObject[]).map(strip));
  });

  it('reuses an existing certificate: no Secret write, no webhook patch on restart', async () => {
    const first = await replica();
    first.certs.stop();
    const before = api.writes().length;
    const second = await replica();
    expect(second.served[0]!.cert).toBe(first.served[0]!.cert);
    expect(api.writes().length).toBe(before);
  });

  it('two replicas starting at once end with one CA and one certificate', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    expect(a.served[0]!.cert).toBe(b.served[0]!.cert);
    expect(a.certs.caBundle()).toBe(b.certs.caBundle());
    const creates = api.requests.filter((q) => q.resource === 'secrets' && q.verb === 'create');
    expect(creates.length).toBeGreaterThanOrEqual(1);
    expect(api.list('v1', 'Secret', SYSTEM_NAMESPACE)).toHaveLength(1);
    for (const bundle of caBundles()) expect(trusted(bundle, a.served[0]!.cert)).toBe(true);
  });

  it('restores a caBundle someone blanked (kubectl apply of an old manifest, say)', async () => {
    const r = await replica();
    const wh = structuredClone(api.get('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', '', WEBHOOK_CONFIGURATION_NAME) as K8sObject);
    delete wh.webhooks[1].clientConfig.caBundle;
    api.put(wh);
    expect(caBundles()[1]).toBe('');
    await r.certs.refresh();
    expect(caBundles()).toEqual([r.certs.caBundle(), r.certs.caBundle()]);
  });

  it('waits for a webhook configuration that does not exist yet, and fills it once it does', async () => {
    api.remove('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', '', WEBHOOK_CONFIGURATION_NAME);
    const r = await replica();
    expect(r.served).toHaveLength(1);
    api.put(structuredClone(manifestWebhook));
    await r.certs.refresh();
    expect(caBundles()).toEqual([r.certs.caBundle(), r.certs.caBundle()]);
  });

  it('renews the serving certificate after 2/3 of its life, same CA; a peer picks the renewal up', async () => {
    let now = new Date();
    const clock = (): Date => now;
    const a = await replica({ now: clock });
    const b = await replica({ now: clock });
    const firstCert = a.served[0]!.cert;
    const bundle = a.certs.caBundle();

    now = new Date(now.getTime() + 200 * DAY); // 365-day certificate: renew after ~243 days
    await a.certs.refresh();
    expect(a.served).toHaveLength(1);

    now = new Date(now.getTime() + 60 * DAY);
    await a.certs.refresh();
    expect(a.served).toHaveLength(2);
    const renewed = a.served[1]!.cert;
    expect(renewed).not.toBe(firstCert);
    expect(new X509Certificate(renewed).validTo).not.toBe(new X509Certificate(firstCert).validTo);
    expect(a.certs.caBundle()).toBe(bundle); // same CA: no caBundle change
    expect(trusted(caBundles()[0]!, renewed)).toBe(true);

    await b.certs.refresh();
    expect(b.served.at(-1)!.cert).toBe(renewed);
  });

  it('two replicas due for renewal at once write one new certificate between them', async () => {
    let now = new Date();
    const clock = (): Date => now;
    const a = await replica({ now: clock });
    const b = await replica({ now: clock });
    now = new Date(now.getTime() + 300 * DAY);
    const writesBefore = secretWrites();
    await Promise.all([a.certs.refresh(), b.certs.refresh()]);
    expect(a.served.at(-1)!.cert).toBe(b.served.at(-1)!.cert);
    const updates = api.requests.filter((q) => q.resource === 'secrets' && q.verb === 'update');
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(secretWrites() - writesBefore).toBeLessThanOrEqual(2); // one wins, one may lose with 409
    expect(secretText(SECRET_KEYS.cert)).toBe(a.served.at(-1)!.cert);
  });

  it('rotates the CA before it expires and keeps trusting the old one while it is valid', async () => {
    let now = new Date();
    const clock = (): Date => now;
    const a = await replica({ now: clock, caDays: 90, certDays: 30 });
    const oldCa = secretText(SECRET_KEYS.caCert);
    const oldCert = a.served[0]!.cert;
    now = new Date(now.getTime() + 61 * DAY); // past 2/3 of the CA's 90 days
    await a.certs.refresh();
    const newCa = secretText(SECRET_KEYS.caCert);
    expect(newCa).not.toBe(oldCa);
    const bundle = caBundles()[0]!;
    expect(splitPems(bundle)).toEqual(splitPems(newCa + oldCa));
    expect(trusted(bundle, a.served.at(-1)!.cert)).toBe(true);
    expect(trusted(bundle, oldCert)).toBe(true); // a peer still serving the old one keeps working
    // Once the old CA has expired it leaves the bundle.
    now = new Date(now.getTime() + 30 * DAY);
    await a.certs.refresh();
    expect(splitPems(caBundles()[0]!)).toHaveLength(1);
  });

  it('replaces a Secret that holds garbage, and a certificate lacking a DNS name', async () => {
    api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: SELF_MANAGED_SECRET_NAME, namespace: SYSTEM_NAMESPACE },
      data: { 'tls.crt': Buffer.from('not a certificate').toString('base64'), 'tls.key': '' },
    });
    const r = await replica();
    expect(() => new X509Certificate(secretText(SECRET_KEYS.cert))).not.toThrow();
    r.certs.stop();
    const extra = await replica({ names: [...webhookDnsNames(), 'podvpn-webhook.example'] });
    expect(new X509Certificate(extra.served[0]!.cert).subjectAltName).toContain('DNS:podvpn-webhook.example');
  });

  it('retries through API errors at start', async () => {
    api.fault({ verb: 'get', resource: 'secrets', status: 500, times: 2 });
    api.fault({ verb: 'patch', resource: 'mutatingwebhookconfigurations', status: 503, times: 1 });
    const r = await replica();
    expect(r.served).toHaveLength(1);
    expect(caBundles()[0]).toBe(r.certs.caBundle());
  });

  it('gives up with a clear error when it can never read the Secret (RBAC missing, say)', async () => {
    api.fault({ verb: 'get', resource: 'secrets', status: 403, message: 'secrets is forbidden' });
    await expect(replica({ startTimeoutMs: 200 })).rejects.toThrow(/podvpn-webhook-tls.*403.*forbidden/);
  });

  it('makes only the API calls listed for it in src/kube/permissions.ts', async () => {
    let now = new Date();
    const a = await replica({ now: () => now, caDays: 90, certDays: 30 });
    now = new Date(now.getTime() + 70 * DAY);
    await a.certs.refresh();
    const allowed = API_PERMISSIONS.filter((p) => p.feature === 'self-managed-certs');
    const calls = api.requests.filter((q) => q.verb !== undefined);
    expect(calls.length).toBeGreaterThan(0);
    for (const q of calls) {
      const ok = allowed.some(
        (p) =>
          p.resource === q.resource &&
          p.verbs.includes(q.verb as never) &&
          (p.scope === 'cluster' || p.scope === q.namespace) &&
          (p.resourceNames === undefined || (q.name !== undefined && p.resourceNames.includes(q.name))),
      );
      expect(ok, `${q.verb} ${q.resource} ${q.namespace ?? ''}/${q.name ?? ''}`).toBe(true);
    }
  });

  it('outside a cluster (--self-managed-certs) the certificate also covers localhost and the loopback addresses', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig());
    const server = await startServer({ noKube: false, kubeconfig: join(dir, 'kubeconfig'), selfManagedCerts: true, listen: '[::]:0' });
    try {
      const ca = secretText(SECRET_KEYS.caCert);
      for (const host of ['127.0.0.1', '::1', 'localhost']) {
        await new Promise<void>((resolve, reject) => {
          const socket = connect({ host, port: server.webhookPort, ca }, () => {
            socket.end();
            resolve();
          });
          socket.on('error', reject);
        });
      }
      expect(new X509Certificate(secretText(SECRET_KEYS.cert)).subjectAltName).toContain(`DNS:podvpn-webhook.${SYSTEM_NAMESPACE}.svc`);
    } finally {
      await server.shutdown();
    }
  });
});
