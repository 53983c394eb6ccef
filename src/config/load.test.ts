import { describe, expect, it } from 'vitest';
import { layerConfigs } from './load.js';
import { ConfigError, parseConfig } from './schema.js';

const base = {
  gateways: { default: { vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', mtu: 1320 } },
  defaultGateway: 'default',
  cluster: { domain: 'cluster.local', serviceCIDRs: ['10.96.0.0/12'] },
  sidecarMode: 'native',
};

describe('config layers', () => {
  it('one file is returned as it is', () => {
    expect(layerConfigs([{ file: 'a', raw: base }])).toBe(base);
  });

  it('a later layer changes one key and keeps every other from the base', () => {
    const merged = layerConfigs([
      { file: 'config.yaml', raw: base },
      { file: 'data-plane.yaml', raw: { dataPlane: 'agent' } },
    ]);
    expect(merged).toEqual({ ...base, dataPlane: 'agent' });
    expect(parseConfig(merged).dataPlane).toBe('agent');
  });

  it('mappings merge key by key, lists and values replace', () => {
    const merged = layerConfigs([
      { file: 'a', raw: base },
      { file: 'b', raw: { cluster: { serviceCIDRs: ['10.43.0.0/16'] }, gateways: { default: { mtu: 1280 } } } },
    ]) as typeof base;
    expect(merged.cluster).toEqual({ domain: 'cluster.local', serviceCIDRs: ['10.43.0.0/16'] });
    expect(merged.gateways.default).toEqual({ ...base.gateways.default, mtu: 1280 });
    expect(base.gateways.default.mtu, 'the layers are not modified').toBe(1320);
  });

  it('an empty layer adds nothing; a layer that is not a mapping is refused by name', () => {
    expect(layerConfigs([{ file: 'a', raw: base }, { file: 'empty.yaml', raw: null }])).toEqual(base);
    expect(() => layerConfigs([{ file: 'a', raw: base }, { file: 'list.yaml', raw: ['dataPlane: agent'] }])).toThrow(ConfigError);
    expect(() => layerConfigs([{ file: 'a', raw: base }, { file: 'list.yaml', raw: 'agent' }])).toThrow(/list\.yaml/);
  });

  it('a "__proto__" key stays a key the schema refuses, and sets no prototype', () => {
    const hostile = JSON.parse('{"__proto__": {"dataPlane": "agent"}}') as unknown;
    const merged = layerConfigs([{ file: 'a', raw: base }, { file: 'b', raw: hostile }]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect((merged as { dataPlane?: unknown }).dataPlane).toBeUndefined();
    expect(() => parseConfig(merged)).toThrow(ConfigError);
  });
});
