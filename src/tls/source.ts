// Where the serving certificate comes from, behind one interface (cert-manager's CertificateSource):
// files on disk (files.ts, also used for the CA generated under certs/ by local.ts) or the
// self-managed Secret (self-managed.ts). The server sees only this.

export interface ServingPair {
  cert: string;
  key: string;
}

export interface CertificateSource {
  /** The certificate to serve now. A started source always has one. */
  current(): ServingPair;
  /** Called with each new certificate after the first (swap it into the server). */
  onChange(listener: (pair: ServingPair) => void): void;
  /** Stop background checks. */
  stop(): void;
}

/** A small fan-out for sources: remembers the current pair and tells listeners about changes. */
export class PairHolder {
  private readonly listeners: Array<(pair: ServingPair) => void> = [];
  private pair: ServingPair | undefined;

  current(): ServingPair {
    if (this.pair === undefined) throw new Error('no serving certificate yet');
    return this.pair;
  }

  onChange(listener: (pair: ServingPair) => void): void {
    this.listeners.push(listener);
  }

  set(pair: ServingPair): void {
    this.pair = pair;
    for (const l of this.listeners) l(pair);
  }
}
