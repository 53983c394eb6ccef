#!/usr/bin/env node
// The podvpn command: serve the webhook, inject manifests offline, write certificates.

import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, SYSTEM_NAMESPACE, VERSION, WEBHOOK_SERVICE_NAME } from './constants.js';

// Each command loads only what it needs: `serve` starts faster without the YAML and offline paths.

const USAGE = `podvpn ${VERSION}: route chosen pods through a VPN gateway, behind a kill switch

Usage:
  podvpn serve [--listen HOST:PORT] [--admin-listen HOST:PORT] [--config FILE]...
               [--tls-cert FILE --tls-key FILE] [--certs-dir DIR] [--no-kube] [--kubeconfig FILE]
               [--log-level LEVEL] [--shutdown-delay SECONDS] [--tls-reload-interval SECONDS]
               [--self-managed-certs]
  podvpn inject -f FILE|DIR|- [-R] [-o FILE] [--config FILE]... [-n NS] [--no-policies]
                [--kubeconfig FILE | --no-kube]
  podvpn uninject -f FILE|DIR|- [-R] [-o FILE]
  podvpn certs [--out DIR] [--dns-name NAME]... [--force]
  podvpn exit-probe [--target IP:PORT]... [--interval SECONDS] [--timeout SECONDS]
                    [--listen HOST:PORT] [--drain SECONDS]
  podvpn version

serve    HTTPS admission webhook on --listen (default ${DEFAULT_LISTEN}), health and
         metrics on --admin-listen (default ${DEFAULT_ADMIN_LISTEN}). Without --tls-cert and
         --tls-key it keeps a CA and serving certificate in a Secret when it runs in a cluster (or
         with --self-managed-certs), else it generates them under --certs-dir (default certs/).
inject   Inject Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
         Jobs and CronJobs (and the items of a List) in multi-document YAML; other documents pass
         through unchanged, comments and key order kept. Re-injecting refreshes an earlier injection.
         Cluster ranges come from --config, else the kubeconfig's cluster; with neither it refuses.
         Appends the kill-switch NetworkPolicy of every namespace it routed pods in (--no-policies:
         don't). One line per document on stderr.
uninject Remove what inject added, exactly, and podvpn's kill-switch policies.
--config FILE, given more than once: the files are layers, each merged over the ones before
         (mappings key by key; a list or a value replaces), then validated as one config.
certs    Write a CA and a serving certificate for the webhook Service (default DNS names:
         ${WEBHOOK_SERVICE_NAME}.${SYSTEM_NAMESPACE}.svc and its shorter and longer forms).
exit-probe  Runs beside gluetun in an exit's gateway pod: every --interval (default 1) a TCP
         connect to each --target (default 1.1.1.1:443 and 9.9.9.9:443; addresses, not
         names) with --timeout (default 0.8), closed at once. Serves on --listen (default
         0.0.0.0:9998) what gluetun's health server does: GET 200 while a target answered
         in the latest round, else 500 and why. On SIGTERM it answers 500 "exit is stopping" for
         --drain seconds (default 0), then exits. Needs no cluster, config or root.
`;

class UsageError extends Error {}

const COMMANDS = ['serve', 'inject', 'uninject', 'certs', 'exit-probe', 'version', 'help'];

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await runServe(rest);
      case 'inject':
      case 'uninject':
        return await runOffline(command, rest);
      case 'certs':
        return await runCerts(rest);
      case 'exit-probe':
        return await runExitProbe(rest);
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
      default: {
        const near = nearest(command, COMMANDS);
        throw new UsageError(`unknown command "${command}"${near === undefined ? '' : `; did you mean "${near}"?`}`);
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`podvpn: ${err.message}\nRun "podvpn help" for usage.\n`);
      return 2;
    }
    process.stderr.write(`podvpn: ${(err as Error).message}\n`);
    return 1;
  }
}

