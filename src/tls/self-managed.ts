// Self-managed certificates: the webhook keeps its own CA and serving certificate in one Secret in
// its namespace, keeps its MutatingWebhookConfiguration's caBundle current, and renews before
// expiry. No cert-manager needed (manifests/overlays/cert-manager is the alternative).
//
// Every replica runs the same loop; the API server arbitrates: the Secret is created with
// create-or-get (409 AlreadyExists: adopt the winner's) and renewed with an update carrying the
// resourceVersion it read (409 Conflict: re-read, a peer renewed first). Two replicas starting at
// once therefore end with one CA and one serving certificate.
//
// The calls made here are listed in src/kube/permissions.ts (feature `self-managed-certs`).

import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  type V1Secret,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { SYSTEM_NAMESPACE, WEBHOOK_CONFIGURATION_NAME, WEBHOOK_SERVICE_NAME } from '../constants.js';
import { SELF_MANAGED_SECRET_NAME } from '../kube/permissions.js';
import { type KeyPairPem, generateCA, generateServingCert, webhookDnsNames } from './certs.js';

export { SELF_MANAGED_SECRET_NAME };

/** Keys of the Secret (type kubernetes.io/tls). */
export const SECRET_KEYS = {
  cert: 'tls.crt',
  key: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  /** The current CA plus any previous CA still valid: trusted during a CA rotation. */
  caBundle: 'ca-bundle.crt',
} as const;

export interface SelfManagedCertsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Where the Secret lives. Default: podvpn-system. */
  namespace?: string;
  /** Default: podvpn-webhook-tls. */
  secretName?: string;
  /** The MutatingWebhookConfiguration whose caBundle is kept current. Default: podvpn. */
  webhookName?: string;
  /** SANs of the serving certificate. Default: the webhook Service's names in `namespace`. */
  dnsNames?: string[];
  /** Called with the serving certificate at start and whenever it changes (swap it in place). */
  onCertificate: (certPem: string, keyPem: string) => void;
  /** How often to re-read the Secret and the webhook configuration. Default: 60 s. */
  checkIntervalMs?: number;
  /** Validity of a new CA and serving certificate, in days. Defaults: 3650 and 365. */
  caDays?: number;
  certDays?: number;
  /** Renew once this fraction of a certificate's life has passed. Default: 2/3 (as cert-manager). */
  renewAfterFraction?: number;
  /** Give up starting after this long without a certificate. Default: 60 s. */
  startTimeoutMs?: number;
  /** The clock (tests move it). */
  now?: () => Date;
}

export interface SelfManagedCerts {
  /** Stop the background checks. */
  stop(): void;
  /** Check now: renew if due, pick up a peer's renewal, restore a drifted caBundle. */
  refresh(): Promise<void>;
  /** The PEM bundle written to the webhook configuration's caBundle. */
  caBundle(): string;
  /** notAfter of the serving certificate in use. */
  expiry(): Date;
}

/** What the Secret holds, parsed. */
interface Material {
  ca: KeyPairPem;
  serving: KeyPairPem;
  bundle: string;
}

type Assessment = { action: 'keep' } | { action: 'renew-serving'; why: string } | { action: 'renew-ca'; why: string } | { action: 'replace'; why: string };

/**
 * Reuse or create the certificate, deliver it through `onCertificate`, write the caBundle, and keep
 * all three current. Resolves once the first certificate has been delivered.
 */
export async function startSelfManagedCerts(opts: SelfManagedCertsOptions): Promise<SelfManagedCerts> {
  const manager = new CertManager(opts);
  await manager.start();
  return {
    stop: () => manager.stop(),
    refresh: () => manager.tick(),
    caBundle: () => manager.bundle(),
    expiry: () => manager.expiry(),
  };
}

