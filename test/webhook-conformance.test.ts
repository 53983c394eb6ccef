// Conformance over real TLS sockets: every reply is one the API server accepts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import fc from 'fast-check';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import pino from 'pino';
import { ANNOTATION_STATUS } from '../src/constants.js';
import { createMetrics } from '../src/server/metrics.js';
import { buildWebhookApp } from '../src/server/webhook.js';
import { generateCA, generateServingCert } from '../src/tls/x509.js';
import { goldenPath } from './golden.js';
import { post, reviewOf, startServer } from './helpers.js';
import { INJECT_TESTDATA, type InjectCase, injectCases, portsFor, type WebhookGolden } from './inject-cases.js';
const SAMPLE = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'examples', 'review.json'), 'utf8'));

let server: Awaited<ReturnType<typeof startServer>>;
let ca: string;

const caseCertificates = await (async () => {
  const authority = await generateCA();
  return { ca: authority.certPem, serving: await generateServingCert(authority, ['localhost']) };
})();
const caseCa = caseCertificates.ca;
const caseApps: Array<ReturnType<typeof buildWebhookApp>> = [];

/** A webhook over TLS whose ports answer with the case's context; its port. */
async function caseServer(c: InjectCase): Promise<number> {
  const app = buildWebhookApp({
    ports: portsFor(c),
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    tls: { cert: caseCertificates.serving.certPem, key: caseCertificates.serving.keyPem },
  });
  caseApps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

beforeAll(async () => {
  server = await startServer();
  ca = readFileSync(join(server.certsDir, 'ca.crt'), 'utf8');
});
afterAll(async () => {
  await server?.shutdown();
  await Promise.all(caseApps.map((app) => app.close()));
});

function checkEnvelope(review: Record<string, any>, reply: Awaited<ReturnType<typeof post>>): Record<string, any> {
  expect(reply.status).toBe(200);
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  const body = reply.json();
  expect(body.apiVersion).toBe('admission.k8s.io/v1');
  expect(body.kind).toBe('AdmissionReview');
  expect(body.response.uid).toBe(review.request.uid);
  expect(typeof body.response.allowed).toBe('boolean');
  expect('patch' in body.response).toBe('patchType' in body.response);
  // The API server passes warnings whole under 4,096 runes in total (see fitWarnings).
  expect([...(body.response.warnings ?? []).join('')].length).toBeLessThan(4096);
  for (const w of body.response.warnings ?? []) {
    expect(w).not.toMatch(/^warning:/i);
  }
  return body.response;
}

describe('AdmissionReview conformance over TLS', () => {
  // Each golden case over TLS, with its own context (namespace, operation, namespace facts, config,
  // ranges) served by a webhook built for it, and the reply held to what the golden says.
  const cases = injectCases().map(({ name, c }) => [name, c, parse(readFileSync(goldenPath(INJECT_TESTDATA, name, 'webhook'), 'utf8')) as WebhookGolden] as const);

  it('covers every outcome the goldens hold', () => {
    const outcomes = new Set(cases.map(([, , golden]) => golden.outcome));
    expect([...outcomes].sort()).toEqual(['denied', 'injected', 'reordered', 'skipped']);
  });

  it.each(cases)('%s: 200, uid echoed, the golden outcome; a patch applies, validates, equals the golden pod, second pass empty', async (_name, c, golden) => {
    const port = await caseServer(c);
    const extra = { namespace: c.namespace ?? 'downloads', operation: c.operation ?? 'CREATE' };
    const review = reviewOf(c.pod, extra);
    const response = checkEnvelope(review, await post(port, caseCa, JSON.stringify(review)));
    if (golden.outcome === 'denied') {
      expect(response.allowed).toBe(false);
      expect(response.patch).toBeUndefined();
      expect(response.status).toEqual({ code: 403, reason: 'Forbidden', message: golden.message });
      return;
    }
    if (golden.outcome === 'skipped') {
      expect(response).toEqual({ uid: review.request.uid, allowed: true });
      return;
    }
    expect(response.allowed).toBe(true);
    expect(response.patchType).toBe('JSONPatch');
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
    expect(jsonpatch.validate(ops, structuredClone(c.pod))).toBeUndefined();
    const patched = jsonpatch.applyPatch(structuredClone(c.pod), ops, true, false).newDocument as any;
    new PodModel(patched as never).validate();
    if (golden.outcome === 'reordered') {
      expect(ops).toEqual(golden.patch);
      expect(patched.spec.initContainers.map((x: { name: string }) => x.name)).toEqual(golden.initContainers);
      const again = reviewOf(patched, extra);
      expect(checkEnvelope(again, await post(port, caseCa, JSON.stringify(again)))).toEqual({ uid: again.request.uid, allowed: true });
      return;
    }
    expect(response.warnings ?? []).toEqual(golden.warnings);
    const shown = structuredClone(patched);
    const status = JSON.parse(shown.metadata.annotations[ANNOTATION_STATUS]);
    status.version = '<version>';
    shown.metadata.annotations[ANNOTATION_STATUS] = JSON.stringify(status);
    expect(shown).toEqual(golden.pod);
    const again = reviewOf(patched, extra);
    const second = checkEnvelope(again, await post(port, caseCa, JSON.stringify(again)));
    expect(second).toEqual({ uid: again.request.uid, allowed: true });
  });

  it('injects the README sample', async () => {
    const response = checkEnvelope(SAMPLE, await post(server.webhookPort, ca, JSON.stringify(SAMPLE)));
    expect(response.allowed).toBe(true);
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Array<{ path: string }>;
    expect(ops.map((o) => o.path)).toContain('/spec/initContainers');
  });

  it('allows anything but a pod CREATE without a patch', async () => {
    for (const extra of [
      { operation: 'UPDATE' },
      { operation: 'DELETE' },
      { resource: { group: '', version: 'v1', resource: 'configmaps' } },
      { subResource: 'status' },
    ]) {
      const review = reviewOf(SAMPLE.request.object, extra);
      const response = checkEnvelope(review, await post(server.webhookPort, ca, JSON.stringify(review)));
      expect(response).toEqual({ uid: review.request.uid, allowed: true });
    }
  });

  it('gives a dry-run review the same patch', async () => {
    const wet = reviewOf(SAMPLE.request.object);
    const dry = reviewOf(SAMPLE.request.object, { dryRun: true });
    const a = checkEnvelope(wet, await post(server.webhookPort, ca, JSON.stringify(wet)));
    const b = checkEnvelope(dry, await post(server.webhookPort, ca, JSON.stringify(dry)));
    expect(b.patch).toBe(a.patch);
  });

  it('denies with a message a user can act on', async () => {
    const review = reviewOf({ ...SAMPLE.request.object, spec: { ...SAMPLE.request.object.spec, hostNetwork: true } });
    const response = checkEnvelope(review, await post(server.webhookPort, ca, JSON.stringify(review)));
    expect(response.allowed).toBe(false);
    expect(response.status.code).toBe(403);
    expect(response.status.message).toMatch(/hostNetwork.*podvpn\.io\/inject=false/);
  });

  it('negotiates TLS 1.3', async () => {
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.webhookPort, ca, servername: 'localhost' }, () => {
        resolve(socket.getProtocol());
        socket.end();
      });
      socket.on('error', reject);
    });
    expect(protocol).toBe('TLSv1.3');
  });
});

