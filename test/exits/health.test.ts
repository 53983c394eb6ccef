// Exit health at the edge: the fetcher and the poller against a local server that answers as gluetun
// v3.41.1's health handler does (internal/healthcheck/handler.go: 200 with no body when healthy;
// http.Error's "text\n" with 500 when not; 400 to anything but GET).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import { fetchExitHealth, startExitHealthPoller } from '../../src/exits/health.js';

/** A stand-in for gluetun's health server: its handler's answers, switchable. */
function gluetunHealth(): { server: Server; url: () => string; set(err: string | undefined): void } {
  let healthErr: string | undefined = 'healthcheck did not run yet';
  const server = createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('method not supported for healthcheck\n');
      return;
    }
    if (healthErr !== undefined) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(`${healthErr}\n`);
      return;
    }
    res.writeHead(200).end();
  });
  return {
    server,
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    set: (err) => {
      healthErr = err;
    },
  };
}

describe('fetchExitHealth and the poller (edge)', () => {
  const a = gluetunHealth();
  const b = gluetunHealth();
  const silent = createServer(() => {
    /* never answers */
  });
  beforeAll(async () => {
    for (const s of [a.server, b.server, silent]) await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  });
  afterAll(async () => {
    silent.closeAllConnections();
    for (const s of [a.server, b.server, silent]) await new Promise((ok) => s.close(ok));
  });

  it('reads gluetun before its first check (500, not run yet), then healthy, then a failed check', async () => {
    a.set('healthcheck did not run yet');
    expect(await fetchExitHealth('vpn-a', a.url(), { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'healthcheck did not run yet' });
    a.set(undefined);
    expect(await fetchExitHealth('vpn-a', a.url(), { timeoutMs: 1000 })).toMatchObject({ healthy: true, reason: 'ok' });
    a.set('small periodic check: all check tries failed');
    expect(await fetchExitHealth('vpn-a', a.url(), { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'small periodic check: all check tries failed' });
  });

  it('counts a refused connection, a silent server (timeout) and an unknown name as unhealthy, without throwing', async () => {
    const port = (silent.address() as AddressInfo).port;
    // A port nothing listens on (fetch itself refuses "bad ports" such as 1, so take a freed one).
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const free = (closed.address() as AddressInfo).port;
    await new Promise((ok) => closed.close(ok));
    expect(await fetchExitHealth('vpn-x', `http://127.0.0.1:${free}/`, { timeoutMs: 1000 })).toMatchObject({ healthy: false, reason: 'unreachable (ECONNREFUSED)' });
    const started = Date.now();
    expect(await fetchExitHealth('vpn-x', `http://127.0.0.1:${port}/`, { timeoutMs: 200 })).toMatchObject({ healthy: false, reason: 'unreachable (timed out)' });
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await fetchExitHealth('vpn-x', 'http://podvpn-gateway-gone.invalid:9999/', { timeoutMs: 2000 })).healthy).toBe(false);
  });

  it("polls every exit of a group and answers which are healthy for the webhook's admission", async () => {
    a.set(undefined);
    b.set('healthcheck did not run yet');
    const config = parseConfig({
      gateways: { vpn: { exits: [{ name: 'vpn-a', vxlanId: 101, healthURL: a.url() }, { name: 'vpn-b', vxlanId: 102, healthURL: b.url() }] } },
      defaultGateway: 'vpn',
    });
    const changes: string[] = [];
    const poller = startExitHealthPoller(config, { intervalMs: 60_000, timeoutMs: 1000, onReading: (r, prev) => prev?.healthy !== r.healthy && changes.push(`${r.exit}:${r.healthy}`) });
    try {
      await poller.poll();
      expect(poller.healthy('vpn')).toEqual(new Set(['vpn-a']));
      b.set(undefined);
      await poller.poll();
      expect(poller.healthy('vpn')).toEqual(new Set(['vpn-a', 'vpn-b']));
      expect(poller.healthy('default')).toBeUndefined();
      expect(changes.sort()).toEqual(['vpn-a:true', 'vpn-b:false', 'vpn-b:true']);
    } finally {
      poller.stop();
    }
  });
});
