// The CA and serving certificate kept under a directory (`podvpn certs`, and `podvpn serve` outside a
// cluster): reused only while they cover every requested name and address and are not due; otherwise
// re-issued under the same CA. Clients that dial an IP (127.0.0.1, ::1) verify the certificate.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureLocalCerts } from '../../src/tls/local.js';
import { webhookDnsNames } from '../../src/tls/names.js';
import { startServer, tempDir } from '../helpers.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const certs = (...args: string[]) => spawnSync(process.execPath, [CLI, 'certs', ...args], { encoding: 'utf8', timeout: 20_000 });
const read = (dir: string, file: string): string => readFileSync(join(dir, file), 'utf8');

function opensslVerify(dir: string, check: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), '-purpose', 'sslserver', ...check, join(dir, 'tls.crt')], { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

/** Complete a TLS handshake to host:port, verifying the certificate against `ca` for that host. */
function handshake(host: string, port: number, ca: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, ca }, () => {
      socket.end();
      resolve();
    });
    socket.on('error', reject);
  });
}

describe('podvpn certs keeps only a certificate that covers what was asked', () => {
  it('re-issues under the same CA for a new --dns-name, says why, and keeps it when asked again', () => {
    const dir = tempDir();
    const first = certs('--out', dir, '--dns-name', 'a.example');
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^wrote CA/);
    const ca = read(dir, 'ca.crt');

    const second = certs('--out', dir, '--dns-name', 'b.example', '--dns-name', '192.0.2.7');
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).not.toMatch(/^kept existing CA .* and serving/);
    expect(second.stdout).toMatch(/^kept existing CA .*; wrote a new serving certificate .* for b\.example, 192\.0\.2\.7, because the serving certificate lacks b\.example, 192\.0\.2\.7/);
    expect(read(dir, 'ca.crt')).toBe(ca);
    expect(opensslVerify(dir, ['-verify_hostname', 'b.example'])).toMatchObject({ ok: true });
    expect(opensslVerify(dir, ['-verify_ip', '192.0.2.7'])).toMatchObject({ ok: true });
    // Negative control: the name it was not asked for is refused.
    expect(opensslVerify(dir, ['-verify_hostname', 'c.example']).ok).toBe(false);

    const cert = read(dir, 'tls.crt');
    const third = certs('--out', dir, '--dns-name', 'b.example', '--dns-name', '192.0.2.7');
    expect(third.stdout).toMatch(/^kept existing CA .* and serving certificate/);
    expect(read(dir, 'tls.crt')).toBe(cert);
  });
});

describe('serve with a generated certificate', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  afterEach(async () => {
    await server?.shutdown();
    server = undefined;
  });

  it('re-issues a certificate that lacks localhost and loopback (`podvpn certs` by default), keeping its CA', async () => {
    const dir = tempDir();
    await ensureLocalCerts(dir, webhookDnsNames()); // what `podvpn certs` writes by default: the Service names only
    const ca = read(dir, 'ca.crt');
    server = await startServer({ certsDir: dir });
    expect(read(dir, 'ca.crt')).toBe(ca);
    await handshake('localhost', server.webhookPort, ca);
    await handshake('127.0.0.1', server.webhookPort, ca);
  });

  it('is verified by a client that dials 127.0.0.1 or ::1 by address', async () => {
    server = await startServer({ listen: '[::]:0' });
    const ca = read(server.certsDir, 'ca.crt');
    await handshake('127.0.0.1', server.webhookPort, ca);
    await handshake('::1', server.webhookPort, ca);
  });

  it('negative control: a certificate without IP SANs fails verification by address', async () => {
    const dir = tempDir();
    await ensureLocalCerts(dir, ['localhost']);
    server = await startServer({ tlsCert: join(dir, 'tls.crt'), tlsKey: join(dir, 'tls.key') });
    const ca = read(dir, 'ca.crt');
    await handshake('localhost', server.webhookPort, ca);
    await expect(handshake('127.0.0.1', server.webhookPort, ca)).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});

describe('ensureLocalCerts over time', () => {
  const DAY = 24 * 60 * 60 * 1000;
  const t0 = new Date('2030-01-01T00:00:00Z');
  const at = (days: number) => new Date(t0.getTime() + days * DAY);

  it('keeps the pair until 2/3 of its life, then renews it under the same CA; replaces an unusable CA', async () => {
    const dir = tempDir();
    expect((await ensureLocalCerts(dir, ['a'], { now: t0 })).outcome).toBe('created');
    const ca = read(dir, 'ca.crt');
    expect((await ensureLocalCerts(dir, ['a'], { now: at(240) })).outcome).toBe('kept');
    const renewed = await ensureLocalCerts(dir, ['a'], { now: at(250) });
    expect(renewed).toMatchObject({ outcome: 'renewed', why: expect.stringMatching(/serving certificate expires/) });
    expect(read(dir, 'ca.crt')).toBe(ca);
    // A CA key that does not match its certificate: nothing is reused.
    const other = tempDir();
    await ensureLocalCerts(other, ['a'], { now: t0 });
    writeFileSync(join(dir, 'ca.key'), read(other, 'ca.key'));
    const replaced = await ensureLocalCerts(dir, ['a'], { now: at(251) });
    expect(replaced.outcome).toBe('replaced');
    expect(read(dir, 'ca.crt')).not.toBe(ca);
  });
});
