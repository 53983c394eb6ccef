// The edge that reads the config file; validation lives in schema.ts.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { type Config, ConfigError, defaultConfig, parseConfig } from './schema.js';

export function loadConfig(file: string | undefined): Config {
  if (file === undefined) return defaultConfig();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, []);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`, []);
  }
  return parseConfig(raw, `config file ${file}`);
}
