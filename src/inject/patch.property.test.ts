// Property: for any pod shape the API server may send (lists missing, null or full; maps missing,
// null or full; keys that need JSON-pointer escaping), the patch applies as RFC 6902, the client init
// comes first, nothing of the user's is lost, the result is recognised as injected, and uninject gives
// the pod back exactly.

import jsonpatch from 'fast-json-patch';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ClusterRanges } from '../cluster/ranges.js';
import { parseConfig } from '../config/schema.js';
import { ANNOTATION_STATUS, CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME } from '../constants.js';
import { decide } from './decision.js';
import { injectionPatch } from './patch.js';
import { clientSettings } from './settings.js';
import type { Pod } from './types.js';
import { uninjectionPatch } from './uninject.js';

const RANGES: ClusterRanges = {
  podCIDRs: ['10.244.0.0/16'],
  serviceCIDRs: ['10.96.0.0/12'],
  extraCIDRs: [],
  dnsIPs: ['10.96.0.10'],
  sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' },
};

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/).filter((n) => !n.startsWith('podvpn'));
const container = fc.record({ name, image: fc.constant('example.com/app:1') }, { requiredKeys: ['name', 'image'] });
const uniqueContainers = (min: number) => fc.uniqueArray(container, { minLength: min, maxLength: 5, selector: (c) => c.name });
const maybeList = <T>(arb: fc.Arbitrary<T[]>) => fc.oneof(fc.constant(undefined), fc.constant(null), arb);
const stringMap = fc.dictionary(fc.stringMatching(/^[a-z~/.]{1,10}$/), fc.string({ maxLength: 8 }), { maxKeys: 4 });
const maybeMap = fc.oneof(fc.constant(undefined), fc.constant(null), stringMap);

const pods: fc.Arbitrary<Pod> = fc
  .record({
    labels: maybeMap,
    annotations: maybeMap,
    initContainers: maybeList(uniqueContainers(0)),
    containers: uniqueContainers(1),
    volumes: maybeList(fc.uniqueArray(fc.record({ name, emptyDir: fc.constant({}) }), { maxLength: 3, selector: (v) => v.name })),
    dnsConfig: fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.record({ searches: fc.array(fc.domain(), { maxLength: 3 }), options: fc.array(fc.record({ name: fc.constantFrom('ndots', 'edns0', 'timeout') }), { maxLength: 2 }) }),
    ),
    generateName: fc.boolean(),
  })
  .map((p) => {
    const labels = p.labels === undefined || p.labels === null ? p.labels : Object.fromEntries(Object.entries(p.labels).filter(([k]) => !k.startsWith('podvpn.io')));
    const annotations =
      p.annotations === undefined || p.annotations === null
        ? p.annotations
        : Object.fromEntries(Object.entries(p.annotations).filter(([k]) => !k.startsWith('podvpn.io') && !k.startsWith('kubernetes.io')));
    const initNames = new Set((p.initContainers ?? []).map((c) => c.name));
    return {
      metadata: { ...(p.generateName ? { generateName: 'app-' } : { name: 'app' }), labels, annotations },
      spec: {
        initContainers: p.initContainers,
        containers: p.containers.filter((c) => !initNames.has(c.name)).length > 0 ? p.containers.filter((c) => !initNames.has(c.name)) : [{ name: 'main-app', image: 'x' }],
        volumes: p.volumes,
        dnsConfig: p.dnsConfig,
      },
    };
  });

describe('injection patch properties', () => {
  for (const sidecarMode of ['native', 'container'] as const) {
    it(`applies to any pod shape and keeps everything of the user's (${sidecarMode})`, () => {
      const config = parseConfig({ sidecarMode });
      const gateway = config.gateways.default!;
      fc.assert(
        fc.property(pods, (pod) => {
          const { patch } = injectionPatch({ pod, namespace: 'ns', gateway, settings: clientSettings(gateway, RANGES), config });
          expect(jsonpatch.validate(patch as jsonpatch.Operation[], structuredClone(pod))).toBeUndefined();
          const out = jsonpatch.applyPatch(structuredClone(pod), patch as jsonpatch.Operation[], true, false).newDocument;
          const inits = (out.spec!.initContainers ?? []).map((c) => c.name);
          expect(inits[0]).toBe(CLIENT_INIT_NAME);
          const userInits = (pod.spec!.initContainers ?? []).map((c) => c.name);
          const userContainers = pod.spec!.containers!.map((c) => c.name);
          if (sidecarMode === 'native') {
            expect(inits).toEqual([CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, ...userInits]);
            expect(out.spec!.containers!.map((c) => c.name)).toEqual(userContainers);
          } else {
            expect(inits).toEqual([CLIENT_INIT_NAME, ...userInits]);
            expect(out.spec!.containers!.map((c) => c.name)).toEqual([...userContainers, CLIENT_SIDECAR_NAME]);
          }
          for (const [k, v] of Object.entries(pod.metadata!.labels ?? {})) expect(out.metadata!.labels![k]).toBe(v);
          for (const [k, v] of Object.entries(pod.metadata!.annotations ?? {})) expect(out.metadata!.annotations![k]).toBe(v);
          for (const v of pod.spec!.volumes ?? []) expect(out.spec!.volumes).toContainEqual(v);
          for (const s of pod.spec!.dnsConfig?.searches ?? []) expect(out.spec!.dnsConfig!.searches).toContain(s);
          expect(out.metadata!.annotations![ANNOTATION_STATUS]).toBeDefined();
          const again = decide({ operation: 'CREATE', resource: 'pods', namespace: 'ns', pod: out, namespaceFacts: undefined, ranges: RANGES, config });
          expect(again).toEqual({ action: 'readmit', gateway: gateway.name });
        }),
        { numRuns: 300 },
      );
    });
  }

  for (const sidecarMode of ['native', 'container'] as const) {
    it(`uninject gives any injected pod back exactly, key order too (${sidecarMode})`, () => {
      const config = parseConfig({ sidecarMode });
      const gateway = config.gateways.default!;
      const withDnsPolicy = fc.tuple(pods, fc.constantFrom(undefined, null, 'ClusterFirst', 'Default')).map(([pod, dnsPolicy]) =>
        dnsPolicy === undefined ? pod : ({ ...pod, spec: { ...pod.spec, dnsPolicy } }),
      );
      fc.assert(
        fc.property(withDnsPolicy, (pod) => {
          const { patch } = injectionPatch({ pod, namespace: 'ns', gateway, settings: clientSettings(gateway, RANGES), config });
          const out = jsonpatch.applyPatch(structuredClone(pod), patch as jsonpatch.Operation[], true, false).newDocument;
          const undo = uninjectionPatch(out)!;
          expect(jsonpatch.validate(undo.patch as jsonpatch.Operation[], structuredClone(out))).toBeUndefined();
          const back = jsonpatch.applyPatch(structuredClone(out), undo.patch as jsonpatch.Operation[], true, false).newDocument;
          expect(JSON.stringify(back)).toBe(JSON.stringify(pod));
          expect(undo.notes).toEqual([]);
        }),
        { numRuns: 300 },
      );
    });
  }

  it('grows linearly: a 1,000-container pod is one add per list, not one per container', () => {
    const config = parseConfig({});
    const gateway = config.gateways.default!;
    const pod: Pod = { metadata: { name: 'big' }, spec: { containers: Array.from({ length: 1000 }, (_, i) => ({ name: `c${i}`, image: 'x' })) } };
    const { patch } = injectionPatch({ pod, namespace: 'ns', gateway, settings: clientSettings(gateway, RANGES), config });
    expect(patch.length).toBeLessThan(12);
  });
});
