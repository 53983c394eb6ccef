// `podvpn serve`: assemble config, TLS, the cluster connection and both HTTP servers.

import type { Server as HttpsServer } from 'node:https';
import { Server as NetServer } from 'node:net';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import type { AdmissionPorts } from './admission/review.js';
import { assertRangesSafe, standaloneRanges } from './cluster/ranges.js';
import { loadConfig } from './config/load.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, SYSTEM_NAMESPACE, VERSION } from './constants.js';
import { findKubeSource, loadKubeConfig } from './kube/client.js';
import type { NamespaceCache } from './kube/namespace-cache.js';
import { buildAdminApp } from './server/admin.js';
import { type ServerLimits, SHUTDOWN_IN_FLIGHT_MS, SHUTDOWN_SETTLE_MS } from './server/limits.js';
import { createMetrics } from './server/metrics.js';
import { readTls, TLS_OPTIONS, type TlsFiles, watchTls } from './server/tls-reload.js';
import { buildWebhookApp } from './server/webhook.js';
import type { KillSwitch, KillSwitchGuard } from './policy/guard.js';
import { StandaloneKillSwitchGuard } from './policy/standalone-guard.js';
import type { SelfManagedCerts } from './tls/self-managed.js';

export interface ServeOptions {
  listen: string;
  adminListen: string;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  certsDir: string;
  config?: string | undefined;
  noKube: boolean;
  kubeconfig?: string | undefined;
  logLevel: string;
  /** Seconds between turning unready and closing, so endpoints drain before connections stop. */
  shutdownDelay: number;
  tlsReloadIntervalMs: number;
  /** Keep the certificate in a Secret and the webhook's caBundle current even outside a cluster. */
  selfManagedCerts?: boolean;
  /** Server limits (src/server/limits.ts); tests shorten them. */
  limits?: { webhook?: Partial<ServerLimits>; admin?: Partial<ServerLimits>; shutdownInFlightMs?: number };
}

export const DEFAULT_SERVE_OPTIONS: ServeOptions = {
  listen: DEFAULT_LISTEN,
  adminListen: DEFAULT_ADMIN_LISTEN,
  certsDir: 'certs',
  noKube: false,
  logLevel: 'info',
  shutdownDelay: 5,
  tlsReloadIntervalMs: 10_000,
};

export interface RunningServer {
  webhookPort: number;
  adminPort: number;
  shutdown(): Promise<void>;
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`listen address "${value}" must be HOST:PORT, e.g. 0.0.0.0:8443 or [::]:8443`);
  }
  return { host: match[1] ?? (match[2] === '' ? '0.0.0.0' : match[2]!), port };
}