class CertManager {
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly namespace: string;
  private readonly secretName: string;
  private readonly webhookName: string;
  private readonly dnsNames: string[];
  private readonly now: () => Date;
  private readonly log: Logger;
  private current: Material | undefined;
  private deliveredFingerprint = '';
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly opts: SelfManagedCertsOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.admission = opts.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.namespace = opts.namespace ?? SYSTEM_NAMESPACE;
    this.secretName = opts.secretName ?? SELF_MANAGED_SECRET_NAME;
    this.webhookName = opts.webhookName ?? WEBHOOK_CONFIGURATION_NAME;
    this.dnsNames = opts.dnsNames ?? webhookDnsNames(this.namespace, WEBHOOK_SERVICE_NAME);
    this.now = opts.now ?? (() => new Date());
    this.log = opts.logger.child({ component: 'self-managed-certs', secret: `${this.namespace}/${this.secretName}` });
    if (this.dnsNames.length === 0) throw new Error('self-managed certificates need at least one DNS name');
  }

  async start(): Promise<void> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 60_000);
    let delay = 250;
    for (;;) {
      try {
        await this.tick();
        break;
      } catch (err) {
        if (this.stopped) throw new Error('self-managed certificates stopped before the first certificate');
        if (Date.now() + delay > deadline) {
          throw new Error(`no serving certificate from Secret ${this.namespace}/${this.secretName}: ${describe(err)}`, { cause: err });
        }
        this.log.warn({ err: describe(err), retryInMs: delay }, 'cannot settle the webhook certificate yet; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
    const interval = this.opts.checkIntervalMs ?? 60_000;
    this.timer = setInterval(() => {
      this.tick().catch((err: unknown) => this.log.warn({ err: describe(err) }, 'certificate check failed; retrying at the next check'));
    }, interval);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  bundle(): string {
    return this.current?.bundle ?? '';
  }

  expiry(): Date {
    if (this.current === undefined) throw new Error('no certificate yet');
    return notAfter(this.current.serving.certPem);
  }

  /** One check. Calls never overlap: a tick during a tick waits for it. */
  tick(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    const run = (async () => {
      const material = await this.settleSecret();
      this.current = material;
      this.deliver(material);
      await this.ensureCaBundle(material.bundle);
    })();
    this.inflight = run.finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private deliver(m: Material): void {
    const fp = fingerprint(m.serving.certPem);
    if (fp === this.deliveredFingerprint) return;
    this.opts.onCertificate(m.serving.certPem, m.serving.keyPem);
    const first = this.deliveredFingerprint === '';
    this.deliveredFingerprint = fp;
    this.log.info({ notAfter: notAfter(m.serving.certPem).toISOString(), first }, first ? 'serving the self-managed certificate' : 'serving a renewed certificate');
  }

  /** Read the Secret, create or renew it if needed, and return what it holds once settled. */
  private async settleSecret(): Promise<Material> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const secret = await this.readSecret();
      if (secret === undefined) {
        const fresh = this.freshMaterial();
        try {
          await this.core.createNamespacedSecret({ namespace: this.namespace, body: this.secretBody(fresh) });
          this.log.info('created the CA and serving certificate');
          return fresh;
        } catch (err) {
          if (isStatus(err, 409)) {
            this.log.debug('another replica created the certificate first; adopting it');
            continue;
          }
          throw err;
        }
      }
      const parsed = this.parse(secret);
      const assessment = parsed === undefined ? ({ action: 'replace', why: 'the Secret does not hold a usable CA and certificate' } as const) : this.assess(parsed);
      if (assessment.action === 'keep') return parsed!;
      const next = this.produce(assessment, parsed);
      try {
        // The resourceVersion we read: if a peer renewed meanwhile, this update fails with 409.
        const body = this.secretBody(next);
        body.metadata = { ...body.metadata, resourceVersion: secret.metadata?.resourceVersion };
        await this.core.replaceNamespacedSecret({ namespace: this.namespace, name: this.secretName, body });
        this.log.info({ action: assessment.action, why: assessment.why }, 'renewed the webhook certificate');
        return next;
      } catch (err) {
        if (isStatus(err, 409)) {
          this.log.debug('another replica renewed the certificate first; re-reading');
          continue;
        }
        throw err;
      }
    }
    throw new Error(`Secret ${this.namespace}/${this.secretName} kept changing under us (5 attempts)`);
  }

  private async readSecret(): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace: this.namespace, name: this.secretName });
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private secretBody(m: Material): V1Secret {
    const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.secretName,
        namespace: this.namespace,
        labels: { 'app.kubernetes.io/name': 'podvpn', 'app.kubernetes.io/component': 'webhook', 'app.kubernetes.io/managed-by': 'podvpn' },
      },
      data: {
        [SECRET_KEYS.cert]: b64(m.serving.certPem),
        [SECRET_KEYS.key]: b64(m.serving.keyPem),
        [SECRET_KEYS.caCert]: b64(m.ca.certPem),
        [SECRET_KEYS.caKey]: b64(m.ca.keyPem),
        [SECRET_KEYS.caBundle]: b64(m.bundle),
      },
    };
  }

  private parse(secret: V1Secret): Material | undefined {
    const data = secret.data ?? {};
    const text = (k: string): string | undefined => (data[k] === undefined ? undefined : Buffer.from(data[k]!, 'base64').toString('utf8'));
    const cert = text(SECRET_KEYS.cert);
    const key = text(SECRET_KEYS.key);
    const caCert = text(SECRET_KEYS.caCert);
    const caKey = text(SECRET_KEYS.caKey);
    if (cert === undefined || key === undefined || caCert === undefined || caKey === undefined) return undefined;
    try {
      const ca = new X509Certificate(caCert);
      if (!ca.checkPrivateKey(createPrivateKey(caKey))) return undefined;
      const leaf = new X509Certificate(cert);
      if (!leaf.checkPrivateKey(createPrivateKey(key))) return undefined;
    } catch {
      return undefined;
    }
    const bundle = this.pruneBundle(text(SECRET_KEYS.caBundle) ?? '', caCert);
    return { ca: { certPem: caCert, keyPem: caKey }, serving: { certPem: cert, keyPem: key }, bundle };
  }

  /** The current CA first, then older CAs that are still valid; expired and unreadable ones dropped. */
  private pruneBundle(bundle: string, currentCa: string): string {
    const now = this.now().getTime();
    const current = normalizePem(currentCa);
    const older = splitPems(bundle).filter((pem) => {
      if (normalizePem(pem) === current) return false;
      try {
        return new Date(new X509Certificate(pem).validTo).getTime() > now;
      } catch {
        return false;
      }
    });
    return [current, ...older].join('');
  }

  private assess(m: Material): Assessment {
    const now = this.now().getTime();
    const ca = new X509Certificate(m.ca.certPem);
    const leaf = new X509Certificate(m.serving.certPem);
    if (now >= this.renewAt(ca)) return { action: 'renew-ca', why: `the CA expires ${ca.validTo}` };
    if (!ca.ca) return { action: 'replace', why: 'ca.crt is not a CA certificate' };
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return { action: 'renew-serving', why: 'the serving certificate was not issued by the CA' };
    if (now >= this.renewAt(leaf)) return { action: 'renew-serving', why: `the serving certificate expires ${leaf.validTo}` };
    const missing = this.dnsNames.filter((n) => !sanDnsNames(leaf).includes(n));
    if (missing.length > 0) return { action: 'renew-serving', why: `the serving certificate lacks ${missing.join(', ')}` };
    return { action: 'keep' };
  }

  private renewAt(cert: X509Certificate): number {
    const from = new Date(cert.validFrom).getTime();
    const to = new Date(cert.validTo).getTime();
    return from + (to - from) * (this.opts.renewAfterFraction ?? 2 / 3);
  }

  private freshMaterial(): Material {
    const ca = generateCA({ days: this.opts.caDays ?? 3650, now: this.now() });
    const serving = generateServingCert(ca, this.dnsNames, { days: this.opts.certDays ?? 365, now: this.now() });
    return { ca, serving, bundle: normalizePem(ca.certPem) };
  }

  private produce(a: Exclude<Assessment, { action: 'keep' }>, old: Material | undefined): Material {
    if (a.action === 'renew-serving' && old !== undefined) {
      const serving = generateServingCert(old.ca, this.dnsNames, { days: this.opts.certDays ?? 365, now: this.now() });
      return { ca: old.ca, serving, bundle: old.bundle };
    }
    const fresh = this.freshMaterial();
    // Keep trusting the old CA while it is valid: replicas that have not yet picked up the new
    // certificate still serve one it signed.
    if (old !== undefined) fresh.bundle = this.pruneBundle(old.bundle, fresh.ca.certPem);
    return fresh;
  }

  /** Patch caBundle into every entry of our webhook configuration that lacks it. */
  private async ensureCaBundle(bundle: string): Promise<void> {
    const want = Buffer.from(bundle, 'utf8').toString('base64');
    let config;
    try {
      config = await this.admission.readMutatingWebhookConfiguration({ name: this.webhookName });
    } catch (err) {
      if (isStatus(err, 404)) {
        this.log.warn({ webhook: this.webhookName }, 'MutatingWebhookConfiguration not found; its caBundle will be written once it exists');
        return;
      }
      throw err;
    }
    const ops: Array<Record<string, unknown>> = [];
    (config.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig.caBundle === want) return;
      // `test` guards against the list having changed since we read it (the patch then fails whole).
      ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
    });
    if (ops.length === 0) return;
    await this.admission.patchMutatingWebhookConfiguration(
      { name: this.webhookName, body: ops },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    this.log.info({ webhook: this.webhookName, entries: ops.length / 2 }, 'wrote caBundle');
  }
}

function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

function describe(err: unknown): string {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the raw body
    }
    return `HTTP ${err.code}: ${message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function fingerprint(pem: string): string {
  return createHash('sha256').update(pem).digest('hex');
}

function notAfter(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}

export function splitPems(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(normalizePem);
}

function normalizePem(pem: string): string {
  return `${pem.trim().replace(/\r\n/g, '\n')}\n`;
}

function sanDnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
}
