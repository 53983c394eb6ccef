// One pod or one client must not stall a replica: bounded work on user lists, timeouts and a
// connection cap on both servers, a budget for bodies in flight, a 413 the client can read, and no
// user string echoed at length. Real TLS sockets against the real server; bounds are generous (the
// figures are in bench/, not here).

import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/serve.js';
import { post, reviewOf, startServer, tempDir } from './helpers.js';

const SAMPLE = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'examples', 'review.json'), 'utf8'));
const pod = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = { generateName: 'web-' }) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata,
  spec: { containers: [{ name: 'app', image: 'busybox:1.36' }], ...spec },
});

let server: RunningServer;
let ca: string;
const logs: string[] = [];

beforeAll(async () => {
  const certsDir = tempDir();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  server = await startServer(
    {
      certsDir,
      limits: {
        webhook: {
          requestTimeoutMs: 1500,
          headersTimeoutMs: 1000,
          checkIntervalMs: 200,
          handshakeTimeoutMs: 1000,
          maxConnections: 40,
          maxBufferedBodyBytes: 8 * 1024 * 1024,
        },
        admin: { requestTimeoutMs: 1000, headersTimeoutMs: 1000, checkIntervalMs: 200, maxConnections: 5 },
      },
    },
    pino({ level: 'info' }, sink),
  );
  ca = readFileSync(join(certsDir, 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await server?.shutdown();
});

function healthz(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - started));
    }).on('error', reject);
  });
}

function tlsSocket(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Milliseconds until the server closes the socket, or Infinity if it is still open after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Number.POSITIVE_INFINITY), ms);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
    socket.resume();
  });
}

