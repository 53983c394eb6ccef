// Plain-HTTP admin port: liveness, readiness and Prometheus metrics. Kept off the webhook port so
// probes and scrapes never queue behind admission traffic or need the webhook's certificate.

import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { HEALTHZ_PATH, METRICS_PATH, READYZ_PATH } from '../constants.js';
import { ADMIN_LIMITS, type ServerLimits } from './limits.js';
import type { Metrics } from './metrics.js';

export interface Readiness {
  /** Empty when ready; otherwise what is still missing, for the probe's body and the log. */
  notReady(): string[];
}

export function buildAdminApp(opts: { logger: Logger; metrics: Metrics; readiness: Readiness; limits?: Partial<ServerLimits> }) {
  const limits: ServerLimits = { ...ADMIN_LIMITS, ...opts.limits };
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
    // Probes and scrapes are GETs: no body worth buffering, and no client worth waiting for.
    bodyLimit: limits.maxBufferedBodyBytes,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  });
  app.server.maxConnections = limits.maxConnections;
  app.get(HEALTHZ_PATH, async () => ({ status: 'ok' }));
  app.get(READYZ_PATH, async (_request, reply) => {
    const missing = opts.readiness.notReady();
    if (missing.length > 0) return reply.code(503).send({ status: 'not ready', waitingFor: missing });
    return { status: 'ready' };
  });
  app.get(METRICS_PATH, async (_request, reply) => {
    const text = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(text);
  });
  return app;
}
