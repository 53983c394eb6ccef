import { describe, expect, it } from 'vitest';
import { caBundlePatch } from './ca-bundle.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const B64 = Buffer.from(PEM).toString('base64');

describe('caBundle patch', () => {
  it('adds the bundle to each entry lacking it, guarded by a test of the entry name', () => {
    const ops = caBundlePatch(
      [
        { name: 'a.podvpn.io', clientConfig: { caBundle: B64 } },
        { name: 'b.podvpn.io', clientConfig: {} },
        { name: 'c.podvpn.io', clientConfig: { caBundle: 'c3RhbGU=' } },
      ],
      PEM,
    );
    expect(ops).toEqual([
      { op: 'test', path: '/webhooks/1/name', value: 'b.podvpn.io' },
      { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: B64 },
      { op: 'test', path: '/webhooks/2/name', value: 'c.podvpn.io' },
      { op: 'add', path: '/webhooks/2/clientConfig/caBundle', value: B64 },
    ]);
  });

  it('is empty when every entry is current', () => {
    expect(caBundlePatch([{ name: 'a', clientConfig: { caBundle: B64 } }], PEM)).toEqual([]);
  });
});
