// Exit health: does the exit's VPN tunnel carry traffic? (pure reading and verdict; the fetcher and
// the poller at the bottom are the edge.)
//
// Two sources answer the same way, so this one reader reads either:
//   - podvpn's exit probe (`podvpn exit-probe`, probe.ts; the default healthURL, port 9998): a
//     container in each exit's gateway pod, in gluetun's network namespace, that opens a TCP
//     connection through the tunnel to 1.1.1.1:443 and 9.9.9.9:443 every second (0.8 s timeout) and
//     closes it. 200 while one connected in its latest round (at most 3 s old); 500 with the reason
//     otherwise ("no target answered: 1.1.1.1:443 timed out, 9.9.9.9:443 timed out", "probe did not
//     run yet", "exit is stopping" during the pod's 10 s drain). A dead tunnel reads 500 within
//     about 1.8 s (bench/exit-probe.mjs: 0.9 to 1.8 s). It does not see a tunnel that passes a TCP
//     handshake but not full-size packets (an MTU too large).
//   - gluetun's own health server (v3.41.1 internal/healthcheck, port 9999, still served): 200 when
//     its last check passed: after every tunnel-up a TCP+TLS dial through the tunnel to
//     HEALTH_TARGET_ADDRESSES (cloudflare.com:443, github.com:443) within 6 s, then an ICMP echo
//     every 60 s (1.1.1.1, 8.8.8.8; retried with growing timeouts, up to about 2 minutes) and the
//     TCP+TLS dial every 5 minutes; 500 and the error text otherwise ("healthcheck did not run yet"
//     until the first tunnel-up, or the failed check). So it trails a tunnel's death by a minute or
//     two.
// Both answer 400 to anything but GET. Both are reachable only from podvpn's pods (the group's
// NetworkPolicy, manifests/examples/exit-group).
//
// So "healthy" here means exactly: a fresh answer (at most MAX_AGE_INTERVALS polls old) of 200 from
// the exit's health URL. A 500, any other status, a refused or timed-out connection, or a name that
// does not resolve (the exit's headless Service publishes only a Ready pod: an exit pod that is not
// Ready or gone has no address) is unhealthy. No fresh answer at all: unknown.

import type { Config } from '../config/schema.js';

export interface HealthReading {
  exit: string;
  healthy: boolean;
  /** Why not (clipped), or 'ok'. */
  reason: string;
  /** When it was read (ms since the epoch). */
  at: number;
  /**
   * An unhealthy reading that is the exit's own word: its health server answered 500, or its pod's
   * address refused the connection or is unreachable. Not definitive: no answer in time, or another
   * status (an HTTP 408 is the server's own timeout), which a busy reader's node causes as well.
   */
  definitive?: boolean;
}

/** What gluetun's health server answered, as a verdict. */
export function readHealthAnswer(exit: string, status: number, body: string, at: number): HealthReading {
  if (status === 200) return { exit, healthy: true, reason: 'ok', at };
  const text = body.replace(/\s+/g, ' ').trim().slice(0, 200);
  if (status === 500) return { exit, healthy: false, reason: text === '' ? 'unhealthy' : text, at, definitive: true };
  return { exit, healthy: false, reason: `unexpected HTTP ${status}${text === '' ? '' : `: ${text}`}`, at };
}

/** A fetch that did not get an answer (refused, timed out, name not found). */
export function unreachable(exit: string, err: unknown, at: number): HealthReading {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  const name = (err as { name?: unknown } | undefined)?.name;
  const why = typeof cause === 'string' ? cause : name === 'TimeoutError' ? 'timed out' : 'no answer';
  const definitive = cause === 'ECONNREFUSED' || cause === 'EHOSTUNREACH' || cause === 'ENETUNREACH';
  return { exit, healthy: false, reason: `unreachable (${why})`, at, ...(definitive ? { definitive } : {}) };
}

/** Readings older than this many poll intervals are not believed. */
export const MAX_AGE_INTERVALS = 3;

/**
 * The exits of a group believed healthy now: undefined when nothing fresh is known about any of them
 * (then admission ranks over all exits), else the names with a fresh healthy reading.
 */
export function healthyExits(exits: readonly string[], readings: ReadonlyMap<string, HealthReading>, now: number, intervalMs: number): Set<string> | undefined {
  const fresh = exits.map((e) => readings.get(e)).filter((r): r is HealthReading => r !== undefined && now - r.at <= MAX_AGE_INTERVALS * intervalMs);
  if (fresh.length === 0) return undefined;
  return new Set(fresh.filter((r) => r.healthy).map((r) => r.exit));
}

// ---- the edge ----------------------------------------------------------------------------------

export type Fetch = (url: string, init: { signal: AbortSignal; redirect: 'error' }) => Promise<{ status: number; text(): Promise<string> }>;

/** One GET of an exit's health URL; never throws. */
export async function fetchExitHealth(exit: string, url: string, opts: { timeoutMs: number; fetch?: Fetch; now?: () => number }): Promise<HealthReading> {
  const fetcher = opts.fetch ?? globalThis.fetch;
  const now = opts.now ?? Date.now;
  try {
    const res = await fetcher(url, { signal: AbortSignal.timeout(opts.timeoutMs), redirect: 'error' });
    // gluetun's answer is a line; read no more than a little of whatever answers.
    const body = (await res.text()).slice(0, 1024);
    return readHealthAnswer(exit, res.status, body, now());
  } catch (err) {
    return unreachable(exit, err, now());
  }
}

export interface ExitHealthPoller {
  /** Fresh healthy exits of a group; undefined: unknown (see healthyExits). */
  healthy(gateway: string): Set<string> | undefined;
  /** Every exit's last reading (metrics). */
  readings(): HealthReading[];
  /** One round now (tests, and the first round at start). */
  poll(): Promise<void>;
  stop(): void;
}

/** Poll every exit of every group every `intervalMs`; a round's fetches run together, each bounded. */
export function startExitHealthPoller(
  config: Pick<Config, 'gateways'>,
  opts: { intervalMs?: number; timeoutMs?: number; fetch?: Fetch; now?: () => number; onReading?: (r: HealthReading, previous: HealthReading | undefined) => void } = {},
): ExitHealthPoller {
  const intervalMs = opts.intervalMs ?? 10_000;
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const now = opts.now ?? Date.now;
  const exits = Object.values(config.gateways).flatMap((g) => (g.exits ?? []).map((e) => ({ gateway: g.name, exit: e })));
  const readings = new Map<string, HealthReading>();
  let round: Promise<void> | undefined;
  const poll = (): Promise<void> => {
    round ??= Promise.all(
      exits.map(async ({ exit }) => {
        const r = await fetchExitHealth(exit.name, exit.healthURL, { timeoutMs, now, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
        const previous = readings.get(exit.name);
        readings.set(exit.name, r);
        opts.onReading?.(r, previous);
      }),
    ).then(() => {
      round = undefined;
    });
    return round;
  };
  const timer = exits.length === 0 ? undefined : setInterval(() => void poll(), intervalMs);
  timer?.unref();
  if (exits.length > 0) void poll();
  return {
    healthy: (gateway) => {
      const g = config.gateways[gateway];
      if (g?.exits === undefined) return undefined;
      return healthyExits(g.exits.map((e) => e.name), readings, now(), intervalMs);
    },
    readings: () => [...readings.values()],
    poll,
    stop: () => {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}
