// Self-managed certificates: the webhook keeps its own CA and serving certificate in one Secret in
// its namespace, keeps its MutatingWebhookConfiguration's caBundle current, and renews before
// expiry. No cert-manager needed (manifests/overlays/cert-manager is the alternative).
//
// This file is the loop only: read and settle the Secret (secret-store.ts, which arbitrates races
// between replicas), decide with the pure rule (rotation.ts), issue with x509.ts, patch the caBundle
// (ca-bundle.ts), then check again every interval. It is a CertificateSource like the file source.
//
// The calls made here are listed in src/kube/permissions.ts (feature `self-managed-certs`).

import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { SELF_MANAGED_SECRET_NAME, SYSTEM_NAMESPACE, WEBHOOK_CONFIGURATION_NAME, WEBHOOK_SERVICE_NAME } from '../constants.js';
import { describeError } from '../kube/errors.js';
import { ensureCaBundle } from './ca-bundle.js';
import { webhookDnsNames } from './names.js';
import { type Assessment, type Observed, RENEW_AFTER_FRACTION, type WantedNames, assess, trustedCAs } from './rotation.js';
import { SecretStore, type Settlement, type StoredPems } from './secret-store.js';
import { type CertificateSource, PairHolder } from './source.js';
import { type KeyPairPem, certFacts, fingerprint, generateCA, generateServingCert, issuedBy, keyMatches, normalizePem, splitNames, splitPems } from './x509.js';

export interface SelfManagedCertsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Where the Secret lives. Default: podvpn-system. */
  namespace?: string;
  /** Default: podvpn-webhook-tls. */
  secretName?: string;
  /** The MutatingWebhookConfiguration whose caBundle is kept current. Default: podvpn. */
  webhookName?: string;
  /** SANs of the serving certificate (DNS names and IPs). Default: the webhook Service's names in `namespace`. */
  names?: string[];
  /** How often to re-read the Secret and the webhook configuration. Default: 60 s. */
  checkIntervalMs?: number;
  /** Validity of a new CA and serving certificate, in days. Defaults: 3650 and 365. */
  caDays?: number;
  certDays?: number;
  /** Renew once this fraction of a certificate's life has passed. Default: 2/3 (as cert-manager). */
  renewAfterFraction?: number;
  /** Give up starting after this long without a certificate. Default: 60 s. */
  startTimeoutMs?: number;
  /** First wait before retrying a failed start; doubles up to 10 s. Default: 250 ms. */
  startRetryMs?: number;
  /** The clock (tests move it). */
  now?: () => Date;
}

export interface SelfManagedCerts extends CertificateSource {
  /** Check now: renew if due, pick up a peer's renewal, restore a drifted caBundle. */
  refresh(): Promise<void>;
  /** The PEM bundle written to the webhook configuration's caBundle. */
  caBundle(): string;
}

/** What the Secret holds, checked and parsed. */
interface Material {
  ca: KeyPairPem;
  serving: KeyPairPem;
  bundle: string;
}

/**
 * Reuse or create the certificate, write the caBundle, and keep all three current. Resolves once the
 * first certificate is settled.
 */
export async function startSelfManagedCerts(opts: SelfManagedCertsOptions): Promise<SelfManagedCerts> {
  // Listeners subscribe after start, so the first certificate reaches them through current().
  const holder = new PairHolder();
  const loop = new SelfManagedLoop(opts, holder);
  await loop.start();
  return {
    current: () => holder.current(),
    onChange: (listener) => holder.onChange(listener),
    stop: () => loop.stop(),
    refresh: () => loop.tick(),
    caBundle: () => loop.bundle(),
  };
}