async function runServe(args: string[]): Promise<number> {
  const { DEFAULT_SERVE_OPTIONS, serve } = await import('./serve.js');
  const { values } = flags('serve', args, {
      listen: { type: 'string' },
      'admin-listen': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'certs-dir': { type: 'string' },
      config: { type: 'string', multiple: true },
      'no-kube': { type: 'boolean' },
      kubeconfig: { type: 'string' },
      'log-level': { type: 'string' },
      'shutdown-delay': { type: 'string' },
      'tls-reload-interval': { type: 'string' },
      'self-managed-certs': { type: 'boolean' },
  });
  const d = DEFAULT_SERVE_OPTIONS;
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (values['log-level'] !== undefined && !levels.includes(values['log-level'])) {
    throw new UsageError(`--log-level must be one of ${levels.join(', ')}; got "${values['log-level']}"`);
  }
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

const OFFLINE_OPTIONS = {
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  output: { type: 'string', short: 'o' },
  config: { type: 'string', multiple: true },
  namespace: { type: 'string', short: 'n' },
  'no-policies': { type: 'boolean' },
  'no-kube': { type: 'boolean' },
  kubeconfig: { type: 'string' },
} as const;

async function runOffline(command: 'inject' | 'uninject', args: string[]): Promise<number> {
  const v: Partial<ReturnType<typeof flags<typeof OFFLINE_OPTIONS>>['values']> =
    command === 'inject' ? flags(command, args, OFFLINE_OPTIONS).values : flags(command, args, pick(OFFLINE_OPTIONS, ['filename', 'recursive', 'output'])).values;
  if (v.filename === undefined) throw new UsageError(`${command} needs -f FILE, -f DIR or -f - (standard input)`);
  const { runInjectCommand, runUninjectCommand, InputError } = await import('./offline-cli.js');
  const opts = {
    files: v.filename,
    recursive: v.recursive ?? false,
    output: v.output,
    config: v.config,
    namespace: v.namespace,
    noPolicies: v['no-policies'] ?? false,
    noKube: v['no-kube'] ?? false,
    kubeconfig: v.kubeconfig,
    stdin: () => readFileSync(0, 'utf8'),
    err: (line: string) => void process.stderr.write(`${line}\n`),
  };
  try {
    return command === 'inject' ? await runInjectCommand(opts) : await runUninjectCommand(opts);
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`podvpn: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}

/** parseArgs, with errors that say what was wrong and the nearest flag this command has. */
function flags<T extends NonNullable<ParseArgsConfig['options']>>(command: string, args: string[], options: T) {
  try {
    return parseArgs({ args, strict: true, allowPositionals: false, options });
  } catch (err) {
    const message = (err as Error).message;
    const known = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short === undefined ? [] : [`-${o.short}`])]);
    const unknown = /Unknown option '([^']+)'/.exec(message)?.[1];
    if (unknown !== undefined) {
      const near = nearest(unknown, known);
      throw new UsageError(`${command} has no flag ${unknown}${near === undefined ? '' : `; did you mean ${near}?`}`);
    }
    const missing = /Option '(?:-(\w), )?--([\w-]+)[^']*' argument missing/.exec(message);
    if (missing !== null) throw new UsageError(`--${missing[2]} needs a value`);
    const positional = /Unexpected argument '([^']+)'/.exec(message)?.[1];
    if (positional !== undefined) throw new UsageError(`${command} takes no argument "${positional}" (flags only; a file goes after -f)`);
    throw new UsageError(message.split('. ')[0]);
  }
}

/** The closest candidate by edit distance, when it is close enough to be a typo. */
export function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

async function runCerts(args: string[]): Promise<number> {
  const [{ ensureLocalCerts }, { webhookDnsNames }] = await Promise.all([import('./tls/local.js'), import('./tls/names.js')]);
  const { values } = flags('certs', args, {
    out: { type: 'string' },
    'dns-name': { type: 'string', multiple: true },
    force: { type: 'boolean' },
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

async function runExitProbe(args: string[]): Promise<number> {
  const { values } = flags('exit-probe', args, {
    target: { type: 'string', multiple: true },
    interval: { type: 'string' },
    timeout: { type: 'string' },
    listen: { type: 'string' },
    drain: { type: 'string' },
  });
  const [{ ProbeOptionError, resolveProbeOptions }, { EXIT_PROBE_PORT }] = await Promise.all([import('./exits/probe.js'), import('./config/schema.js')]);
  let options;
  try {
    options = resolveProbeOptions({ targets: values.target, interval: values.interval, timeout: values.timeout, listen: values.listen, drain: values.drain }, EXIT_PROBE_PORT);
  } catch (err) {
    if (err instanceof ProbeOptionError) throw new UsageError(err.message);
    throw err;
  }
  const [{ startExitProbe }, { pino }] = await Promise.all([import('./exits/probe-run.js'), import('pino')]);
  const log = pino({ base: { app: 'podvpn-exit-probe', version: VERSION } });
  const probe = await startExitProbe(options, { log: (level, msg, fields) => log[level](fields ?? {}, msg) });
  await new Promise<void>((resolveStop) => {
    // The first signal drains (500 "exit is stopping", then exit); a second one exits at once.
    const onSignal = (): void => {
      process.once('SIGTERM', () => void probe.close());
      process.once('SIGINT', () => void probe.close());
      void probe.stop().then(resolveStop);
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  log.info('exit probe stopped');
  return 0;
}

// Run only as a program, not when imported by tests. npm installs the bin as a symlink (npm i -g,
// npm link, npx: node_modules/.bin/podvpn -> ../podvpn/dist/cli.js), and Node resolves the module's
// own URL through it while process.argv[1] keeps the link: compare the real paths of both.
if (isMainModule(process.argv[1], import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`podvpn: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

export function isMainModule(argv1: string | undefined, moduleUrl: string): boolean {
  if (argv1 === undefined) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
