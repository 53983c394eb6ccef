// The HTTPS edge: fastify parses and bounds the body, admission decides, and every review is logged
// and counted once. It never throws to the socket: every failure maps to a coded reply.

import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import Fastify, { type FastifyError, LogController } from 'fastify';
import type { Logger } from 'pino';
import { type AdmissionPorts, admit, buildResponse, errorResponse, type Outcome, parseReview } from '../admission/review.js';
import { MAX_REVIEW_BYTES, MUTATE_PATH } from '../constants.js';
import { HTTP_ERRORS, HttpError, type HttpErrorCode } from '../errors.js';
import { clip } from '../util/clip.js';
import { withDeadline } from '../util/deadline.js';
import { LINGER_BYTES, LINGER_MS, type ServerLimits, WEBHOOK_LIMITS } from './limits.js';
import type { Metrics } from './metrics.js';
import { TLS_OPTIONS } from '../tls/options.js';

export interface WebhookOptions {
  ports: AdmissionPorts;
  logger: Logger;
  metrics: Metrics;
  /** Without TLS the app is only for in-process tests (fastify inject). */
  tls?: { cert: string; key: string };
  /** A review that is not answered by then is denied: our own deadline, well inside the API server's. */
  reviewDeadlineMs?: number;
  /** Timeouts, connection cap and body budget (src/server/limits.ts); tests shorten them. */
  limits?: Partial<ServerLimits>;
  /** True while shutting down: every reply then says `Connection: close`, so no connection is reused. */
  draining?: () => boolean;
}

/** Our own deadline for a review: inside the webhook's 5 s timeout, beyond the kill-switch apply's 2 s. */
export const REVIEW_DEADLINE_MS = 2500;

const FASTIFY_TO_CODE: Record<string, HttpErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'PODVPN_ERR_BODY_NOT_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PODVPN_ERR_BODY_NOT_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PODVPN_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PODVPN_ERR_CONTENT_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PODVPN_ERR_BODY_NOT_JSON',
};

