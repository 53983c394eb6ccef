// The self-managed certificate's Secret: read it, and write it the way that lets replicas race safely.
// The API server arbitrates: create fails with 409 AlreadyExists when a peer created it first (adopt
// theirs), an update carrying the resourceVersion we read fails with 409 Conflict when a peer renewed
// first (re-read). `settle` loops over that, a bounded number of times.

import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { LABEL_MANAGED_BY, PRODUCT } from '../constants.js';
import { isStatus } from '../kube/errors.js';

/** Keys of the Secret (type kubernetes.io/tls). */
export const SECRET_KEYS = {
  cert: 'tls.crt',
  key: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  /** The current CA plus any previous CA still valid: trusted during a CA rotation. */
  caBundle: 'ca-bundle.crt',
} as const;

/** What the Secret holds, as text. Absent keys are undefined. */
export type StoredPems = Partial<Record<keyof typeof SECRET_KEYS, string>>;

/** What a caller decides after reading: keep what is stored, or write something new. */
export type Settlement<T> = { keep: T } | { write: StoredPems & Required<Pick<StoredPems, 'cert' | 'key' | 'caCert' | 'caKey' | 'caBundle'>>; result: T; why: string };

export type SettleOutcome<T> = { result: T; wrote: 'nothing' | 'created' | 'replaced'; why?: string };

const SETTLE_ATTEMPTS = 5;

export class SecretStore {
  constructor(
    private readonly core: CoreV1Api,
    readonly namespace: string,
    readonly name: string,
  ) {}

  /**
   * Read, let `decide` choose, write if asked; on a lost race re-read and decide again. `decide` sees
   * `undefined` when there is no Secret.
   */
  async settle<T>(decide: (stored: StoredPems | undefined) => Promise<Settlement<T>>, onRace?: (what: string) => void): Promise<SettleOutcome<T>> {
    for (let attempt = 1; attempt <= SETTLE_ATTEMPTS; attempt++) {
      const secret = await this.read();
      const decision = await decide(secret === undefined ? undefined : decode(secret));
      if ('keep' in decision) return { result: decision.keep, wrote: 'nothing' };
      const body = this.body(decision.write);
      try {
        if (secret === undefined) {
          await this.core.createNamespacedSecret({ namespace: this.namespace, body });
          return { result: decision.result, wrote: 'created', why: decision.why };
        }
        // The resourceVersion we read: if a peer renewed meanwhile, this update fails with 409.
        body.metadata = { ...body.metadata, resourceVersion: secret.metadata?.resourceVersion };
        await this.core.replaceNamespacedSecret({ namespace: this.namespace, name: this.name, body });
        return { result: decision.result, wrote: 'replaced', why: decision.why };
      } catch (err) {
        if (!isStatus(err, 409)) throw err;
        onRace?.(secret === undefined ? 'another replica created the Secret first; adopting it' : 'another replica renewed the Secret first; re-reading');
      }
    }
    throw new Error(`Secret ${this.namespace}/${this.name} kept changing under us (${SETTLE_ATTEMPTS} attempts)`);
  }

  async read(): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace: this.namespace, name: this.name });
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private body(pems: StoredPems): V1Secret {
    const data: Record<string, string> = {};
    for (const [field, key] of Object.entries(SECRET_KEYS)) {
      const text = pems[field as keyof StoredPems];
      if (text !== undefined) data[key] = Buffer.from(text, 'utf8').toString('base64');
    }
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { 'app.kubernetes.io/name': PRODUCT, 'app.kubernetes.io/component': 'webhook', [LABEL_MANAGED_BY]: PRODUCT },
      },
      data,
    };
  }
}

function decode(secret: V1Secret): StoredPems {
  const data = secret.data ?? {};
  const out: StoredPems = {};
  for (const [field, key] of Object.entries(SECRET_KEYS)) {
    const b64 = data[key];
    if (b64 !== undefined) out[field as keyof StoredPems] = Buffer.from(b64, 'base64').toString('utf8');
  }
  return out;
}
