// `podvpn serve`: assemble config, TLS, the cluster connection and both HTTP servers.

import type { Server as HttpsServer } from 'node:https';
import { Server as NetServer } from 'node:net';
import pino, { type Logger } from 'pino';
import type { AdmissionPorts } from './admission/review.js';
import { gatewayMTUProblem } from './cluster/pod-mtu.js';
import { assertRangesSafe, standaloneRanges } from './cluster/ranges.js';
import { loadConfig } from './config/load.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, SYSTEM_NAMESPACE, VERSION } from './constants.js';
import { findKubeSource, loadKubeConfig } from './kube/client.js';
import type { NamespaceCache } from './kube/namespace-cache.js';
import { buildAdminApp } from './server/admin.js';
import { type ServerLimits, SHUTDOWN_IN_FLIGHT_MS, SHUTDOWN_SETTLE_MS } from './server/limits.js';
import { createMetrics } from './server/metrics.js';
import { buildWebhookApp } from './server/webhook.js';
import type { KillSwitch } from './policy/guard.js';
import type { KillSwitchGuard } from './policy/guard-types.js';
import { StandaloneKillSwitchGuard } from './policy/standalone-guard.js';
import { TLS_OPTIONS } from './tls/options.js';
import { startCertificateSource } from './tls/select.js';

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

  metrics.observePodMTU(() => {
    const podMTU = guard.ranges()?.podMTU;
    return {
      podMTU: podMTU?.value,
      gateways: Object.values(config.gateways).map((g) => ({ name: g.name, tooLarge: gatewayMTUProblem(g, podMTU) !== undefined })),
    };
  });

  const ports: AdmissionPorts = {
    config,
    namespaceFacts: (ns) => namespaces?.get(ns),
    ...(namespaces !== undefined ? { fetchNamespaceFacts: (ns: string) => namespaces.fetch(ns) } : {}),
    ranges: () => guard.ranges(),
    rangesProblem: () => killSwitch?.guard.problem(),
    ensureKillSwitch: (ns, gw, opts) => guard.ensure(ns, gw, opts),
  };

  const listen = parseListen(options.listen);
  const certificates = await startCertificateSource({
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    certsDir: options.certsDir,
    reloadIntervalMs: options.tlsReloadIntervalMs,
    kube,
    selfManagedCerts: options.selfManagedCerts === true,
    listenHost: listen.host,
    namespace: process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE,
    logger: log,
    onFileError: (err) => {
      metrics.certReloads.inc({ result: 'error' });
      log.error({ err: err.message }, 'serving certificate on disk is unusable; still serving the previous one');
    },
  });

  let shuttingDown = false;
  const webhook = buildWebhookApp({
    ports,
    logger: log,
    metrics,
    tls: certificates.current(),
    draining: () => shuttingDown,
    ...(options.limits?.webhook ? { limits: options.limits.webhook } : {}),
  });
  certificates.onChange(({ cert, key }) => {
    // setSecureContext swaps the certificate for new handshakes; open connections keep theirs.
    (webhook.server as unknown as HttpsServer).setSecureContext({ ...TLS_OPTIONS, cert, key });
    metrics.certReloads.inc({ result: 'ok' });
    log.info('serving certificate replaced');
  });
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
      certificates.stop();
      // Stop accepting first, but leave open connections alone for a moment: one accepted just now
      // has not sent its request yet, and Node's close() would count it idle and reset it under the
      // request. Then close the idle ones; a request in flight gets its reply (which closes its
      // connection), and whatever is still open after SHUTDOWN_IN_FLIGHT_MS (a stuck or slow
      // client) is cut, so the process exits well inside the pod's grace period.
      const inFlightMs = options.limits?.shutdownInFlightMs ?? SHUTDOWN_IN_FLIGHT_MS;
      NetServer.prototype.close.call(webhook.server);
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

function addressPort(address: ReturnType<NetServer['address']>): number {
  return typeof address === 'object' && address !== null ? address.port : 0;
}