export function buildWebhookApp(opts: WebhookOptions) {
  const { logger, metrics, ports } = opts;
  const deadlineMs = opts.reviewDeadlineMs ?? REVIEW_DEADLINE_MS;
  const limits: ServerLimits = { ...WEBHOOK_LIMITS, ...opts.limits };
  const app = Fastify({
    ...(opts.tls
      ? {
          https: {
            ...TLS_OPTIONS,
            cert: opts.tls.cert,
            key: opts.tls.key,
            handshakeTimeout: limits.handshakeTimeoutMs,
            headersTimeout: limits.headersTimeoutMs,
            connectionsCheckingInterval: limits.checkIntervalMs,
          },
        }
      : {}),
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_REVIEW_BYTES,
    // A request that reaches an open connection during shutdown is answered (with Connection: close),
    // not refused with a 503 the API server would turn into a failed pod creation.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
  });
  app.server.maxConnections = limits.maxConnections;

  // Bodies held at once, across connections: beyond the budget a request is answered 503 instead of
  // growing the heap towards the memory limit. Counted as bytes arrive, so a slow client holds little.
  let buffered = 0;
  app.addHook('preParsing', async (request, reply, payload) => {
    let held = 0;
    reply.raw.once('close', () => {
      buffered -= held;
      held = 0;
    });
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        held += chunk.length;
        buffered += chunk.length;
        if (buffered > limits.maxBufferedBodyBytes) {
          callback(new HttpError('PODVPN_ERR_BUSY', `more than ${limits.maxBufferedBodyBytes} bytes of requests in flight`));
          return;
        }
        callback(null, chunk);
      },
    });
    payload.on('error', (err) => counter.destroy(err));
    // fastify listens for the counter's error while it reads the body; after that (the client gone,
    // a timeout) an unheard error event would crash the process.
    counter.on('error', () => undefined);
    return payload.pipe(counter);
  });
  app.addHook('onSend', async (_request, reply) => {
    if (opts.draining?.()) void reply.header('connection', 'close');
  });

  // JSON only: fastify also parses text/plain by default, which no API server sends.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler(async (err: FastifyError | HttpError, request, reply) => {
    const code: HttpErrorCode =
      err instanceof HttpError ? err.code : (FASTIFY_TO_CODE[err.code] ?? (err.statusCode === 413 ? 'PODVPN_ERR_BODY_TOO_LARGE' : 'PODVPN_ERR_INTERNAL'));
    const status = HTTP_ERRORS[code].status;
    const message = clip(
      err instanceof HttpError ? err.message : status === 500 ? HTTP_ERRORS[code].message : `${HTTP_ERRORS[code].message}: ${err.message}`,
      1024,
    );
    if (status >= 500 && code !== 'PODVPN_ERR_BUSY') logger.error({ err, code }, 'request failed');
    else logger.warn({ code, detail: message }, 'rejected a request');
    metrics.reviews.inc({ outcome: 'error', reason: code });
    if (!request.raw.complete) {
      // Refused before the body was read (413, 415, 503): read and discard the rest for a while, so
      // a client still writing gets to read the reply instead of a reset; then close the connection.
      await drain(request.raw);
      void reply.header('connection', 'close');
    }
    return reply.code(status).send({ code, message });
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ code: 'PODVPN_ERR_NOT_FOUND', message: HTTP_ERRORS.PODVPN_ERR_NOT_FOUND.message });
  });

  // The path exists, the method does not: 405 with Allow, not 404.
  app.route({ method: ['GET', 'PUT', 'PATCH', 'DELETE'], url: MUTATE_PATH, handler: (_request, reply) => void reply.code(405).header('allow', 'POST').send({ code: 'PODVPN_ERR_METHOD_NOT_ALLOWED', message: `${MUTATE_PATH} takes POST (an AdmissionReview)` }) });

  app.post(MUTATE_PATH, async (request, reply) => {
    const started = process.hrtime.bigint();
    const review = parseReview(request.body);
    const req = review.request;
    let body: object;
    let outcome: Outcome | undefined;
    try {
      outcome = await withDeadline(admit(req, ports), deadlineMs, `no decision within ${deadlineMs} ms`);
      body = buildResponse(review, req.uid, outcome);
    } catch (err) {
      // Fail closed with the uid echoed: the API server applies our answer, not its failurePolicy.
      logger.error({ err, uid: clip(req.uid), namespace: clip(req.namespace), pod: clip(req.name) }, 'review failed');
      body = errorResponse(review, req.uid, `podvpn could not decide on this pod: ${(err as Error).message}`);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const label = outcome?.outcome ?? 'error';
    const reason = outcome === undefined ? 'internal' : 'gateway' in outcome ? outcome.gateway : outcome.reason;
    metrics.reviews.inc({ outcome: label, reason });
    if (outcome?.outcome === 'injected' && outcome.exit !== undefined && !req.dryRun) metrics.exitAssignments.inc({ gateway: outcome.gateway, exit: outcome.exit });
    metrics.duration.observe({ outcome: label }, seconds);
    logger.info(
      {
        // Everything from the request is clipped: a 5 MiB generateName must not become a 5 MiB log line.
        uid: clip(req.uid),
        namespace: clip(req.namespace),
        pod: clip(req.name),
        operation: clip(req.operation),
        dryRun: req.dryRun,
        outcome: label,
        reason,
        ...(outcome?.outcome === 'denied' ? { message: clip(outcome.message, 2048) } : {}),
        ...(outcome && outcome.warnings.length > 0 ? { warnings: outcome.warnings.slice(0, 20).map((w) => clip(w, 1024)) } : {}),
        ms: Math.round(seconds * 1e6) / 1e3,
      },
      'review',
    );
    return reply.code(200).send(body);
  });
  return app;
}

/** Read and discard what is left of a request body, up to LINGER_BYTES or LINGER_MS. */
function drain(req: IncomingMessage): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > LINGER_BYTES) done();
    };
    const timer = setTimeout(done, LINGER_MS);
    // The body may still be piped into the parser's stream, which no longer reads: take it back.
    req.unpipe();
    // A client that resets after the reply is not an error of ours.
    req.on('error', () => undefined);
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.resume();
  });
}
