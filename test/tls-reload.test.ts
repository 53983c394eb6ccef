// Certificate reload: replace the files under a running server the way the kubelet swaps a mounted
// Secret (a new timestamped directory, then an atomic rename of the ..data symlink). New connections
// see the new certificate; no request fails during the swap.

import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCA, generateServingCert, type KeyPairPem } from '../src/tls/x509.js';
import { post, startServer, tempDir } from './helpers.js';

const SAMPLE = readFileSync(join(import.meta.dirname, '..', 'examples', 'review.json'), 'utf8');

function writeSecretVersion(dir: string, version: string, pair: KeyPairPem): void {
  const versionDir = join(dir, `..${version}`);
  mkdirSync(versionDir);
  writeFileSync(join(versionDir, 'tls.crt'), pair.certPem);
  writeFileSync(join(versionDir, 'tls.key'), pair.keyPem);
  const tmpLink = join(dir, '..data_tmp');
  symlinkSync(`..${version}`, tmpLink);
  renameSync(tmpLink, join(dir, '..data'));
}

function servedCertificate(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** Wait for a condition (an event we can observe), not for a fixed time. */
async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function metrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function postKeepAlive(agent: Agent, port: number): Promise<{ status: number; reused: boolean; cert: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(SAMPLE) } },
      (res) => {
        const cert = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, cert }));
      },
    );
    req.on('error', reject);
    req.end(SAMPLE);
  });
}

function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

const ca = await generateCA();
const first = await generateServingCert(ca, ['localhost']);
const second = await generateServingCert(ca, ['localhost']);

describe('serving certificate reload', () => {
  const dir = tempDir('podvpn-secret-');
  let server: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    writeSecretVersion(dir, '2026_11_22_first', first);
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
    server = await startServer({ tlsCert: join(dir, 'tls.crt'), tlsKey: join(dir, 'tls.key'), tlsReloadIntervalMs: 100 });
  });
  afterAll(async () => {
    await server?.shutdown();
  });

  it('serves the new certificate to new connections, and no request fails', async () => {
    expect(await servedCertificate(server.webhookPort, ca.certPem)).toBe(fingerprintOf(first.certPem));

    // A keep-alive connection opened before the swap keeps working after it: one agent, one socket,
    // reused for every request (the server's keep-alive timeout is 65 s).
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem, servername: 'localhost' });
    let stop = false;
    let swapped = false;
    const results: Array<{ status: number; reused: boolean; cert: string; afterSwap: boolean }> = [];
    const errors: unknown[] = [];
    const load = (async () => {
      while (!stop) {
        try {
          results.push({ ...(await postKeepAlive(agent, server.webhookPort)), afterSwap: swapped });
        } catch (err) {
          errors.push(err);
        }
      }
    })();
    await until(() => results.length + errors.length >= 3); // requests before the swap
    writeSecretVersion(dir, '2026_11_22_second', second);

    const deadline = Date.now() + 5000;
    let served = '';
    while (Date.now() < deadline) {
      served = await servedCertificate(server.webhookPort, ca.certPem);
      if (served === fingerprintOf(second.certPem)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    swapped = served === fingerprintOf(second.certPem);
    const seen = results.length + errors.length;
    await until(() => results.length + errors.length >= seen + 3); // and requests after it
    stop = true;
    await load;
    agent.destroy();

    expect(served).toBe(fingerprintOf(second.certPem));
    expect(errors).toEqual([]);
    expect(results.length).toBeGreaterThan(5);
    expect(results.every((r) => r.status === 200)).toBe(true);
    // The claim itself: requests after the swap went over the connection opened before it, which
    // still presents the first certificate, while new connections get the second.
    const kept = results.filter((r) => r.afterSwap && r.reused && r.cert === fingerprintOf(first.certPem));
    expect(kept.length).toBeGreaterThan(0);
    expect(results.filter((r) => !r.reused)).toHaveLength(1);
  });

  it('keeps serving the previous certificate when the new files are unusable', async () => {
    const errorsCounted = async (): Promise<number> =>
      Number(/podvpn_tls_reloads_total\{result="error"\} (\d+)/.exec(await metrics(server.adminPort))?.[1] ?? 0);
    const before = await errorsCounted();
    const other = await generateCA();
    // A key that does not match the certificate: the reload must refuse it.
    writeSecretVersion(dir, '2026_11_22_broken', { certPem: (await generateServingCert(ca, ['localhost'])).certPem, keyPem: other.keyPem });
    // The reloader read the broken pair and refused it (counted), rather than never having looked.
    await until(async () => (await errorsCounted()) > before);
    expect(await servedCertificate(server.webhookPort, ca.certPem)).toBe(fingerprintOf(second.certPem));
    expect((await post(server.webhookPort, ca.certPem, SAMPLE)).status).toBe(200);
  });
});
