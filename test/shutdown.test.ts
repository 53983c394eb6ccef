// Shutdown of the real process (SIGTERM), with real sockets: a rollout must not cost a pod creation
// (failurePolicy Fail turns a reset review into a failed create, which the API server does not retry)
// and must end before the pod's 30 s grace period turns into a SIGKILL.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const SAMPLE = readFileSync(join(ROOT, 'examples', 'review.json'));
const GRACE_PERIOD_MS = 30_000; // manifests/base/deployment.yaml terminationGracePeriodSeconds

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
});

function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

async function startProcess(shutdownDelay: number) {
  const certs = tempDir();
  const webhookPort = 20_000 + Math.floor(Math.random() * 20_000);
  const adminPort = webhookPort + 1;
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--listen', `127.0.0.1:${webhookPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--certs-dir', certs, '--shutdown-delay', String(shutdownDelay)],
    { env: { ...process.env, KUBECONFIG: '/nonexistent', HOME: certs }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child = proc;
  const logs: string[] = [];
  proc.stdout.on('data', (c: Buffer) => logs.push(c.toString()));
  proc.stderr.on('data', (c: Buffer) => logs.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if ((await httpStatus(adminPort, '/readyz').catch(() => 0)) === 200) break;
    if (Date.now() > deadline) throw new Error(`not ready: ${logs.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, webhookPort, adminPort, ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), exited, logs };
}

describe('podvpn serve shutdown (SIGTERM)', () => {
  it('exits well within the grace period although a client holds a connection mid-request', async () => {
    const { proc, webhookPort, ca, exited } = await startProcess(1);
    // A client that sent headers and part of its body, and keeps dribbling so no idle timer fires.
    const stuck = connect({ host: '127.0.0.1', port: webhookPort, ca, servername: 'localhost' });
    stuck.on('error', () => undefined);
    await new Promise((r) => stuck.once('secureConnect', r));
    stuck.write('POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
    const dribble = setInterval(() => stuck.write(' '), 200);
    try {
      const started = Date.now();
      proc.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), GRACE_PERIOD_MS))]);
      const ms = Date.now() - started;
      if (process.env.PRINT_FIGURES) console.log(`SIGTERM to exit with a stuck connection: ${ms} ms`);
      expect(code).toBe(0);
      // 1 s drain + 5 s for requests in flight, with slack; the grace period is 30 s.
      expect(ms).toBeLessThan(GRACE_PERIOD_MS / 2);
    } finally {
      clearInterval(dribble);
      stuck.destroy();
    }
  }, 60_000);

  it('loses no request on busy keep-alive connections, and says Connection: close while draining', async () => {
    const { proc, webhookPort, ca, exited } = await startProcess(2);
    const agent = new Agent({ keepAlive: true, maxSockets: 10, ca, servername: 'localhost' });
    const ok: number[] = [];
    const lost: string[] = [];
    let closeHeaders = 0;
    let refused = 0;
    let stopped = false;
    const send = () =>
      new Promise<void>((resolve) => {
        const req = request(
          { host: '127.0.0.1', port: webhookPort, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': SAMPLE.length } },
          (res) => {
            if (res.headers.connection === 'close') closeHeaders += 1;
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) ok.push(Date.now());
              else lost.push(`status ${res.statusCode}`);
              resolve();
            });
          },
        );
        let established = false;
        req.on('socket', (socket: TLSSocket) => {
          if (req.reusedSocket) established = true;
          else socket.once('secureConnect', () => (established = true));
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          // A connection refused, or reset before its TLS handshake finished (the listener closed with
          // it still in the accept queue), never carried the request: in a cluster the endpoint is
          // gone by then and the API server dials another. A request lost on an established
          // connection is what must not happen.
          if (err.code === 'ECONNREFUSED' || !established) {
            refused += 1;
            stopped = true;
          } else lost.push(`${err.code ?? err.message} on an established connection`);
          resolve();
        });
        req.end(SAMPLE);
      });
    const loops = Array.from({ length: 10 }, async () => {
      while (!stopped) await send();
    });
    await new Promise((r) => setTimeout(r, 500));
    const before = ok.length;
    proc.kill('SIGTERM');
    await Promise.all(loops);
    agent.destroy();
    expect(await exited).toBe(0);
    if (process.env.PRINT_FIGURES) console.log(`served ${ok.length} (${ok.length - before} after SIGTERM), lost ${lost.length}, Connection: close ${closeHeaders}`);
    expect(lost).toEqual([]);
    expect(before).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(before); // it kept serving through the drain delay
    expect(closeHeaders).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  }, 60_000);
});
