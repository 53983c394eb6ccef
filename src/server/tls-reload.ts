// Serve the certificate on disk, and follow it when a mounted Secret is swapped under the process.
// Polling the content survives Kubernetes' symlink swap (..data), which file watchers often miss.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

export interface TlsMaterial {
  cert: string;
  key: string;
  fingerprint: string;
}

export const TLS_OPTIONS: SecureContextOptions = {
  // TLS 1.2 is the floor; Node negotiates 1.3 with every client that has it (the API server does).
  minVersion: 'TLSv1.2',
};

/** Read and check a pair: a half-written or mismatched pair throws and the old one stays. */
export function readTls(files: TlsFiles): TlsMaterial {
  const cert = readFileSync(files.certPath, 'utf8');
  const key = readFileSync(files.keyPath, 'utf8');
  createSecureContext({ ...TLS_OPTIONS, cert, key }); // throws on a bad or mismatched pair
  return { cert, key, fingerprint: createHash('sha256').update(cert).update(key).digest('hex') };
}

export interface Reloader {
  stop(): void;
}

export function watchTls(
  files: TlsFiles,
  current: TlsMaterial,
  intervalMs: number,
  onChange: (material: TlsMaterial) => void,
  onError: (err: Error) => void,
): Reloader {
  let fingerprint = current.fingerprint;
  let lastError = '';
  const timer = setInterval(() => {
    try {
      const next = readTls(files);
      lastError = '';
      if (next.fingerprint === fingerprint) return;
      fingerprint = next.fingerprint;
      onChange(next);
    } catch (err) {
      // Report each distinct failure once: a swap in progress may fail a tick or two.
      const message = (err as Error).message;
      if (message !== lastError) onError(err as Error);
      lastError = message;
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
