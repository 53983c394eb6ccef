// Render a kustomization with the installed `kubectl kustomize` and hand back its objects.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MANIFESTS = join(REPO_ROOT, 'manifests');

/** A rendered Kubernetes object, loosely typed: tests narrow what they read. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

const cache = new Map<string, K8sObject[]>();

export function render(dir: string): K8sObject[] {
  const abs = resolve(MANIFESTS, dir);
  const hit = cache.get(abs);
  if (hit !== undefined) return hit;
  const out = execFileSync('kubectl', ['kustomize', abs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const docs = parseAllDocuments(out)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`kustomize output for ${dir} is not YAML: ${d.errors[0]?.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
  cache.set(abs, docs);
  return docs;
}

/** Every directory under manifests/ holding a kustomization.yaml, relative to manifests/. */
export function kustomizations(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    if (existsSync(join(dir, 'kustomization.yaml'))) found.push(relative(MANIFESTS, dir) || '.');
    for (const entry of readdirSync(dir)) {
      const p = join(dir, entry);
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  walk(MANIFESTS);
  return found.sort();
}

export function find(objects: K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const hit = objects.find(
    (o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (hit === undefined) throw new Error(`no ${kind} ${namespace ? `${namespace}/` : ''}${name} in the rendered manifests`);
  return hit;
}

/** A ConfigMap a pod volume points at (names carry a kustomize content hash). */
export function volumeConfigMap(objects: K8sObject[], workload: K8sObject, volumeName: string): K8sObject {
  const volumes = (workload.spec?.template?.spec?.volumes ?? []) as Array<{ name: string; configMap?: { name: string } }>;
  const volume = volumes.find((v) => v.name === volumeName);
  if (volume?.configMap?.name === undefined) throw new Error(`volume ${volumeName} is not a ConfigMap volume`);
  return find(objects, 'ConfigMap', volume.configMap.name, workload.metadata.namespace);
}

/** Parse a settings.sh of `KEY="value"` lines (comments and blank lines skipped). */
export function parseShellSettings(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|'([^']*)'|(\S*))$/.exec(line);
    if (m === null) throw new Error(`settings.sh line is not KEY="value": ${line}`);
    out[m[1]!] = m[2] ?? m[3] ?? m[4] ?? '';
  }
  return out;
}
