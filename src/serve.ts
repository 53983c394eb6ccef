// `podvpn serve`: assemble config, TLS, the cluster connection and both HTTP servers.

import { Server as HttpsServer } from 'node:https';
import { Server as NetServer } from 'node:net';
import pino, { type Logger } from 'pino';
import { gatewayMTUProblem } from './cluster/pod-mtu.js';
import { loadConfig } from './config/load.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, SYSTEM_NAMESPACE, VERSION } from './constants.js';
import { findKubeSource, loadKubeConfig } from './kube/client.js';
import { buildAdminApp } from './server/admin.js';
import { type ServerLimits, SHUTDOWN_IN_FLIGHT_MS, SHUTDOWN_SETTLE_MS } from './server/limits.js';
import { createMetrics } from './server/metrics.js';
import { buildWebhookApp } from './server/webhook.js';
import { connectedRuntime, standaloneRuntime } from './runtime.js';
import { TLS_OPTIONS } from './tls/options.js';
import { startCertificateSource } from './tls/select.js';

export interface ServeOptions {
  listen: string;
  adminListen: string;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  certsDir: string;
  /** Config files, layered in order (src/config/load.ts). */
  config?: string | readonly string[] | undefined;
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
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export async function serve(options: ServeOptions, logger?: Logger): Promise<RunningServer> {
  const log = logger ?? pino({ level: options.logLevel, base: { app: 'podvpn', version: VERSION } });
  const config = loadConfig(options.config);
  log.info({ gateways: Object.keys(config.gateways), defaultGateway: config.defaultGateway, sidecarMode: config.sidecarMode }, 'config loaded');

  const metrics = createMetrics();
  const kubeSource = findKubeSource({ noKube: options.noKube, kubeconfig: options.kubeconfig });
  const kube = kubeSource === undefined ? undefined : await loadKubeConfig(kubeSource);
  const runtime = kube === undefined ? standaloneRuntime(config, log, options.noKube) : await connectedRuntime(kube, config, log, metrics);
  const ports = runtime.ports;

  metrics.observePodMTU(() => {
    const podMTU = ports.ranges()?.podMTU;
    return {
      podMTU: podMTU?.value,
      gateways: Object.values(config.gateways).map((g) => ({ name: g.name, tooLarge: gatewayMTUProblem(g, podMTU) !== undefined })),
    };
  });

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
  const tlsServer = webhook.server;
  if (!(tlsServer instanceof HttpsServer)) throw new Error('the webhook server was built without TLS');
  certificates.onChange(({ cert, key }) => {
    // setSecureContext swaps the certificate for new handshakes; open connections keep theirs.
    tlsServer.setSecureContext({ ...TLS_OPTIONS, cert, key });
    metrics.certReloads.inc({ result: 'ok' });
    log.info('serving certificate replaced');
  });
  const admin = buildAdminApp({
    logger: log,
    metrics,
    ...(options.limits?.admin ? { limits: options.limits.admin } : {}),
    readiness: {
      notReady: () => [...(shuttingDown ? ['shutting down'] : []), ...runtime.notReady()],
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
      await runtime.stop();
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
