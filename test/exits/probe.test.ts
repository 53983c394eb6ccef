// The exit probe (`podvpn exit-probe`) against real sockets: local listeners as targets, a refused
// port, a blackholed target, its HTTP answers read by health.ts's own fetcher, and the built CLI as a
// process (flags, SIGTERM and the drain).
//
// The blackhole is local and deterministic: a listener in a child process whose event loop is blocked
// (it never accepts) with a backlog of 1. Linux queues backlog + 1 = 2 connections without accept;
// once those are held, the kernel drops further SYNs (the listen-queue overflow), so a connect times
// out exactly as one into a dead WireGuard tunnel does (the SYN goes out, nothing comes back).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, request } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchExitHealth } from '../../src/exits/health.js';
import { type ProbeOptions, resolveProbeOptions } from '../../src/exits/probe.js';
import { connectOnce, PROBE_REQUEST_TIMEOUT_MS, type ProbeLog, type RunningExitProbe, startExitProbe } from '../../src/exits/probe-run.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const INTERVAL = 400;
const TIMEOUT = 250;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listener(port = 0): Promise<Server> {
  const server = createServer();
  server.on('connection', (s) => s.on('error', () => undefined));
  await new Promise<void>((ok) => server.listen({ port, host: '127.0.0.1' }, ok));
  cleanups.push(() => closeServer(server));
  return server;
}
const closeServer = (s: Server) =>
  new Promise<void>((ok) => {
    if (!s.listening) return ok();
    s.close(() => ok());
    s.closeAllConnections();
  });
const portOf = (s: Server) => (s.address() as AddressInfo).port;

/** A port nothing listens on (bound, then freed). */
async function refusedPort(): Promise<number> {
  const s = await listener();
  const port = portOf(s);
  await closeServer(s);
  return port;
}

/**
 * A listener in a child process that accepts until block(): then its event loop stops (it never
 * accepts again) and its queue is held full, so the kernel drops every further SYN.
 */
async function switchableTarget(): Promise<{ port: number; block(): Promise<void> }> {
  const code = `const s = require('net').createServer((c) => c.on('error', () => {})).listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => process.stdout.write(s.address().port + '\\n'));
process.stdin.on('data', () => { process.stdout.write('blocked\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const held: Socket[] = [];
  cleanups.push(() => {
    for (const s of held) s.destroy();
    child.kill('SIGKILL');
  });
  const port = Number(String((await once(child.stdout, 'data'))[0]).trim());
  return {
    port,
    block: async () => {
      child.stdin.write('block\n');
      await once(child.stdout, 'data');
      // Fill the queue: connect until one does not complete.
      for (let i = 0; i < 8; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
        const connected = await Promise.race([once(s, 'connect').then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), 200))]);
        if (!connected) return;
      }
      throw new Error('the blackhole never filled');
    },
  };
}

async function blackhole(): Promise<{ port: number }> {
  const t = await switchableTarget();
  await t.block();
  return { port: t.port };
}

function options(targets: string[], extra: Partial<ProbeOptions> = {}): ProbeOptions {
  return { ...resolveProbeOptions({ targets, interval: String(INTERVAL / 1000), timeout: String(TIMEOUT / 1000), listen: '127.0.0.1:0' }, 9998), ...extra };
}

async function probe(targets: string[], log?: ProbeLog): Promise<{ p: RunningExitProbe; url: string }> {
  const p = await startExitProbe(options(targets), log === undefined ? {} : { log });
  cleanups.push(() => p.close());
  return { p, url: `http://127.0.0.1:${p.port}/` };
}

