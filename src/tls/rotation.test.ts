// The renewal rule as a table over facts and a clock: no keys, no API, no sleeps.

import { describe, expect, it } from 'vitest';
import { type Observed, assess, missingNames, renewAt, trustedCAs } from './rotation.js';
import type { CertFacts } from './x509.js';

const DAY = 24 * 60 * 60 * 1000;
const T0 = new Date('2026-01-01T00:00:00Z');
const at = (days: number): Date => new Date(T0.getTime() + days * DAY);

function cert(over: Partial<CertFacts> = {}): CertFacts {
  return { notBefore: T0, notAfter: at(90), isCA: false, dnsNames: ['a.example'], ips: ['127.0.0.1'], subject: 'CN=a', issuer: 'CN=ca', ...over };
}
const ca = cert({ notAfter: at(3650), isCA: true, dnsNames: [], ips: [], subject: 'CN=ca' });
const want = { dnsNames: ['a.example'], ips: ['127.0.0.1'] };
const observed = (over: Partial<Observed> = {}): Observed => ({ ca, leaf: cert(), leafIssuedByCa: true, ...over });

describe('rotation policy', () => {
  it('renews at two thirds of the life by default, or at the fraction given', () => {
    expect(renewAt(cert()).getTime()).toBe(at(60).getTime());
    expect(renewAt(cert(), 0.5).getTime()).toBe(at(45).getTime());
  });

  it.each([
    ['keeps a fresh certificate that covers every name', observed(), 10, 'keep'],
    ['renews the serving certificate at 2/3 of its life', observed(), 60, 'renew-serving'],
    ['keeps it a moment before that', observed(), 59.99, 'keep'],
    ['renews one the CA did not sign', observed({ leafIssuedByCa: false }), 1, 'renew-serving'],
    ['renews one lacking a DNS name', observed({ leaf: cert({ dnsNames: ['b.example'] }) }), 1, 'renew-serving'],
    ['renews one lacking an IP address', observed({ leaf: cert({ ips: [] }) }), 1, 'renew-serving'],
    ['renews the CA at 2/3 of its life (before the leaf is due)', observed({ leaf: cert({ notAfter: at(5000) }) }), 2434, 'renew-ca'],
    ['replaces a "CA" that is not a CA', observed({ ca: { ...ca, isCA: false } }), 1, 'replace'],
  ] as const)('%s', (_title, obs, day, action) => {
    expect(assess(obs, want, at(day)).action).toBe(action);
  });

  it('replaces when nothing usable is stored', () => {
    expect(assess(undefined, want, T0)).toEqual({ action: 'replace', why: 'no usable CA and certificate' });
  });

  it('says which names are missing, and extra names do no harm', () => {
    expect(missingNames({ dnsNames: ['a.example', 'extra'], ips: [] }, want)).toEqual(['127.0.0.1']);
    expect(assess(observed(), want, at(1))).toEqual({ action: 'keep' });
    expect(assess(observed({ leaf: cert({ dnsNames: [] }) }), want, at(1))).toEqual({ action: 'renew-serving', why: 'the serving certificate lacks a.example' });
  });

  it('trusts the current CA first, then older ones until they expire, each once; unreadable ones dropped', () => {
    const cur = { pem: 'new', facts: { notAfter: at(3650) } };
    const old = { pem: 'old', facts: { notAfter: at(30) } };
    const junk = { pem: 'junk', facts: undefined };
    expect(trustedCAs(cur, [old, cur, junk, old], at(1)).map((c) => c.pem)).toEqual(['new', 'old']);
    expect(trustedCAs(cur, [old], at(30)).map((c) => c.pem)).toEqual(['new']);
  });
});
