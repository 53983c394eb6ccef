// The HTTPS edge: fastify parses and bounds the body, admission decides, and every review is logged
// and counted once. It never throws to the socket: every failure maps to a coded reply.

import Fastify, { type FastifyError, LogController } from 'fastify';
import type { Logger } from 'pino';
import { type AdmissionPorts, admit, buildResponse, errorResponse, type Outcome, parseReview } from '../admission/review.js';
import { MAX_REVIEW_BYTES, MUTATE_PATH } from '../constants.js';
import { HTTP_ERRORS, HttpError, type HttpErrorCode } from '../errors.js';
import { withDeadline } from '../util/deadline.js';
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
  const app = Fastify({
    ...(opts.tls ? { https: { ...TLS_OPTIONS, cert: opts.tls.cert, key: opts.tls.key } } : {}),
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_REVIEW_BYTES,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 65_000,
  });

  // JSON only: fastify also parses text/plain by default, which no API server sends.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err: FastifyError | HttpError, _request, reply) => {
    const code: HttpErrorCode =
      err instanceof HttpError ? err.code : (FASTIFY_TO_CODE[err.code] ?? (err.statusCode === 413 ? 'PODVPN_ERR_BODY_TOO_LARGE' : 'PODVPN_ERR_INTERNAL'));
    const status = HTTP_ERRORS[code].status;
    const message = err instanceof HttpError ? err.message : status === 500 ? HTTP_ERRORS[code].message : `${HTTP_ERRORS[code].message}: ${err.message}`;
    if (status >= 500) logger.error({ err, code }, 'request failed');
    else logger.warn({ code, detail: message }, 'rejected a malformed request');
    metrics.reviews.inc({ outcome: 'error', reason: code });
    void reply.code(status).send({ code, message });
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ code: 'PODVPN_ERR_NOT_FOUND', message: HTTP_ERRORS.PODVPN_ERR_NOT_FOUND.message });
  });

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
      logger.error({ err, uid: req.uid, namespace: req.namespace, pod: req.name }, 'review failed');
      body = errorResponse(review, req.uid, `podvpn could not decide on this pod: ${(err as Error).message}`);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const label = outcome?.outcome ?? 'error';
    const reason = outcome === undefined ? 'internal' : outcome.outcome === 'injected' ? outcome.gateway : outcome.reason;
    metrics.reviews.inc({ outcome: label, reason });
    metrics.duration.observe({ outcome: label }, seconds);
    logger.info(
      {
        uid: req.uid,
        namespace: req.namespace,
        pod: req.name,
        operation: req.operation,
        dryRun: req.dryRun,
        outcome: label,
        reason,
        ...(outcome?.outcome === 'denied' ? { message: outcome.message } : {}),
        ...(outcome && outcome.warnings.length > 0 ? { warnings: outcome.warnings } : {}),
        ms: Math.round(seconds * 1e6) / 1e3,
      },
      'review',
    );
    return reply.code(200).send(body);
  });
  return app;
}
