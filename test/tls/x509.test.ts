// The X.509 module, checked against node:crypto's independent parser: ECDSA P-256 keys, the extensions
// a serving certificate needs, IP SANs, and an RSA CA from an older podvpn still signing. Integration,
// not unit: it generates real keys through WebCrypto and loads @peculiar/x509 (about a second of start-up).

import 'reflect-metadata'; // before @peculiar/x509, which this test uses directly to build an old-style RSA CA
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { certFacts, generateCA, generateServingCert, issuedBy, keyMatches, normalizeIp, splitNames } from '../../src/tls/x509.js';

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

  it('renews under an RSA CA with a PKCS#1 key, as earlier podvpn versions wrote them', async () => {
    // An RSA CA made the old way (RSA key, SHA-256 signature), its key stored as PKCS#1 PEM (generated here, never committed).
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 1024 } as const; // size is irrelevant here
    const keys = await webcrypto.subtle.generateKey(rsa, true, ['sign', 'verify']);
    const oldCa = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=podvpn-ca, O=podvpn',
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: rsa,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs1' }).toString();
    expect(keyPem).toMatch(/BEGIN RSA PRIVATE\sKEY/); // PKCS#1, not PKCS#8
    const caPem = oldCa.toString('pem');
    const leaf = await generateServingCert({ certPem: caPem, keyPem }, ['a']);
    const parsed = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(caPem);
    expect(parsed.checkIssued(caCert) && parsed.verify(caCert.publicKey)).toBe(true);
    expect(await issuedBy(leaf.certPem, caPem)).toBe(true);
    expect(createPrivateKey(leaf.keyPem).asymmetricKeyType).toBe('ec'); // the new serving key is EC
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