describe('user lists cost linear work', () => {
  it('answers a pod with 250k dnsConfig searches promptly, with a denial, and /healthz stays responsive meanwhile', async () => {
    const searches = Array.from({ length: 250_000 }, (_, i) => `s${i}`);
    const review = reviewOf(pod({ dnsConfig: { searches } }));
    let polling = true;
    const probes: number[] = [];
    const poller = (async () => {
      while (polling) {
        probes.push(await healthz(server.adminPort));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const started = performance.now();
    const reply = await post(server.webhookPort, ca, JSON.stringify(review));
    const ms = performance.now() - started;
    polling = false;
    await poller;
    expect(reply.status).toBe(200);
    const response = reply.json().response;
    expect(response.allowed).toBe(false);
    expect(response.status.message).toMatch(/250000 entries.*32 search paths/);
    // Today's figures are in the report; the API server gives up after 5 s, so that is the bound.
    expect(ms).toBeLessThan(5000);
    expect(probes.length).toBeGreaterThan(0);
    expect(Math.max(...probes)).toBeLessThan(2000);
  }, 30_000);

  it('injects a pod whose 250k searches are one name repeated, copying it once', async () => {
    const review = reviewOf(pod({ dnsConfig: { searches: Array.from({ length: 250_000 }, () => 'corp.example'), nameservers: Array.from({ length: 50_000 }, () => '8.8.8.8') } }));
    const reply = await post(server.webhookPort, ca, JSON.stringify(review));
    const response = reply.json().response;
    expect(response.allowed).toBe(true);
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Array<{ path: string; value: any }>;
    expect(ops.find((o) => o.path === '/spec/dnsConfig')!.value.searches).toEqual([
      'downloads.svc.cluster.local',
      'svc.cluster.local',
      'cluster.local',
      'corp.example',
    ]);
    expect(response.warnings.join(' ').length).toBeLessThan(200);
  }, 30_000);
});

describe('other user lists', () => {
  it('answers a pod with 30k init containers, 30k volumes and 30k env vars promptly, with one warning per mesh', async () => {
    const env = Array.from({ length: 30_000 }, (_, i) => ({ name: `E${i}`, value: 'v' }));
    const review = reviewOf(
      pod({
        containers: [{ name: 'app', image: 'busybox:1.36', env }],
        initContainers: Array.from({ length: 30_000 }, () => ({ name: 'istio-init', image: 'istio/proxyv2' })),
        volumes: Array.from({ length: 30_000 }, (_, i) => ({ name: `v${i}`, emptyDir: {} })),
      }),
    );
    const started = performance.now();
    const reply = await post(server.webhookPort, ca, JSON.stringify(review));
    expect(performance.now() - started).toBeLessThan(5000);
    const response = reply.json().response;
    expect(response.allowed).toBe(true);
    expect(response.warnings.filter((w: string) => w.includes('istio-init'))).toHaveLength(1);
    expect(reply.body.length).toBeLessThan(64 * 1024);
  }, 30_000);
});

describe('slow and numerous clients', () => {
  it('closes a connection that sends headers and part of a body, then stalls (slow loris)', async () => {
    const socket = await tlsSocket(server.webhookPort);
    socket.write('POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"apiVersion":');
    expect(await closedWithin(socket, 8000)).toBeLessThan(8000);
  }, 15_000);

  it('closes a connection that never finishes its headers', async () => {
    const socket = await tlsSocket(server.webhookPort);
    socket.write('POST /mutate HTTP/1.1\r\nHost: podvpn\r\n');
    expect(await closedWithin(socket, 8000)).toBeLessThan(8000);
  }, 15_000);

  it('closes a TCP connection that never starts its TLS handshake', async () => {
    const socket = netConnect({ host: '127.0.0.1', port: server.webhookPort });
    expect(await closedWithin(socket, 8000)).toBeLessThan(8000);
  }, 15_000);

  it('closes a stalled request on the admin port too', async () => {
    const socket = netConnect({ host: '127.0.0.1', port: server.adminPort });
    socket.write('GET /healthz HTTP/1.1\r\nHost: podvpn\r\n');
    expect(await closedWithin(socket, 8000)).toBeLessThan(8000);
  }, 15_000);

  it('holds the connection cap on the admin port, and serves again once connections close', async () => {
    // The admin port's cap is 5 here: open 8 idle connections, only 5 stay.
    const sockets = await Promise.all(
      Array.from({ length: 8 }, () => new Promise<Socket>((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port: server.adminPort }, () => resolve(s));
        s.on('error', () => undefined);
      })),
    );
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 500)));
    expect(closed.filter((ms) => ms === Number.POSITIVE_INFINITY)).toHaveLength(5);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(await healthz(server.adminPort)).toBeLessThan(2000);
  }, 15_000);

  it('holds the connection cap on the webhook port', async () => {
    // The cap is 40 here; the other tests' sockets are closed by now.
    const sockets = await Promise.all(
      Array.from({ length: 50 }, () => new Promise<Socket>((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port: server.webhookPort }, () => resolve(s));
        s.on('error', () => undefined);
      })),
    );
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 500)));
    expect(closed.filter((ms) => ms === Number.POSITIVE_INFINITY)).toHaveLength(40);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await post(server.webhookPort, ca, JSON.stringify(SAMPLE))).status).toBe(200);
  }, 15_000);
});

describe('bodies in flight', () => {
  it('answers 503 beyond the budget while another client holds most of it, and serves again after', async () => {
    // The budget is 8 MiB here: one client sends nearly all of a 6 MiB body and stalls.
    const holder = await tlsSocket(server.webhookPort);
    holder.on('error', () => undefined);
    holder.write(`POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\nContent-Length: ${6 * 1024 * 1024 - 100}\r\n\r\n`);
    await new Promise<void>((resolve) => holder.write(Buffer.alloc(6 * 1024 * 1024 - 1000, 0x20), () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
    const big = JSON.stringify(reviewOf(pod({}, { generateName: 'web-', annotations: { note: 'n'.repeat(3 * 1024 * 1024) } })));
    const refused = await post(server.webhookPort, ca, big);
    expect(refused.status).toBe(503);
    expect(refused.json().code).toBe('PODVPN_ERR_BUSY');
    holder.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const served = await post(server.webhookPort, ca, big);
    expect(served.status).toBe(200);
    expect(served.json().response.allowed).toBe(true);
  }, 30_000);
});

describe('bodies in flight, many clients', () => {
  it('survives 30 clients that each send 320 KiB and stall, past the 8 MiB budget, and serves after', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 30 }, () => tlsSocket(server.webhookPort)),
    );
    for (const s of sockets) {
      s.on('error', () => undefined);
      s.resume();
      s.write(`POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n${'{"a":"'.padEnd(320 * 1024, 'x')}`);
    }
    // Past the request timeout (1.5 s here): the server closes them while their bodies are counted.
    // Await each close (was: a fixed 3 s sleep, twice the timeout); the bound is generous.
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 15_000)));
    expect(closed.filter((ms) => ms === Number.POSITIVE_INFINITY)).toHaveLength(0);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect((await post(server.webhookPort, ca, JSON.stringify(SAMPLE))).status).toBe(200);
    expect(await healthz(server.adminPort)).toBeLessThan(2000);
  }, 30_000);
});

