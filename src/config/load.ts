// The edge that reads the config file(s); validation lives in schema.ts.
//
// Several files are layers, read in order: each one's mappings are merged key by key over the ones
// before (a list or a value replaces), and the result is validated once. So a kustomize overlay can
// change one key (manifests/overlays/agent adds a file holding only `dataPlane: agent`) and every other
// key still comes from the base config.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { type Config, ConfigError, defaultConfig, parseConfig } from './schema.js';

export function loadConfig(files: string | readonly string[] | undefined): Config {
  const list = files === undefined ? [] : typeof files === 'string' ? [files] : files;
  if (list.length === 0) return defaultConfig();
  const layers = list.map((file) => ({ file, raw: readLayer(file) }));
  const source = list.length === 1 ? `config file ${list[0]}` : `config files ${list.join(' + ')}`;
  return parseConfig(layerConfigs(layers), source);
}

function readLayer(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, []);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`, []);
  }
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Later layers over earlier ones (pure): mappings merge key by key, anything else replaces. An empty
 * file (null) adds nothing; a layer that is not a mapping is refused with its file's name. One layer
 * is returned as it is, so schema errors about a single file read exactly as before.
 */
export function layerConfigs(layers: ReadonlyArray<{ file: string; raw: unknown }>): unknown {
  if (layers.length === 1) return layers[0]!.raw;
  let out: Record<string, unknown> = {};
  for (const { file, raw } of layers) {
    if (raw === null || raw === undefined) continue;
    if (!isMapping(raw)) throw new ConfigError(`config file ${file} must be a YAML mapping of settings to layer over the others`, []);
    out = mergeMappings(out, raw);
  }
  return out;
}

function mergeMappings(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    // defineProperty: a "__proto__" key stays a plain key (the schema refuses it) and sets no prototype
    Object.defineProperty(out, key, { value: isMapping(prev) && isMapping(value) ? mergeMappings(prev, value) : value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
