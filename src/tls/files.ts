// A certificate source over files on disk: serve the pair, and follow it when a mounted Secret is
// swapped under the process. Polling the content survives Kubernetes' symlink swap (..data), which
// file watchers often miss. A half-written or mismatched pair is reported and the old one stays.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { TLS_OPTIONS } from './options.js';
import { type CertificateSource, PairHolder, type ServingPair } from './source.js';

export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

/** Read and check a pair: a bad or mismatched pair throws. */
function readTls(files: TlsFiles): ServingPair {
  const cert = readFileSync(files.certPath, 'utf8');
  const key = readFileSync(files.keyPath, 'utf8');
  createSecureContext({ ...TLS_OPTIONS, cert, key }); // throws on a bad or mismatched pair
  return { cert, key };
}

function fingerprint(cert: string, key: string): string {
  return createHash('sha256').update(cert).update(key).digest('hex');
}

export interface FileSourceOptions {
  intervalMs: number;
  /** Each distinct failure to read a usable pair, once (a swap in progress may fail a tick or two). */
  onError: (err: Error) => void;
}

/** Read the pair now (throws if unusable) and re-read it every `intervalMs`. */
export function startFileSource(files: TlsFiles, opts: FileSourceOptions): CertificateSource {
  const first = readTls(files);
  const holder = new PairHolder();
  holder.set(first);
  let current = fingerprint(first.cert, first.key);
  let lastError = '';
  const timer = setInterval(() => {
    try {
      const next = readTls(files);
      lastError = '';
      const fp = fingerprint(next.cert, next.key);
      if (fp === current) return;
      current = fp;
      holder.set(next);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (e.message !== lastError) opts.onError(e);
      lastError = e.message;
    }
  }, opts.intervalMs);
  timer.unref();
  return {
    current: () => holder.current(),
    onChange: (listener) => holder.onChange(listener),
    stop: () => clearInterval(timer),
  };
}