describe('oversized bodies', () => {
  /** Write the whole body before reading anything, as a client that writes first and reads after does. */
  function writeThenRead(body: Buffer, headers: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.webhookPort, ca, servername: 'localhost' }, () => {
        socket.pause();
        socket.write(`POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\n${headers}\r\n`);
        socket.write(body, (err) => {
          if (err) return reject(err);
          let data = '';
          socket.on('data', (c: Buffer) => (data += c.toString('utf8')));
          socket.on('end', () => resolve(data));
          socket.resume();
        });
      });
      socket.on('error', reject);
      socket.setTimeout(15_000, () => socket.destroy(new Error('no reply')));
    });
  }

  it('get a 413 the client reads after it has written the whole body (content-length)', async () => {
    const body = Buffer.alloc(7 * 1024 * 1024, 0x20);
    const reply = await writeThenRead(body, `Content-Length: ${body.length}\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply).toMatch(/PODVPN_ERR_BODY_TOO_LARGE/);
    expect(reply.toLowerCase()).toContain('connection: close');
  }, 30_000);

  it('and when the body is chunked', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const parts: Buffer[] = [];
    for (let i = 0; i < 7; i++) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
    parts.push(Buffer.from('0\r\n\r\n'));
    const reply = await writeThenRead(Buffer.concat(parts), 'Transfer-Encoding: chunked\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
  }, 30_000);
});

describe('user strings are not echoed at length', () => {
  it('logs a 5 MiB generateName clipped', async () => {
    const review = reviewOf(pod({}, { generateName: `${'w'.repeat(5 * 1024 * 1024)}-` }));
    const reply = await post(server.webhookPort, ca, JSON.stringify(review));
    expect(reply.json().response.allowed).toBe(true);
    const line = logs.find((l) => l.includes(review.request.uid) && l.includes('"msg":"review"'));
    expect(line).toBeDefined();
    expect(line!.length).toBeLessThan(2048);
    expect(JSON.parse(line!).pod).toMatch(/^w{256}\.\.\.\(\d+ more characters\)$/);
  }, 30_000);

  it('denies a 4 MiB gateway annotation with a short message', async () => {
    const review = reviewOf(pod({}, { generateName: 'web-', annotations: { 'podvpn.io/gateway': 'g'.repeat(4 * 1024 * 1024) } }));
    const reply = await post(server.webhookPort, ca, JSON.stringify(review));
    expect(reply.body.length).toBeLessThan(4096);
    const response = reply.json().response;
    expect(response.allowed).toBe(false);
    expect(response.status.message).toMatch(/podvpn\.io\/gateway="g{256}\.\.\.\(\d+ more characters\)" names no configured gateway/);
    const line = logs.find((l) => l.includes(review.request.uid));
    expect(line!.length).toBeLessThan(4096);
  }, 30_000);

  it('answers a 4 MiB AdmissionReview kind with a short 400', async () => {
    const reply = await post(server.webhookPort, ca, JSON.stringify({ ...SAMPLE, kind: 'k'.repeat(4 * 1024 * 1024) }));
    expect(reply.status).toBe(400);
    expect(reply.body.length).toBeLessThan(2048);
  }, 30_000);
});