describe('malformed requests get a 4xx that says what is wrong', () => {
  const good = JSON.stringify(SAMPLE);
  const cases: Array<[string, string | Buffer, number, RegExp, string?]> = [
    ['not JSON', '{"apiVersion": ', 400, /not valid JSON/],
    ['empty body', '', 400, /not valid JSON/],
    ['a JSON array', '[]', 400, /not an AdmissionReview/],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /no request/],
    ['v1beta1', good.replace('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'), 400, /only admission\.k8s\.io\/v1/],
    ['no uid', JSON.stringify({ ...SAMPLE, request: { ...SAMPLE.request, uid: '' } }), 400, /no uid/],
    ['wrong kind', JSON.stringify({ ...SAMPLE, kind: 'Pod' }), 400, /not an AdmissionReview/],
    ['oversized', Buffer.alloc(7 * 1024 * 1024, 0x20), 413, /larger than/],
    ['wrong content type', good, 415, /application\/json/, 'text/plain'],
  ];
  it.each(cases)('%s', async (_name, body, status, message, contentType) => {
    const reply = await post(server.webhookPort, ca, body, contentType ? { contentType } : {});
    expect(reply.status).toBe(status);
    const json = reply.json();
    expect(json.code).toMatch(/^PODVPN_ERR_/);
    expect(json.message).toMatch(message);
  });

  it('answers 404 elsewhere, and still serves afterwards', async () => {
    const reply = await post(server.webhookPort, ca, good, { path: '/wh/mutating/setgateway' });
    expect(reply.status).toBe(404);
    const after = await post(server.webhookPort, ca, good);
    expect(after.status).toBe(200);
  });
});

describe('property: random and truncated bodies never crash the server', () => {
  it('always gets a well-formed reply', async () => {
    const json = JSON.stringify(SAMPLE);
    const anyBody = fc.oneof(
      fc.string(),
      fc.integer({ min: 0, max: json.length }).map((n) => json.slice(0, n)),
      fc.json(),
      fc.jsonValue().map((v) => JSON.stringify(reviewOf(v))),
      fc
        .record({
          apiVersion: fc.constantFrom('admission.k8s.io/v1', 'admission.k8s.io/v1beta1', 'v1'),
          kind: fc.constantFrom('AdmissionReview', 'Pod'),
          request: fc.option(fc.record({ uid: fc.string(), operation: fc.string(), object: fc.jsonValue(), namespace: fc.string() }), { nil: undefined }),
        })
        .map((r) => JSON.stringify(r)),
      fc.jsonValue().map((spec) => JSON.stringify(reviewOf({ metadata: { name: 'x' }, spec }))),
    );
    await fc.assert(
      fc.asyncProperty(anyBody, async (body) => {
        const reply = await post(server.webhookPort, ca, body);
        expect([200, 400, 413, 415]).toContain(reply.status);
        const parsed = reply.json();
        if (reply.status === 200) {
          expect(parsed.kind).toBe('AdmissionReview');
          expect(typeof parsed.response.uid).toBe('string');
          expect(typeof parsed.response.allowed).toBe('boolean');
        } else {
          expect(parsed.code).toMatch(/^PODVPN_ERR_/);
        }
      }),
      { numRuns: 300 },
    );
    const after = await post(server.webhookPort, ca, JSON.stringify(SAMPLE));
    expect(after.status).toBe(200);
  });
});