class SelfManagedLoop {
  private readonly store: SecretStore;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly webhookName: string;
  private readonly names: string[];
  private readonly want: WantedNames;
  private readonly now: () => Date;
  private readonly fraction: number;
  private readonly log: Logger;
  private current: Material | undefined;
  private delivered = '';
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly opts: SelfManagedCertsOptions,
    private readonly served: PairHolder,
  ) {
    const namespace = opts.namespace ?? SYSTEM_NAMESPACE;
    this.store = new SecretStore(opts.kubeConfig.makeApiClient(CoreV1Api), namespace, opts.secretName ?? SELF_MANAGED_SECRET_NAME);
    this.admission = opts.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.webhookName = opts.webhookName ?? WEBHOOK_CONFIGURATION_NAME;
    this.names = opts.names ?? webhookDnsNames(namespace, WEBHOOK_SERVICE_NAME);
    if (this.names.length === 0) throw new Error('self-managed certificates need at least one DNS name');
    this.want = splitNames(this.names);
    this.now = opts.now ?? (() => new Date());
    this.fraction = opts.renewAfterFraction ?? RENEW_AFTER_FRACTION;
    this.log = opts.logger.child({ component: 'self-managed-certs', secret: `${namespace}/${this.store.name}` });
  }

  /** Settle the first certificate, retrying with backoff until `startTimeoutMs`; then check every interval. */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 60_000);
    let delay = this.opts.startRetryMs ?? 250;
    for (;;) {
      try {
        await this.tick();
        break;
      } catch (err) {
        if (this.stopped) throw new Error('self-managed certificates stopped before the first certificate', { cause: err });
        if (Date.now() + delay > deadline) {
          throw new Error(`no serving certificate from Secret ${this.store.namespace}/${this.store.name}: ${describeError(err)}`, { cause: err });
        }
        this.log.warn({ err: describeError(err), retryInMs: delay }, 'cannot settle the webhook certificate yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
    this.timer = setInterval(() => {
      this.tick().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'certificate check failed; retrying at the next check'));
    }, this.opts.checkIntervalMs ?? 60_000);
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

  /** One check. Calls never overlap: a tick during a tick waits for it. */
  tick(): Promise<void> {
    this.inflight ??= this.check().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async check(): Promise<void> {
    const outcome = await this.store.settle((stored) => this.decide(stored), (what) => this.log.debug(what));
    if (outcome.wrote !== 'nothing') this.log.info({ wrote: outcome.wrote, why: outcome.why }, 'wrote the webhook certificate');
    const material = outcome.result;
    this.current = material;
    this.deliver(material);
    const bundle = await ensureCaBundle(this.admission, this.webhookName, material.bundle);
    if (bundle.result === 'missing') this.log.warn({ webhook: this.webhookName }, 'MutatingWebhookConfiguration not found; its caBundle will be written once it exists');
    if (bundle.result === 'written') this.log.info({ webhook: this.webhookName, entries: bundle.entries }, 'wrote caBundle');
  }

  private deliver(m: Material): void {
    const fp = fingerprint(m.serving.certPem);
    if (fp === this.delivered) return;
    const first = this.delivered === '';
    this.delivered = fp;
    this.served.set({ cert: m.serving.certPem, key: m.serving.keyPem });
    this.log.info({ notAfter: certFacts(m.serving.certPem).notAfter.toISOString(), first }, first ? 'serving the self-managed certificate' : 'serving a renewed certificate');
  }

  /** Keep what the Secret holds, or produce what to write instead. */
  private async decide(stored: StoredPems | undefined): Promise<Settlement<Material>> {
    const now = this.now();
    const parsed = stored === undefined ? undefined : await this.parse(stored, now);
    const assessment: Assessment = assess(parsed?.observed, this.want, now, this.fraction);
    if (assessment.action === 'keep') return { keep: parsed!.material };
    const next = await this.produce(assessment, parsed?.material, now);
    return {
      result: next,
      why: stored === undefined ? 'no Secret yet' : `${assessment.action}: ${assessment.why}`,
      write: { cert: next.serving.certPem, key: next.serving.keyPem, caCert: next.ca.certPem, caKey: next.ca.keyPem, caBundle: next.bundle },
    };
  }

  /** Check the stored PEMs (keys match, readable) and gather the facts rotation needs. */
  private async parse(s: StoredPems, now: Date): Promise<{ material: Material; observed: Observed } | undefined> {
    if (s.cert === undefined || s.key === undefined || s.caCert === undefined || s.caKey === undefined) return undefined;
    if (!keyMatches(s.caCert, s.caKey) || !keyMatches(s.cert, s.key)) return undefined;
    try {
      const observed: Observed = { ca: certFacts(s.caCert), leaf: certFacts(s.cert), leafIssuedByCa: await issuedBy(s.cert, s.caCert) };
      const material = { ca: { certPem: s.caCert, keyPem: s.caKey }, serving: { certPem: s.cert, keyPem: s.key }, bundle: bundleOf(s.caCert, s.caBundle ?? '', now) };
      return { material, observed };
    } catch {
      return undefined;
    }
  }

  private async produce(a: Exclude<Assessment, { action: 'keep' }>, old: Material | undefined, now: Date): Promise<Material> {
    const certDays = this.opts.certDays ?? 365;
    if (a.action === 'renew-serving' && old !== undefined) {
      const serving = await generateServingCert(old.ca, this.names, { days: certDays, now });
      return { ca: old.ca, serving, bundle: old.bundle };
    }
    const ca = await generateCA({ days: this.opts.caDays ?? 3650, now });
    const serving = await generateServingCert(ca, this.names, { days: certDays, now });
    // Keep trusting the old CA while it is valid: replicas that have not yet picked up the new
    // certificate still serve one it signed.
    return { ca, serving, bundle: bundleOf(ca.certPem, old?.bundle ?? '', now) };
  }
}

/** The current CA first, then older CAs from `bundle` that are still valid; unreadable ones dropped. */
function bundleOf(currentCa: string, bundle: string, now: Date): string {
  const facts = (pem: string): { notAfter: Date } | undefined => {
    try {
      return certFacts(pem);
    } catch {
      return undefined;
    }
  };
  const current = normalizePem(currentCa);
  const older = splitPems(bundle).map((pem) => ({ pem, facts: facts(pem) }));
  return trustedCAs({ pem: current, facts: facts(current) }, older, now)
    .map((c) => c.pem)
    .join('');
}
