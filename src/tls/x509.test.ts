// The X.509 module, checked against node:crypto's independent parser: ECDSA P-256 keys, the extensions
// a serving certificate needs, IP SANs, and an RSA CA from an older podvpn still signing.

import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { certFacts, generateCA, generateServingCert, issuedBy, keyMatches, normalizeIp, splitNames } from './x509.js';

const ca = await generateCA();

describe('x509', () => {
  it('makes an ECDSA P-256 CA and a serving certificate it signs, with DNS and IP SANs', async () => {
    const leaf = await generateServingCert(ca, ['svc.example', '127.0.0.1', '::1']);
    const key = createPrivateKey(leaf.keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const parsed = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(parsed.ca).toBe(false);
    expect(parsed.checkIssued(caCert) && parsed.verify(caCert.publicKey)).toBe(true);
    expect(parsed.checkHost('svc.example')).toBe('svc.example');
    expect(parsed.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(parsed.checkIP('::1')).toBe('::1');
    expect(parsed.checkIP('10.0.0.1')).toBeUndefined();
    expect(parsed.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    const facts = certFacts(leaf.certPem);
    expect(facts).toMatchObject({ isCA: false, dnsNames: ['svc.example'], ips: ['127.0.0.1', '::1'], issuer: certFacts(ca.certPem).subject });
    expect(certFacts(ca.certPem).isCA).toBe(true);
  });

  it('sets the validity from the clock and days given, backdated five minutes', async () => {
    const now = new Date('2030-06-01T00:00:00Z');
    const leaf = certFacts((await generateServingCert(ca, ['a'], { now, days: 10 })).certPem);
    expect(leaf.notBefore.toISOString()).toBe('2030-05-31T23:55:00.000Z');
    expect(leaf.notAfter.toISOString()).toBe('2030-06-11T00:00:00.000Z');
  });

  it('tells matching keys and issuers from foreign ones', async () => {
    const other = await generateCA();
    const leaf = await generateServingCert(ca, ['a']);
    expect(keyMatches(leaf.certPem, leaf.keyPem)).toBe(true);
    expect(keyMatches(leaf.certPem, other.keyPem)).toBe(false);
    expect(keyMatches('garbage', leaf.keyPem)).toBe(false);
    expect(await issuedBy(leaf.certPem, ca.certPem)).toBe(true);
    expect(await issuedBy(leaf.certPem, other.certPem)).toBe(false);
    // Same subject name, different key: the signature check is what refuses it.
    expect(certFacts(other.certPem).subject).toBe(certFacts(ca.certPem).subject);
  });

  it('still signs with an RSA CA key in PKCS#1 PEM (as earlier podvpn versions wrote)', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }); // size is irrelevant here; 1024 keeps it fast
    const rsaPem = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    expect(rsaPem).toMatch(/BEGIN RSA PRIVATE KEY/);
    // A self-signed RSA CA needs a certificate: reuse the EC CA's shape by signing a leaf with the RSA key
    // under the EC CA's name; what matters is that the signature verifies with the RSA public key.
    const leaf = await generateServingCert({ certPem: ca.certPem, keyPem: rsaPem }, ['a']);
    expect(new X509Certificate(leaf.certPem).verify(rsa.publicKey)).toBe(true);
  });

  it('splits names into DNS names and IPs, one spelling per address', () => {
    expect(splitNames(['a', '10.0.0.1', '[::1]', '0:0:0:0:0:0:0:1', 'fd00::0001'])).toEqual({
      dnsNames: ['a'],
      ips: ['10.0.0.1', '::1', '::1', 'fd00::1'],
    });
    expect(normalizeIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
  });

  it('refuses to issue for no names', async () => {
    await expect(generateServingCert(ca, [])).rejects.toThrow(/at least one/);
  });
});