export async function serve(options: ServeOptions, logger?: Logger): Promise<RunningServer> {
  const log = logger ?? pino({ level: options.logLevel, base: { app: 'podvpn', version: VERSION } });
  const config = loadConfig(options.config);
  log.info({ gateways: Object.keys(config.gateways), defaultGateway: config.defaultGateway, sidecarMode: config.sidecarMode }, 'config loaded');

  const metrics = createMetrics();
  // The cluster side (client-node and everything on it) is loaded only when there is a cluster.
  const kubeSource = findKubeSource({ noKube: options.noKube, kubeconfig: options.kubeconfig });
  const kube = kubeSource === undefined ? undefined : await loadKubeConfig(kubeSource);
  let namespaces: NamespaceCache | undefined;
  let killSwitch: KillSwitch | undefined;
  let guard: KillSwitchGuard;
  if (kube === undefined) {
    log.warn(
      options.noKube
        ? 'standalone (--no-kube): no cluster, no namespace cache, no kill-switch policy writes'
        : 'standalone: no cluster configured (no in-cluster account, no kubeconfig); no namespace cache, no kill-switch policy writes',
    );
    const ranges = standaloneRanges(config.cluster);
    // Refuse to start on a range that would open the kill switch, unless forced.
    assertRangesSafe(ranges, { allowPublicRanges: config.cluster.allowPublicRanges });
    log.info({ ranges }, 'cluster ranges');
    guard = new StandaloneKillSwitchGuard(config);
  } else {
    log.info({ source: kube.source, server: kube.kubeConfig.getCurrentCluster()?.server }, 'connected to a cluster');
    const [{ startNamespaceCache }, { startKillSwitch }] = await Promise.all([
      import('./kube/namespace-cache.js'),
      import('./policy/guard.js'),
    ]);
    namespaces = await startNamespaceCache(kube.kubeConfig, log);
    killSwitch = await startKillSwitch(kube.kubeConfig, config, log, {
      onCoverage: (r) => {
        metrics.nodeRangesNotInForce.set(r.notInForce.length);
        metrics.routedPodsMissingNodeRanges.set(r.podsMissing);
      },
    });
    guard = killSwitch.guard;
  }

  const ports: AdmissionPorts = {
    config,
    namespaceFacts: (ns) => namespaces?.get(ns),
    ...(namespaces !== undefined ? { fetchNamespaceFacts: (ns: string) => namespaces!.fetch(ns) } : {}),
    ranges: () => guard.ranges(),
    rangesProblem: () => killSwitch?.guard.problem(),
    ensureKillSwitch: (ns, gw, opts) => guard.ensure(ns, gw, opts),
  };

  // The serving certificate: files given (reloaded when they change), a Secret shared by every replica
  // (in a cluster), or a CA and certificate generated under certs/ (standalone).
  let swapCertificate: (cert: string, key: string) => void = () => undefined;
  const onNewCertificate = (cert: string, key: string): void => swapCertificate(cert, key);
  let stopCertificates: () => void;
  let initial: { cert: string; key: string };
  let selfManaged: SelfManagedCerts | undefined;
  if (kube !== undefined && options.tlsCert === undefined && options.tlsKey === undefined && (kube.inCluster || options.selfManagedCerts)) {
    let first: { cert: string; key: string } | undefined;
    const { startSelfManagedCerts } = await import('./tls/self-managed.js');
    selfManaged = await startSelfManagedCerts({
      kubeConfig: kube.kubeConfig,
      logger: log,
      namespace: process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE,
      onCertificate: (cert, key) => {
        if (first === undefined) first = { cert, key };
        else onNewCertificate(cert, key);
      },
    });
    initial = first!;
    stopCertificates = () => selfManaged!.stop();
  } else {
    const tlsFiles = await tlsFilesFor(options, log);
    const material = readTls(tlsFiles);
    initial = material;
    const reloader = watchTls(
      tlsFiles,
      material,
      options.tlsReloadIntervalMs,
      (next) => onNewCertificate(next.cert, next.key),
      (err) => {
        metrics.certReloads.inc({ result: 'error' });
        log.error({ err: err.message, cert: tlsFiles.certPath }, 'serving certificate on disk is unusable; still serving the previous one');
      },
    );
    stopCertificates = () => reloader.stop();
  }

  let shuttingDown = false;
  const webhook = buildWebhookApp({
    ports,
    logger: log,
    metrics,
    tls: initial,
    draining: () => shuttingDown,
    ...(options.limits?.webhook ? { limits: options.limits.webhook } : {}),
  });
  swapCertificate = (cert, key) => {
    // setSecureContext swaps the certificate for new handshakes; open connections keep theirs.
    (webhook.server as unknown as HttpsServer).setSecureContext({ ...TLS_OPTIONS, cert, key });
    metrics.certReloads.inc({ result: 'ok' });
    log.info('serving certificate replaced');
  };
  const admin = buildAdminApp({
    logger: log,
    metrics,
    ...(options.limits?.admin ? { limits: options.limits.admin } : {}),
    readiness: {
      notReady: () => [
        ...(shuttingDown ? ['shutting down'] : []),
        ...(namespaces !== undefined && !namespaces.synced() ? ['namespace cache'] : []),
      ],
    },
  });

  const listen = parseListen(options.listen);
  const adminListen = parseListen(options.adminListen);
  await webhook.listen({ host: listen.host, port: listen.port });
  await admin.listen({ host: adminListen.host, port: adminListen.port });
  const webhookPort = addressPort(webhook.server.address());
  const adminPort = addressPort(admin.server.address());
  log.info({ webhook: `https://${listen.host}:${webhookPort}`, admin: `http://${adminListen.host}:${adminPort}` }, 'podvpn webhook serving');

  let closing: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    closing ??= (async () => {
      // Unready, and every reply now says Connection: close: a client's next request opens a new
      // connection (to a ready endpoint once the Service has dropped this one), and no request races
      // a connection being closed under it.
      shuttingDown = true;
      log.info({ delaySeconds: options.shutdownDelay }, 'shutting down: unready, draining');
      await new Promise((r) => setTimeout(r, options.shutdownDelay * 1000));
      stopCertificates();
      // Stop accepting first, but leave open connections alone for a moment: one accepted just now
      // has not sent its request yet, and Node's close() would count it idle and reset it under the
      // request. Then close the idle ones; a request in flight gets its reply (which closes its
      // connection), and whatever is still open after SHUTDOWN_IN_FLIGHT_MS (a stuck or slow
      // client) is cut, so the process exits well inside the pod's grace period.
      const inFlightMs = options.limits?.shutdownInFlightMs ?? SHUTDOWN_IN_FLIGHT_MS;
      Reflect.apply(NetServer.prototype.close, webhook.server, []);
      await new Promise((r) => setTimeout(r, Math.min(SHUTDOWN_SETTLE_MS, inFlightMs)));
      const force = setTimeout(() => {
        log.warn('closing connections still open after the in-flight grace');
        webhook.server.closeAllConnections();
      }, inFlightMs);
      await webhook.close();
      clearTimeout(force);
      await namespaces?.stop();
      await killSwitch?.stop();
      await admin.close();
      log.info('stopped');
    })();
    return closing;
  };
  return { webhookPort, adminPort, shutdown };
}

async function tlsFilesFor(options: ServeOptions, log: Logger): Promise<TlsFiles> {
  if (options.tlsCert !== undefined || options.tlsKey !== undefined) {
    if (options.tlsCert === undefined || options.tlsKey === undefined) {
      throw new Error('--tls-cert and --tls-key go together: give both, or neither to use a generated certificate');
    }
    return { certPath: options.tlsCert, keyPath: options.tlsKey };
  }
  const { ensureLocalCerts, webhookDnsNames } = await import('./tls/certs.js');
  const dir = resolve(options.certsDir);
  const names = [...webhookDnsNames(), 'localhost', '127.0.0.1'];
  const paths = ensureLocalCerts(dir, names);
  log.info({ ca: paths.caCert, cert: paths.cert, key: paths.key, created: paths.created }, paths.created ? 'generated a CA and serving certificate' : 'reusing the CA and serving certificate');
  return { certPath: paths.cert, keyPath: paths.key };
}

function addressPort(address: ReturnType<import('node:net').Server['address']>): number {
  return typeof address === 'object' && address !== null ? address.port : 0;
}
