import jsonpatch from 'fast-json-patch';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME } from '../constants.js';
import { clientsFirstPatch } from './reorder.js';
import type { Pod } from './types.js';

const podWith = (names: string[]): Pod => ({ spec: { containers: [{ name: 'app' }], initContainers: names.map((name) => ({ name })) } });
const namesAfter = (pod: Pod) => {
  const out = jsonpatch.applyPatch(structuredClone(pod), clientsFirstPatch(pod) as jsonpatch.Operation[], true, false).newDocument;
  return (out.spec?.initContainers ?? []).map((c) => c.name);
};

describe('clientsFirstPatch', () => {
  it('is empty when the clients are in front, absent, or there are no init containers', () => {
    expect(clientsFirstPatch(podWith([CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, 'migrate']))).toEqual([]);
    expect(clientsFirstPatch(podWith([CLIENT_INIT_NAME, 'migrate']))).toEqual([]);
    expect(clientsFirstPatch(podWith(['migrate']))).toEqual([]);
    expect(clientsFirstPatch({ spec: { containers: [] } })).toEqual([]);
    expect(clientsFirstPatch({ spec: { initContainers: null } })).toEqual([]);
  });

  it('moves the clients back in front of a foreign init container', () => {
    expect(namesAfter(podWith(['vault-agent-init', CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, 'migrate']))).toEqual([
      CLIENT_INIT_NAME,
      CLIENT_SIDECAR_NAME,
      'vault-agent-init',
      'migrate',
    ]);
  });

  it('tests each moved name, so the patch fails rather than moving the wrong container', () => {
    const pod = podWith(['mesh-init', CLIENT_INIT_NAME]);
    const ops = clientsFirstPatch(pod);
    const other = podWith(['mesh-init', 'something-else']);
    expect(() => jsonpatch.applyPatch(other, ops as jsonpatch.Operation[], true, false)).toThrow();
  });

  it('for any order: clients at 0 and 1, every other init container in its relative order', () => {
    const others = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), { maxLength: 6 }).map((a) =>
      a.filter((n) => n !== CLIENT_INIT_NAME && n !== CLIENT_SIDECAR_NAME),
    );
    fc.assert(
      fc.property(others, fc.boolean(), fc.nat(), fc.nat(), (rest, withSidecar, i, j) => {
        const names = [...rest];
        names.splice(i % (names.length + 1), 0, CLIENT_INIT_NAME);
        if (withSidecar) names.splice(j % (names.length + 1), 0, CLIENT_SIDECAR_NAME);
        const after = namesAfter(podWith(names));
        const clients = withSidecar ? [CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME] : [CLIENT_INIT_NAME];
        expect(after.slice(0, clients.length)).toEqual(clients);
        expect(after.slice(clients.length)).toEqual(names.filter((n) => !clients.includes(n)));
      }),
    );
  });
});

describe('denials that echo a forged value stay small', () => {
  it('a 1 MiB routed label or OS name is clipped in the message (the one clip helper, 256 characters)', async () => {
    const { decide } = await import('./decision.js');
    const { parseConfig } = await import('../config/schema.js');
    const huge = 'x'.repeat(1 << 20);
    const base = { operation: 'CREATE', resource: 'pods', namespace: 'downloads', namespaceFacts: undefined, ranges: undefined, config: parseConfig({}) };
    const routed = decide({ ...base, pod: { metadata: { labels: { 'podvpn.io/routed': huge }, annotations: { 'podvpn.io/status': '{}' } }, spec: { containers: [{ name: 'a' }] } } });
    const windows = decide({ ...base, pod: { spec: { os: { name: huge }, containers: [{ name: 'a' }] } } });
    for (const d of [routed, windows]) {
      expect(d.action).toBe('deny');
      expect(d.action === 'deny' && d.message.length).toBeLessThan(1024);
    }
  });
});
