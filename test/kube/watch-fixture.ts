// For tests of a watch (the namespace cache, the exit loads) against the Kubernetes API double: a
// silent logger, eventually(), and a double and a watch per test that are stopped after it.

import pino from 'pino';
import { afterEach } from 'vitest';
import { KubeApiDouble } from '../kube-api-double/index.js';

export const silent = pino({ level: 'silent' });

/** Retries `check` every 25 ms until it passes, or rethrows its failure after `ms`. */
export async function eventually(check: () => void, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * Call in a describe block: `start()` gives the test a fresh API double, `stopAfter(watch)` marks what
 * it started against it. After each test the watch stops first (so it does not retry against a closed
 * server), then the double closes.
 */
export function doublePerTest(): { start(): Promise<KubeApiDouble>; stopAfter<W extends { stop(): Promise<void> }>(watch: W): W } {
  let api: KubeApiDouble | undefined;
  let watch: { stop(): Promise<void> } | undefined;
  afterEach(async () => {
    await watch?.stop();
    await api?.close();
    watch = undefined;
    api = undefined;
  });
  return {
    async start() {
      api = await KubeApiDouble.start();
      return api;
    },
    stopAfter(w) {
      watch = w;
      return w;
    },
  };
}
