// The exit probe (`podvpn exit-probe`), pure part: its options, the verdict over its latest round and
// the HTTP answer. The sockets, timers and server are in probe-run.ts.
//
// It runs as a container in each exit's gateway pod, so it shares gluetun's network namespace and its
// connections follow gluetun's routes and firewall: through the tunnel, or nowhere. Every interval
// (1 s) it opens a TCP connection to each target (IP:PORT; by address, because DNS in the gateway pod
// itself goes through the tunnel) with a timeout (0.8 s), and closes it at once. Healthy: at least one
// target connected in the latest round, and that round is fresh (at most STALE_INTERVALS intervals
// old). It answers exactly as gluetun's health server does (v3.41.1 internal/healthcheck/handler.go),
// so one reader (readHealthAnswer in health.ts) reads both: GET → 200 with an empty body when
// healthy, 500 with the reason text otherwise; anything but GET → 400.
//
// A dead tunnel shows as 500 within one interval plus one timeout (about 1.8 s), where gluetun's
// own check takes up to a minute or two.

import ipaddr from 'ipaddr.js';

export interface ProbeTarget {
  host: string;
  port: number;
  /** As the operator wrote it (and as reasons name it): `1.1.1.1:443`, `[2606:4700::1111]:443`. */
  label: string;
}

/** Two anycast resolvers of different operators, by address, on 443 (open through any sane egress). */
export const DEFAULT_PROBE_TARGETS = ['1.1.1.1:443', '9.9.9.9:443'] as const;
/** A round older than this many intervals is not believed (the loop stalled). */
export const STALE_INTERVALS = 3;
const MAX_TARGETS = 8;

export interface ProbeOptions {
  targets: ProbeTarget[];
  intervalMs: number;
  timeoutMs: number;
  listen: { host: string; port: number };
  /** After SIGTERM: answer 500 "exit is stopping" this long before exiting (the pod's drain). */
  drainMs: number;
}

/** A bad flag: the CLI prints it as a usage error. */
export class ProbeOptionError extends Error {}

export interface RawProbeOptions {
  targets?: string[] | undefined;
  interval?: string | undefined;
  timeout?: string | undefined;
  listen?: string | undefined;
  drain?: string | undefined;
}

/** Validate the flags (seconds, decimals allowed), or throw a ProbeOptionError that says which and why. */
export function resolveProbeOptions(raw: RawProbeOptions, defaultPort: number): ProbeOptions {
  const targetTexts = raw.targets ?? [...DEFAULT_PROBE_TARGETS];
  if (targetTexts.length > MAX_TARGETS) throw new ProbeOptionError(`--target may be given at most ${MAX_TARGETS} times, got ${targetTexts.length}`);
  const targets = targetTexts.map(parseProbeTarget);
  const intervalMs = secondsFlag(raw.interval, '--interval', 1, { min: 0.1, max: 60 });
  const timeoutMs = secondsFlag(raw.timeout, '--timeout', Math.min(0.8, (intervalMs / 1000) * 0.8), { min: 0.05, max: 60 });
  // A round ends (every connection answered or timed out) before the next starts: one in flight at most.
  if (timeoutMs >= intervalMs) throw new ProbeOptionError(`--timeout (${timeoutMs / 1000} s) must be shorter than --interval (${intervalMs / 1000} s)`);
  const drainMs = secondsFlag(raw.drain, '--drain', 0, { min: 0, max: 600 });
  return { targets, intervalMs, timeoutMs, drainMs, listen: parseListenFlag(raw.listen ?? `0.0.0.0:${defaultPort}`) };
}

function secondsFlag(value: string | undefined, flag: string, fallbackSeconds: number, range: { min: number; max: number }): number {
  if (value === undefined) return Math.round(fallbackSeconds * 1000);
  const n = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < range.min || n > range.max) {
    throw new ProbeOptionError(`${flag} must be a number of seconds from ${range.min} to ${range.max}, got "${value}"`);
  }
  return Math.round(n * 1000);
}

/** `IP:PORT` or `[IPv6]:PORT`; a name is refused (it would need DNS, which needs the tunnel). */
export function parseProbeTarget(text: string): ProbeTarget {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  const bad = (why: string) => new ProbeOptionError(`--target "${text}": ${why}`);
  if (m === null) throw bad('must be IP:PORT or [IPv6]:PORT, e.g. 1.1.1.1:443');
  if (!(port >= 1 && port <= 65_535)) throw bad('port must be 1 to 65535');
  if (m[1] !== undefined) {
    if (!ipaddr.IPv6.isValid(m[1])) throw bad(`"${m[1]}" is not an IPv6 address`);
    return { host: m[1], port, label: `[${m[1]}]:${port}` };
  }
  const host = m[2]!;
  if (!ipaddr.IPv4.isValidFourPartDecimal(host)) throw bad('must be an IP address, not a name (DNS in the gateway pod goes through the tunnel too)');
  return { host, port, label: `${host}:${port}` };
}

function parseListenFlag(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (m === null || !(port >= 0 && port <= 65_535)) throw new ProbeOptionError(`--listen "${value}" must be HOST:PORT, e.g. 0.0.0.0:9998 or [::]:9998`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** One target in one round: connected, or why not ('timed out', 'refused', an errno code). */
export interface TargetOutcome {
  target: string;
  ok: boolean;
  detail: string;
}

export interface ProbeRound {
  /** When the round's last connection answered or timed out (ms). */
  at: number;
  outcomes: TargetOutcome[];
}

export interface ProbeVerdict {
  healthy: boolean;
  /** 'ok', or the text a 500 carries. */
  reason: string;
}

/** A failed connect, in the words a reason uses. */
export function describeConnectError(code: string | undefined): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEDOUT':
      return 'timed out';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    // An iptables DROP in OUTPUT (gluetun's firewall with the tunnel down) fails connect() with EPERM.
    case 'EPERM':
    case 'EACCES':
      return `blocked by the firewall (${code})`;
    case undefined:
      return 'failed';
    default:
      return code;
  }
}

/** Is the exit's tunnel carrying traffic, as far as the latest round says, at `now`? */
export function probeVerdict(state: { last: ProbeRound | undefined; stopping: boolean }, now: number, intervalMs: number): ProbeVerdict {
  if (state.stopping) return { healthy: false, reason: 'exit is stopping' };
  const last = state.last;
  if (last === undefined) return { healthy: false, reason: 'probe did not run yet' };
  const age = now - last.at;
  if (age > STALE_INTERVALS * intervalMs) return { healthy: false, reason: `last probe round is stale (${age} ms old)` };
  if (last.outcomes.some((o) => o.ok)) return { healthy: true, reason: 'ok' };
  return { healthy: false, reason: `no target answered: ${last.outcomes.map((o) => `${o.target} ${o.detail}`).join(', ')}` };
}

export interface ProbeAnswer {
  status: number;
  body: string;
}

/** The HTTP answer, as gluetun's handler writes it (http.Error appends a newline). */
export function probeAnswer(method: string | undefined, verdict: ProbeVerdict): ProbeAnswer {
  if (method !== 'GET') return { status: 400, body: 'method not supported for healthcheck\n' };
  return verdict.healthy ? { status: 200, body: '' } : { status: 500, body: `${verdict.reason}\n` };
}
