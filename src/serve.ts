// `podvpn serve`: assemble config, TLS, the cluster connection and both HTTP servers.

import type { Server as HttpsServer } from 'node:https';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import type { AdmissionPorts } from './admission/review.js';
import type { ClusterRanges } from './cluster/ranges.js';
import { loadConfig } from './config/load.js';
import { type Config, STANDALONE_CLUSTER_DEFAULTS } from './config/schema.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, VERSION } from './constants.js';
import { resolveKubeConfig } from './kube/client.js';
import { type NamespaceCache, startNamespaceCache } from './kube/namespace-cache.js';
import { buildAdminApp } from './server/admin.js';
import { createMetrics } from './server/metrics.js';
import { readTls, type TlsFiles, watchTls } from './server/tls-reload.js';
import { buildWebhookApp } from './server/webhook.js';
import { ensureLocalCerts, webhookDnsNames } from './tls/certs.js';

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

/** Ranges for a webhook with no cluster: config first, kubeadm's defaults for the rest, said in the log. */
export function standaloneRanges(config: Config): ClusterRanges {
  const pick = (configured: string[], fallback: readonly string[]): [string[], string] =>
    configured.length > 0 ? [configured, 'config'] : [[...fallback], 'built-in kubeadm default (standalone)'];
  const [podCIDRs, podSource] = pick(config.cluster.podCIDRs, STANDALONE_CLUSTER_DEFAULTS.podCIDRs);
  const [serviceCIDRs, serviceSource] = pick(config.cluster.serviceCIDRs, STANDALONE_CLUSTER_DEFAULTS.serviceCIDRs);
  const [dnsIPs, dnsSource] = pick(config.cluster.dnsIPs, STANDALONE_CLUSTER_DEFAULTS.dnsIPs);
  return {
    podCIDRs,
    serviceCIDRs,
    extraCIDRs: [...config.cluster.extraAllowedCIDRs],
    dnsIPs,
    sources: { podCIDRs: podSource, serviceCIDRs: serviceSource, dnsIPs: dnsSource },
  };
}

export async function serve(options: ServeOptions, logger?: Logger): Promise<RunningServer> {
  const log = logger ?? pino({ level: options.logLevel, base: { app: 'podvpn', version: VERSION } });
  const config = loadConfig(options.config);
  log.info({ gateways: Object.keys(config.gateways), defaultGateway: config.defaultGateway, sidecarMode: config.sidecarMode }, 'config loaded');

  const tlsFiles = tlsFilesFor(options, log);
  let tls = readTls(tlsFiles);
  const metrics = createMetrics();

  const kube = resolveKubeConfig({ noKube: options.noKube, kubeconfig: options.kubeconfig });
  let namespaces: NamespaceCache | undefined;
  let ranges: ClusterRanges | undefined;
  let ensureKillSwitch: AdmissionPorts['ensureKillSwitch'];
  if (kube === undefined) {
    log.warn(options.noKube ? 'standalone (--no-kube): no cluster, no namespace cache, no kill-switch policy writes' : 'standalone: no cluster configured (no in-cluster account, no kubeconfig); no namespace cache, no kill-switch policy writes');
    ranges = standaloneRanges(config);
    log.info({ ranges }, 'cluster ranges');
    ensureKillSwitch = async () => ({ ok: true });
  } else {
    log.info({ source: kube.source, server: kube.kubeConfig.getCurrentCluster()?.server }, 'connected to a cluster');
    namespaces = await startNamespaceCache(kube.kubeConfig, log);
    ranges = undefined;
    ensureKillSwitch = async () => ({ ok: false, message: 'kill-switch policy management is not available in this build' });
  }

  const ports: AdmissionPorts = {
    config,
    namespaceFacts: (ns) => namespaces?.get(ns),
    ...(namespaces !== undefined ? { fetchNamespaceFacts: (ns: string) => namespaces!.fetch(ns) } : {}),
    ranges: () => ranges,
    ensureKillSwitch,
  };

  let shuttingDown = false;
  const webhook = buildWebhookApp({ ports, logger: log, metrics, tls });
  const admin = buildAdminApp({
    logger: log,
    metrics,
    readiness: {
      notReady: () => [
        ...(shuttingDown ? ['shutting down'] : []),
        ...(namespaces !== undefined && !namespaces.synced() ? ['namespace cache'] : []),
      ],
    },
  });

  const reloader = watchTls(
    tlsFiles,
    tls,
    options.tlsReloadIntervalMs,
    (next) => {
      // setSecureContext swaps the certificate for new handshakes; open connections keep theirs.
      (webhook.server as unknown as HttpsServer).setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
      tls = next;
      metrics.certReloads.inc({ result: 'ok' });
      log.info({ cert: tlsFiles.certPath }, 'serving certificate reloaded');
    },
    (err) => {
      metrics.certReloads.inc({ result: 'error' });
      log.error({ err: err.message, cert: tlsFiles.certPath }, 'serving certificate on disk is unusable; still serving the previous one');
    },
  );

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
      shuttingDown = true;
      log.info({ delaySeconds: options.shutdownDelay }, 'shutting down: unready, draining');
      await new Promise((r) => setTimeout(r, options.shutdownDelay * 1000));
      reloader.stop();
      await webhook.close();
      await namespaces?.stop();
      await admin.close();
      log.info('stopped');
    })();
    return closing;
  };
  return { webhookPort, adminPort, shutdown };
}

function tlsFilesFor(options: ServeOptions, log: Logger): TlsFiles {
  if (options.tlsCert !== undefined || options.tlsKey !== undefined) {
    if (options.tlsCert === undefined || options.tlsKey === undefined) {
      throw new Error('--tls-cert and --tls-key go together: give both, or neither to use a generated certificate');
    }
    return { certPath: options.tlsCert, keyPath: options.tlsKey };
  }
  const dir = resolve(options.certsDir);
  const names = [...webhookDnsNames(), 'localhost', '127.0.0.1'];
  const paths = ensureLocalCerts(dir, names);
  log.info({ ca: paths.caCert, cert: paths.cert, key: paths.key, created: paths.created }, paths.created ? 'generated a CA and serving certificate' : 'reusing the CA and serving certificate');
  return { certPath: paths.cert, keyPath: paths.key };
}

function addressPort(address: ReturnType<import('node:net').Server['address']>): number {
  return typeof address === 'object' && address !== null ? address.port : 0;
}
