// One rule for every watch podvpn keeps (namespaces, kill-switch policies): a failed watch restarts
// after 1 s, doubling to 30 s, reset when it connects again; stop() aborts it without a restart; and
// start() waits for the first list at most `startTimeoutMs`, so a hung API server never hangs serve.

import type { Informer, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeError } from './errors.js';

export const WATCH_START_TIMEOUT_MS = 10_000;

export interface KeptWatch {
  /** Resolves once the first list arrived, or after the start timeout (the watch goes on starting). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Has the watch listed since it (re)started? */
  synced(): boolean;
}

export function keepWatching<T extends KubernetesObject>(
  informer: Informer<T>,
  name: string,
  log: Logger,
  opts: { startTimeoutMs?: number | undefined } = {},
): KeptWatch {
  let stopped = false;
  let synced = false;
  let backoff = 1000;
  // client-node says 'connect' before it lists: only a finished list (start() resolving) syncs.
  const listed = (): void => {
    synced = true;
  };
  informer.on('connect', () => {
    backoff = 1000;
  });
  informer.on('error', (err: unknown) => {
    // stop() aborts the watch: that is no failure, and nothing is to be restarted.
    if (stopped || (err as { name?: string } | null)?.name === 'AbortError') return;
    synced = false;
    log.warn({ watch: name, err: describeError(err), retryMs: backoff }, `${name} watch failed; retrying`);
    const t = setTimeout(() => {
      if (!stopped) void informer.start().then(listed, () => undefined);
    }, backoff);
    t.unref();
    backoff = Math.min(backoff * 2, 30_000);
  });
  const startTimeoutMs = opts.startTimeoutMs ?? WATCH_START_TIMEOUT_MS;
  return {
    start: async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        informer.start().then(listed, () => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.warn({ watch: name, waitedMs: startTimeoutMs }, `${name} watch not synced yet; starting anyway`);
            resolve();
          }, startTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
    stop: () => {
      stopped = true;
      return informer.stop();
    },
    synced: () => synced,
  };
}
