#!/usr/bin/env node
// The podvpn command: serve the webhook, inject manifests offline, write certificates.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, SYSTEM_NAMESPACE, VERSION, WEBHOOK_SERVICE_NAME } from './constants.js';

// Each command loads only what it needs: `serve` starts faster without the YAML and offline paths.

const USAGE = `podvpn ${VERSION}: route chosen pods through a VPN gateway, behind a kill switch

Usage:
  podvpn serve [--listen HOST:PORT] [--admin-listen HOST:PORT] [--config FILE]
               [--tls-cert FILE --tls-key FILE] [--certs-dir DIR] [--no-kube] [--kubeconfig FILE]
               [--log-level LEVEL] [--shutdown-delay SECONDS] [--tls-reload-interval SECONDS]
               [--self-managed-certs]
  podvpn inject -f FILE|- [--config FILE] [--namespace NS] [--no-policies]
  podvpn certs [--out DIR] [--dns-name NAME]... [--force]
  podvpn version

serve    HTTPS admission webhook on --listen (default ${DEFAULT_LISTEN}), health and
         metrics on --admin-listen (default ${DEFAULT_ADMIN_LISTEN}). Without --tls-cert and
         --tls-key it keeps a CA and serving certificate in a Secret when it runs in a cluster (or
         with --self-managed-certs), else it generates them under --certs-dir (default certs/).
inject   Inject Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
         Jobs and CronJobs in multi-document YAML; other documents pass through unchanged. Appends
         the kill-switch NetworkPolicy of every namespace it routed pods in (--no-policies: don't).
certs    Write a CA and a serving certificate for the webhook Service (default DNS names:
         ${WEBHOOK_SERVICE_NAME}.${SYSTEM_NAMESPACE}.svc and its shorter and longer forms).
`;

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await runServe(rest);
      case 'inject':
        return await runInject(rest);
      case 'certs':
        return await runCerts(rest);
      case 'version':
      case '--version':
        process.stdout.write(`${VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`podvpn: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`podvpn: ${(err as Error).message}\n`);
    return 1;
  }
}

async function runServe(args: string[]): Promise<number> {
  const { DEFAULT_SERVE_OPTIONS, serve } = await import('./serve.js');
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      listen: { type: 'string' },
      'admin-listen': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'certs-dir': { type: 'string' },
      config: { type: 'string' },
      'no-kube': { type: 'boolean' },
      kubeconfig: { type: 'string' },
      'log-level': { type: 'string' },
      'shutdown-delay': { type: 'string' },
      'tls-reload-interval': { type: 'string' },
      'self-managed-certs': { type: 'boolean' },
    },
  });
  const d = DEFAULT_SERVE_OPTIONS;
  const server = await serve({
    listen: values.listen ?? d.listen,
    adminListen: values['admin-listen'] ?? d.adminListen,
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    certsDir: values['certs-dir'] ?? d.certsDir,
    config: values.config,
    noKube: values['no-kube'] ?? d.noKube,
    kubeconfig: values.kubeconfig,
    logLevel: values['log-level'] ?? d.logLevel,
    shutdownDelay: seconds(values['shutdown-delay'], '--shutdown-delay') ?? d.shutdownDelay,
    selfManagedCerts: values['self-managed-certs'] ?? false,
    tlsReloadIntervalMs: (seconds(values['tls-reload-interval'], '--tls-reload-interval') ?? d.tlsReloadIntervalMs / 1000) * 1000,
  });
  await new Promise<void>((resolveStop) => {
    const stop = (): void => {
      void server.shutdown().then(resolveStop);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} must be a number of seconds, got "${value}"`);
  return n;
}

async function runInject(args: string[]): Promise<number> {
  const [{ parseAllDocuments, stringify }, { loadConfig }, { standaloneRanges }, { policiesForNamespaces }, { injectDocuments }] =
    await Promise.all([
      import('yaml'),
      import('./config/load.js'),
      import('./cluster/ranges.js'),
      import('./policy/killswitch.js'),
      import('./inject/offline.js'),
    ]);
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      filename: { type: 'string', short: 'f' },
      config: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      'no-policies': { type: 'boolean' },
    },
  });
  if (values.filename === undefined) throw new UsageError('inject needs -f FILE (or -f - for standard input)');
  const text = readFileSync(values.filename === '-' ? 0 : values.filename, 'utf8');
  const docs = parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new UsageError(`document ${i + 1} is not valid YAML: ${doc.errors[0]!.message}`);
    return doc.toJS() as unknown;
  });
  const config = loadConfig(values.config);
  const ranges = standaloneRanges(config.cluster);
  for (const [kind, source] of Object.entries(ranges.sources)) {
    if (!source.startsWith('config')) process.stderr.write(`podvpn: cluster.${kind} not in config; using ${source}\n`);
  }
  const result = injectDocuments(docs, { config, ranges, defaultNamespace: values.namespace ?? 'default' });
  for (const note of result.notes) process.stderr.write(`podvpn: ${note}\n`);
  // Each touched namespace's kill-switch policy, from the same ranges as the injected routes.
  const policies = values['no-policies'] === true ? [] : policiesForNamespaces(result.routed, ranges, config);
  const out = [...result.documents, ...policies]
    .filter((d) => d !== null && d !== undefined)
    .map((d) => stringify(d, { lineWidth: 0 }));
  process.stdout.write(out.join('---\n'));
  return 0;
}

async function runCerts(args: string[]): Promise<number> {
  const [{ ensureLocalCerts }, { webhookDnsNames }] = await Promise.all([import('./tls/local.js'), import('./tls/names.js')]);
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      out: { type: 'string' },
      'dns-name': { type: 'string', multiple: true },
      force: { type: 'boolean' },
    },
  });
  const dir = values.out ?? 'certs';
  const names = values['dns-name'] ?? webhookDnsNames();
  const r = await ensureLocalCerts(dir, names, { force: values.force ?? false });
  const serving = `serving certificate ${r.cert} (key ${r.key}) for ${names.join(', ')}`;
  const ca = `CA ${r.caCert} (key ${r.caKey})`;
  const line = {
    created: `wrote ${ca} and ${serving}`,
    kept: `kept existing ${ca} and ${serving}`,
    renewed: `kept existing ${ca}; wrote a new ${serving}, because ${r.why}`,
    replaced: `wrote ${ca} (a new CA: trust it again) and ${serving}, because ${r.why}`,
  }[r.outcome];
  process.stdout.write(`${line}\n`);
  return 0;
}

// Run only as a program, not when imported by tests.
if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`podvpn: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
