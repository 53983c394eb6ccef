// The exit probe's edge (probe.ts says what it checks and why): a TCP connect per target per round,
// the round timer, and the HTTP server that answers as gluetun's health server does.
//
// Bounded: at most one round in flight (a round's connections end by the timeout, shorter than the
// interval; a tick that finds one still running is skipped), one round kept, no request body read,
// short header and request timeouts, at most MAX_CONNECTIONS open connections.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describeConnectError, type ProbeOptions, type ProbeRound, type ProbeTarget, type ProbeVerdict, probeAnswer, probeVerdict, type TargetOutcome } from './probe.js';

const MAX_CONNECTIONS = 64;

/** What the probe says about itself: a state change, the start, the stop. */
export type ProbeLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

/** Open a TCP connection to the target and close it at once; never throws. */
export function connectOnce(target: ProbeTarget, timeoutMs: number): Promise<TargetOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    const done = (ok: boolean, detail: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ target: target.label, ok, detail });
    };
    const timer = setTimeout(() => done(false, 'timed out'), timeoutMs);
    socket.once('connect', () => done(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(false, describeConnectError(err.code)));
  });
}

/** How long a request to the probe's HTTP server may take to arrive, headers and all. */
export const PROBE_REQUEST_TIMEOUT_MS = 5000;

export interface RunningExitProbe {
  /** The port it listens on (the asked one, or the one the system chose for port 0). */
  port: number;
  verdict(): ProbeVerdict;
  /** Answer 500 "exit is stopping" from now on, wait the drain, then close everything. */
  stop(): Promise<void>;
  /** Close at once (tests; a second signal). */
  close(): Promise<void>;
}

export async function startExitProbe(options: ProbeOptions, deps: { log?: ProbeLog; now?: () => number } = {}): Promise<RunningExitProbe> {
  const now = deps.now ?? Date.now;
  const log = deps.log ?? (() => undefined);
  const state: { last: ProbeRound | undefined; stopping: boolean } = { last: undefined, stopping: false };
  let inFlight = false;
  let wasHealthy: boolean | undefined;
  const verdict = () => probeVerdict(state, now(), options.intervalMs);

  const round = async (): Promise<void> => {
    if (inFlight || state.stopping) return;
    inFlight = true;
    let outcomes: TargetOutcome[];
    try {
      outcomes = await Promise.all(options.targets.map((t) => connectOnce(t, options.timeoutMs)));
      state.last = { at: now(), outcomes };
    } finally {
      inFlight = false;
    }
    const v = verdict();
    // Once per change, not every second.
    if (v.healthy !== wasHealthy && !state.stopping) {
      if (v.healthy) log('info', 'exit probe: a target answered; the tunnel carries traffic', { targets: outcomes });
      else log('warn', `exit probe: ${v.reason}`, { targets: outcomes });
      wasHealthy = v.healthy;
    }
  };

  const server = createServer(
    // The timeouts are checked every connectionsCheckingInterval: keep it short, or a slow client
    // holds a connection for the default 30 s. 5 s, longer than the agent's poll (2 s): at 1 s, a
    // probe process held off the CPU for a second on a busy node answered live polls with 408, and
    // three of those made the agent judge a working exit unhealthy and move its pods (the exits lab,
    // 30 pods: 7 pods moved off vpn-a for a 2.3 s blip). A poll the agent gave up on costs nothing.
    { requestTimeout: PROBE_REQUEST_TIMEOUT_MS, headersTimeout: PROBE_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 500, maxHeaderSize: 8192 },
    (req: IncomingMessage, res: ServerResponse) => {
      // The body is never read: a request that has one gets its answer and the connection closes.
      const a = probeAnswer(req.method, verdict());
      const headers: Record<string, string> = { 'content-length': String(Buffer.byteLength(a.body)) };
      if (a.body !== '') Object.assign(headers, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      if (req.method !== 'GET' || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) headers.connection = 'close';
      res.writeHead(a.status, headers).end(a.body);
    },
  );
  server.keepAliveTimeout = 2000;
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.listen.host, port: options.listen.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const timer = setInterval(() => void round(), options.intervalMs);
  void round();

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      clearInterval(timer);
      state.stopping = true;
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  log('info', 'exit probe started', {
    listen: `${options.listen.host}:${port}`,
    targets: options.targets.map((t) => t.label),
    intervalMs: options.intervalMs,
    timeoutMs: options.timeoutMs,
    drainMs: options.drainMs,
  });
  return {
    port,
    verdict,
    close,
    stop: async () => {
      if (!state.stopping) {
        state.stopping = true;
        clearInterval(timer);
        log('info', `exit probe: stopping; answering "exit is stopping" for ${options.drainMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, options.drainMs));
      }
      await close();
    },
  };
}
