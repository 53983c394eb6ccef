// The edge of `podvpn inject` and `podvpn uninject`: read files, directories or standard input, find
// the cluster's ranges, apply the pure plan (src/inject/offline.ts) to the YAML documents, write the
// result and one report line per document on stderr.
//
// Where the ranges come from (never guessed): the config file when it gives all three kinds; else the
// live cluster of the kubeconfig (like `istioctl kube-inject`), read the way the webhook reads it;
// with neither, every pod is refused with the config lines to add, as the webhook denies it.

import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { type Document, isCollection, parseAllDocuments, visit } from 'yaml';
import type { ClusterRanges } from './cluster/ranges.js';
import type { Config } from './config/schema.js';
import type { OfflinePlan, Report } from './inject/offline.js';
import type { NamespaceFacts } from './inject/types.js';
import type * as RangesModule from './cluster/ranges.js';

export class InputError extends Error {}

export interface OfflineCliOptions {
  files: string[];
  recursive: boolean;
  output: string | undefined;
  config: string | readonly string[] | undefined;
  namespace: string | undefined;
  noPolicies: boolean;
  noKube: boolean;
  kubeconfig: string | undefined;
  stdin: () => string;
  err: (line: string) => void;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** Every input as [name, text]: `-` is standard input, a directory its manifests (sorted, like kubectl). */
export function readInputs(files: string[], recursive: boolean, stdin: () => string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const visit = (path: string, top: boolean): void => {
    let stat;
    try {
      stat = statSync(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new InputError(code === 'ENOENT' ? `${path}: no such file or directory` : `${path}: cannot read (${code ?? (err as Error).message})`);
    }
    if (stat.isDirectory()) {
      if (!top && !recursive) return;
      const entries = readdirSync(path).sort();
      for (const e of entries) {
        const full = join(path, e);
        if (statSync(full).isDirectory()) visit(full, false);
        else if (MANIFEST_EXTENSIONS.has(extname(e))) visit(full, false);
      }
      return;
    }
    out.push([path, readFileSync(path, 'utf8')]);
  };
  for (const f of files) {
    if (f === '-') out.push(['standard input', stdin()]);
    else {
      const before = out.length;
      visit(f, true);
      if (out.length === before && statSync(f).isDirectory()) throw new InputError(`${f}: no .yaml, .yml or .json files in this directory`);
    }
  }
  return out;
}

/** One YAML document of the input and its exact source text (written back as is when unchanged). */
export interface InputDocument {
  doc: Document;
  source: string;
}

/** Parse every input; a YAML error names the file and, for Helm templates, says to render them first. */
export function parseInputs(inputs: Array<[string, string]>, err: (line: string) => void): InputDocument[] {
  const out: InputDocument[] = [];
  for (const [name, text] of inputs) {
    // A Helm (Go) template either fails to parse or, where `{{ ... }}` starts a value, parses as a flow
    // map whose key is itself a map: no manifest means that. `{{` inside strings and block scalars
    // (Alertmanager templates in a ConfigMap) is text and stays.
    const helm = /\{\{/.test(text);
    const hint = '; it looks like a Helm template: render it first (helm template RELEASE CHART | podvpn inject -f -)';
    const parsed = parseAllDocuments(text);
    const list = Array.isArray(parsed) ? parsed : [];
    for (const [i, doc] of list.entries()) {
      if (doc.errors.length > 0) {
        throw new InputError(`${name}: document ${i + 1} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}${helm ? hint : ''}`);
      }
      if (helm && hasCollectionKey(doc)) throw new InputError(`${name}: document ${i + 1} has template syntax ({{ ... }}) where a value starts${hint}`);
    }
    if (list.every(isEmptyDocument)) err(`${name}: no Kubernetes objects (empty, or only comments)`);
    for (const [i, doc] of list.entries()) {
      const start = i === 0 ? 0 : doc.range[0];
      const end = i + 1 < list.length ? list[i + 1]!.range[0] : text.length;
      out.push({ doc, source: text.slice(start, end) });
    }
  }
  return out;
}

function hasCollectionKey(doc: Document): boolean {
  let found = false;
  visit(doc, {
    Pair(_, pair) {
      if (isCollection(pair.key)) {
        found = true;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function isEmptyDocument(doc: Document): boolean {
  return doc.contents === null || doc.toJS() === null;
}

/** The documents, each as it came unless `changed`, then `extra` objects; `---` between documents. */
function write(inputs: InputDocument[], changed: (i: number) => boolean, keep: (i: number) => boolean, extra: unknown[], output: string | undefined, stringify: (o: unknown) => string): void {
  const pieces: string[] = [];
  for (const [i, input] of inputs.entries()) {
    if (!keep(i)) continue;
    let piece = input.source;
    // A changed document is printed again: comments, key order and quoting stay; lists keep kubectl's
    // unindented style when the source used it.
    if (changed(i)) piece = input.doc.toString({ lineWidth: 0, indentSeq: !/^( *)[^\s#-][^\n]*:\n\1- /m.test(input.source) });
    pieces.push(piece);
  }
  pieces.push(...extra.map((o) => stringify(o)));
  let text = '';
  for (const piece of pieces) {
    if (text !== '' && !text.endsWith('\n')) text += '\n';
    const startsWithMarker = /^(#[^\n]*\n|\s*\n)*---/.test(piece);
    text += text === '' || startsWithMarker ? piece : `---\n${piece}`;
  }
  if (output === undefined) process.stdout.write(text);
  else writeFileSync(output, text);
}

export function formatReport(r: Report): string[] {
  const head =
    r.outcome === 'injected' || r.outcome === 'refreshed'
      ? `${r.outcome} ${r.detail}`
      : r.outcome === 'passed' || r.outcome === 'unchanged'
        ? `unchanged (${r.detail})`
        : `${r.outcome}: ${r.detail}`;
  return [`${r.subject}: ${head}`, ...r.warnings.map((w) => `${r.subject}: warning: ${w}`)];
}

export async function runInjectCommand(opts: OfflineCliOptions): Promise<number> {
  const [yaml, { loadConfig }, ranges, offline, { applyToDocument }] = await Promise.all([
    import('yaml'),
    import('./config/load.js'),
    import('./cluster/ranges.js'),
    import('./inject/offline.js'),
    import('./inject/yaml-edit.js'),
  ]);
  const stringify = (o: unknown) => yaml.stringify(o, { lineWidth: 0 });
  const config = loadConfig(opts.config);
  const inputs = parseInputs(readInputs(opts.files, opts.recursive, opts.stdin), opts.err);
  const docs = inputs.map((i) => i.doc);
  if (docs.every(isEmptyDocument)) {
    opts.err('nothing to inject: the input has no Kubernetes objects');
    return 1;
  }
  const values = docs.map((d) => d.toJS() as unknown);
  const replaced = new Set<number>();

  const cluster = await clusterView(config, values, opts, ranges);
  for (const line of cluster.lines) opts.err(line);
  const plan = offline.planInjection(values, {
    config,
    ranges: cluster.ranges,
    rangesProblem: cluster.problem,
    namespace: opts.namespace ?? cluster.contextNamespace,
    namespaceFacts: (ns) => cluster.namespaces.get(ns),
  });
  report(plan, opts.err);
  if (plan.refused) {
    opts.err('podvpn: nothing written: a pod podvpn cannot protect must not be applied unprotected (see "refused" above)');
    return 1;
  }
  for (const [i, p] of plan.documents.entries()) applyToDocument(docs[i]!, p.patch);

  // The kill-switch policy of every namespace and gateway routed here, from the same ranges as the
  // routes. One already in the input (an earlier run's output) is replaced in place.
  const extra: unknown[] = [];
  if (!opts.noPolicies && plan.routed.length > 0) {
    const { policiesForNamespaces } = await import('./killswitch/policy.js');
    const policies = policiesForNamespaces(plan.routed, cluster.ranges!, config);
    for (const policy of policies) {
      const at = values.findIndex(
        (v) => offline.isKillSwitchPolicy(v) && sameObject(v, policy),
      );
      if (at < 0) extra.push(policy);
      else if (JSON.stringify(values[at]) !== JSON.stringify(policy)) {
        docs[at]!.contents = docs[at]!.createNode(policy);
        replaced.add(at);
      }
    }
  }
  write(inputs, (i) => plan.documents[i]!.patch.length > 0 || replaced.has(i), () => true, extra, opts.output, stringify);
  return 0;
}

export async function runUninjectCommand(opts: OfflineCliOptions): Promise<number> {
  const [offline, { applyToDocument }] = await Promise.all([import('./inject/offline.js'), import('./inject/yaml-edit.js')]);
  const inputs = parseInputs(readInputs(opts.files, opts.recursive, opts.stdin), opts.err);
  const docs = inputs.map((i) => i.doc);
  if (docs.every(isEmptyDocument)) {
    opts.err('nothing to uninject: the input has no Kubernetes objects');
    return 1;
  }
  const plan = offline.planUninjection(docs.map((d) => d.toJS() as unknown));
  report(plan, opts.err);
  for (const [i, p] of plan.documents.entries()) applyToDocument(docs[i]!, p.patch);
  write(inputs, (i) => plan.documents[i]!.patch.length > 0, (i) => !plan.documents[i]!.drop, [], opts.output, () => '');
  return 0;
}

function report(plan: OfflinePlan, err: (line: string) => void): void {
  for (const d of plan.documents) for (const r of d.reports) for (const line of formatReport(r)) err(line);
}

interface ClusterView {
  ranges: ClusterRanges | undefined;
  problem?: string;
  contextNamespace?: string;
  namespaces: Map<string, NamespaceFacts>;
  lines: string[];
}

async function clusterView(
  config: Config,
  values: unknown[],
  opts: OfflineCliOptions,
  { resolveRanges, assertRangesSafe, checkRanges }: typeof RangesModule,
): Promise<ClusterView> {
  const c = config.cluster;
  const configured = c.podCIDRs.length > 0 && c.serviceCIDRs.length > 0 && c.dnsIPs.length > 0;
  if (configured) {
    // All three from the config: no cluster is asked, and the Kubernetes client is not even loaded.
    const ranges = resolveRanges(c, {});
    assertRangesSafe(ranges, { allowPublicRanges: c.allowPublicRanges });
    return { ranges, namespaces: new Map(), lines: [] };
  }
  const { findKubeSource } = await import('./kube/client.js');
  const source = findKubeSource({ noKube: opts.noKube, kubeconfig: opts.kubeconfig });
  if (source === undefined) {
    const checked = checkRanges(resolveRanges(c, {}), config, [
      opts.noKube ? '--no-kube: no cluster asked' : 'no cluster: no kubeconfig found ($KUBECONFIG, ~/.kube/config)',
    ]);
    return { ranges: checked.ranges, problem: checked.problem, namespaces: new Map(), lines: [] };
  }
  const { readCluster } = await import('./cluster/offline-read.js');
  return readCluster(source, config, values, opts.namespace);
}

/** Same namespace and name: the policy a refresh replaces in place. */
function sameObject(a: unknown, b: { metadata?: { namespace?: string; name?: string } }): boolean {
  const meta = (a as { metadata?: { namespace?: unknown; name?: unknown } }).metadata;
  return meta?.namespace === b.metadata?.namespace && meta?.name === b.metadata?.name;
}