/** Poll the probe's URL every 20 ms until `want` holds; the time it took (ms). */
async function until(url: string, want: (r: { healthy: boolean; reason: string }) => boolean, limitMs = 10_000): Promise<{ ms: number; reason: string }> {
  const start = performance.now();
  for (;;) {
    const r = await fetchExitHealth('x', url, { timeoutMs: 1000 });
    if (want(r)) return { ms: performance.now() - start, reason: r.reason };
    if (performance.now() - start > limitMs) throw new Error(`not within ${limitMs} ms; last: ${r.reason}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

describe('connectOnce', () => {
  it('connects to a listener, is refused by a closed port and times out on a blackholed one', async () => {
    const up = await listener();
    expect(await connectOnce({ host: '127.0.0.1', port: portOf(up), label: 'up' }, 500)).toEqual({ target: 'up', ok: true, detail: 'connected' });
    expect(await connectOnce({ host: '127.0.0.1', port: await refusedPort(), label: 'closed' }, 500)).toEqual({ target: 'closed', ok: false, detail: 'refused' });
    const hole = await blackhole();
    const t0 = performance.now();
    expect(await connectOnce({ host: '127.0.0.1', port: hole.port, label: 'hole' }, 300)).toEqual({ target: 'hole', ok: false, detail: 'timed out' });
    // It waited for its timeout, no less (the kernel did not answer).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });
});

describe('the exit probe over HTTP', () => {
  it('answers 500 "probe did not run yet" before its first round ends, then 200 with an empty body when a target connects', async () => {
    const up = await listener();
    const hole = await blackhole();
    // The blackholed target holds the first round open for its timeout.
    const { url } = await probe([`127.0.0.1:${hole.port}`, `127.0.0.1:${portOf(up)}`]);
    expect(await fetchExitHealth('vpn-a', url, { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'probe did not run yet' });
    await until(url, (r) => r.healthy, 2000);
    const res = await fetch(url);
    expect([res.status, await res.text()]).toEqual([200, '']);
  });

  it('answers 500 naming each target when every one is refused', async () => {
    const a = await refusedPort();
    const b = await refusedPort();
    const { url } = await probe([`127.0.0.1:${a}`, `127.0.0.1:${b}`]);
    const { reason } = await until(url, (r) => r.reason !== 'probe did not run yet', 2000);
    expect(reason).toBe(`no target answered: 127.0.0.1:${a} refused, 127.0.0.1:${b} refused`);
    const res = await fetch(url);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe(`${reason}\n`);
  });

  it('answers 500 "timed out" for a blackholed target within one interval plus one timeout', async () => {
    const hole = await blackhole();
    const start = performance.now();
    const { url } = await probe([`127.0.0.1:${hole.port}`]);
    const { reason } = await until(url, (r) => r.reason !== 'probe did not run yet', 5000);
    expect(reason).toBe(`no target answered: 127.0.0.1:${hole.port} timed out`);
    // The first round starts at once and ends at its timeout; generous bound for a shared machine.
    expect(performance.now() - start).toBeLessThan(INTERVAL + TIMEOUT + 1000);
  });

  it('goes healthy → unhealthy → healthy as its target is refused and comes back, within an interval each way, logging each change once', async () => {
    const lines: Array<[string, string]> = [];
    const target = await listener();
    const port = portOf(target);
    const { url } = await probe([`127.0.0.1:${port}`], (level, msg) => lines.push([level, msg]));
    await until(url, (r) => r.healthy, 2000);

    // Refused: the next round (at most one interval away) sees it.
    await closeServer(target);
    const down = await until(url, (r) => !r.healthy);
    expect(down.reason).toBe(`no target answered: 127.0.0.1:${port} refused`);
    expect(down.ms).toBeLessThan(INTERVAL + 1000);
    // Several unhealthy rounds later, still one warning.
    await new Promise((ok) => setTimeout(ok, 3 * INTERVAL));

    await listener(port);
    const up = await until(url, (r) => r.healthy);
    expect(up.ms).toBeLessThan(INTERVAL + 1000);
    await new Promise((ok) => setTimeout(ok, 2 * INTERVAL));
    expect(lines).toEqual([
      ['info', 'exit probe started'],
      ['info', 'exit probe: a target answered; the tunnel carries traffic'],
      ['warn', `exit probe: no target answered: 127.0.0.1:${port} refused`],
      ['info', 'exit probe: a target answered; the tunnel carries traffic'],
    ]);
  });

  it('turns unhealthy within one interval plus one timeout when its target starts dropping SYNs (as into a dead tunnel)', async () => {
    const target = await switchableTarget();
    const { url } = await probe([`127.0.0.1:${target.port}`]);
    await until(url, (r) => r.healthy, 2000);
    await target.block();
    // From here on no SYN is answered (the last 200 ms of the fill were already one unanswered SYN).
    const lost = performance.now() - 200;
    const down = await until(url, (r) => !r.healthy);
    expect(down.reason).toBe(`no target answered: 127.0.0.1:${target.port} timed out`);
    expect(performance.now() - lost).toBeLessThan(INTERVAL + TIMEOUT + 1000);
  });

  it('answers 400 to anything but GET without reading the body, and closes that connection', async () => {
    const up = await listener();
    const { url } = await probe([`127.0.0.1:${portOf(up)}`]);
    await until(url, (r) => r.healthy, 2000);
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
      const res = await fetch(url, { method, ...(method === 'POST' || method === 'PUT' ? { body: 'x'.repeat(1000) } : {}) });
      expect(res.status).toBe(400);
      if (method !== 'HEAD') expect(await res.text()).toBe('method not supported for healthcheck\n');
    }
    // A body announced as 100 MB, of which only a few bytes come: the answer does not wait for it.
    const t0 = performance.now();
    const answer = await new Promise<{ status: number | undefined; connection: string | undefined }>((ok, fail) => {
      const req = request(url, { method: 'POST', headers: { 'content-length': String(100 * 1024 * 1024) } }, (res) => {
        res.resume();
        ok({ status: res.statusCode, connection: res.headers.connection });
        req.destroy();
      });
      req.on('error', fail);
      req.write('a few bytes');
    });
    expect(answer).toEqual({ status: 400, connection: 'close' });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it(`answers a poll whose headers take 1.5 s to come (a busy node) with 200, not 408; one that never finishes gets 408 after ${PROBE_REQUEST_TIMEOUT_MS / 1000} s`, async () => {
    const up = await listener();
    const { p, url } = await probe([`127.0.0.1:${portOf(up)}`]);
    await until(url, (r) => r.healthy, 2000);
    const slow = async (finishAfterMs: number | undefined) => {
      const s = connect(p.port, '127.0.0.1');
      cleanups.push(() => s.destroy());
      await once(s, 'connect');
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString('latin1')));
      const closed = once(s, 'close');
      const t0 = performance.now();
      s.write('GET / HTTP/1.1\r\nHost: probe\r\n');
      if (finishAfterMs !== undefined) {
        await new Promise((ok) => setTimeout(ok, finishAfterMs));
        s.end('\r\n');
      }
      await Promise.race([closed, new Promise((ok) => setTimeout(ok, PROBE_REQUEST_TIMEOUT_MS + 3000))]);
      return { status: got.split('\r\n')[0], ms: performance.now() - t0 };
    };
    const [late, never] = await Promise.all([slow(1500), slow(undefined)]);
    expect(late.status).toBe('HTTP/1.1 200 OK');
    expect(never.status).toBe('HTTP/1.1 408 Request Timeout');
    expect(never.ms).toBeGreaterThanOrEqual(PROBE_REQUEST_TIMEOUT_MS - 100);
    expect(never.ms, 'bounded: closed within a checking interval or so').toBeLessThan(PROBE_REQUEST_TIMEOUT_MS + 2500);
  }, 15_000);

  it('answers 500 "exit is stopping" during the drain after stop(), then closes', async () => {
    const up = await listener();
    const p = await startExitProbe(options([`127.0.0.1:${portOf(up)}`], { drainMs: 600 }));
    cleanups.push(() => p.close());
    const url = `http://127.0.0.1:${p.port}/`;
    await until(url, (r) => r.healthy, 2000);
    const stopped = p.stop();
    expect(await fetchExitHealth('x', url, { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'exit is stopping' });
    await stopped;
    expect(await fetchExitHealth('x', url, { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'unreachable (ECONNREFUSED)' });
  });
});

describe('podvpn exit-probe (the built CLI)', () => {
  const NO_CLUSTER = { ...process.env, KUBECONFIG: '/nonexistent', HOME: '/nonexistent' };
  delete (NO_CLUSTER as Record<string, string | undefined>).KUBERNETES_SERVICE_HOST;

  it.each([
    [['--target', 'one.one.one.one:443'], 'podvpn: --target "one.one.one.one:443": must be an IP address, not a name (DNS in the gateway pod goes through the tunnel too)'],
    [['--interval', '1', '--timeout', '2'], 'podvpn: --timeout (2 s) must be shorter than --interval (1 s)'],
    [['--targte', '1.1.1.1:443'], 'podvpn: exit-probe has no flag --targte; did you mean --target?'],
    [['--target'], 'podvpn: --target needs a value'],
  ])('refuses %j with exit code 2 and one clear line', (args, line) => {
    const r = spawnSync(process.execPath, [CLI, 'exit-probe', ...args], { encoding: 'utf8', timeout: 20_000, env: NO_CLUSTER });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
  });

  it('exits 1 with the reason when its port is taken', async () => {
    const taken = await listener();
    const r = spawnSync(process.execPath, [CLI, 'exit-probe', '--listen', `127.0.0.1:${portOf(taken)}`], { encoding: 'utf8', timeout: 20_000, env: NO_CLUSTER });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('EADDRINUSE');
  });

  it('runs with no cluster, config or root beyond a free port; on SIGTERM it answers "exit is stopping" for --drain, then exits 0', async () => {
    const up = await listener();
    const port = await refusedPort();
    const child: ChildProcess = spawn(process.execPath, [CLI, 'exit-probe', '--target', `127.0.0.1:${portOf(up)}`, '--listen', `127.0.0.1:${port}`, '--drain', '1'], { env: NO_CLUSTER, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d) => (out += String(d)));
    cleanups.push(() => child.kill('SIGKILL'));
    const url = `http://127.0.0.1:${port}/`;
    await until(url, (r) => r.healthy, 10_000);
    const exited = once(child, 'exit');
    const t0 = performance.now();
    child.kill('SIGTERM');
    await until(url, (r) => r.reason === 'exit is stopping', 2000);
    const [code] = await exited;
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900);
    const msgs = out.trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toEqual(['exit probe started', 'exit probe: a target answered; the tunnel carries traffic', 'exit probe: stopping; answering "exit is stopping" for 1000 ms', 'exit probe stopped']);
  });
});
