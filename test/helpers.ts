// Test helpers: a real webhook process-in-process on random loopback ports, and a TLS client.

import { request as httpsRequest } from 'node:https';
import pino from 'pino';
import { DEFAULT_SERVE_OPTIONS, type RunningServer, type ServeOptions, serve } from '../src/serve.js';
import { tempDir } from './temp.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DoubleMutatingWebhook } from './kube-api-double/admission.js';

export { tempDir } from './temp.js';

export async function startServer(
  overrides: Partial<ServeOptions> = {},
  logger: pino.Logger = pino({ level: 'silent' }),
): Promise<RunningServer & { certsDir: string }> {
  const certsDir = overrides.certsDir ?? tempDir();
  const server = await serve(
    {
      ...DEFAULT_SERVE_OPTIONS,
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      noKube: true,
      shutdownDelay: 0,
      certsDir,
      ...overrides,
    },
    logger,
  );
  return { ...server, certsDir };
}

/** podvpn's namespace entry as the API double's admission chain calls it: the running server, its CA. */
export function podvpnChainWebhook(server: RunningServer & { certsDir: string }): DoubleMutatingWebhook {
  return {
    name: 'namespace.inject.podvpn.io',
    reinvocationPolicy: 'IfNeeded',
    url: `https://127.0.0.1:${server.webhookPort}/mutate`,
    caBundle: readFileSync(join(server.certsDir, 'ca.crt'), 'utf8'),
  };
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json(): any;
}

export function post(
  port: number,
  ca: string,
  body: string | Buffer,
  opts: { path?: string; contentType?: string; agent?: false; servername?: string } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: opts.servername ?? 'localhost',
        port,
        path: opts.path ?? '/mutate',
        method: 'POST',
        ca,
        agent: opts.agent,
        headers: { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export function reviewOf(object: unknown, extra: Record<string, unknown> = {}): any {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: crypto.randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'downloads',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      oldObject: null,
      dryRun: false,
      ...extra,
    },
  };
}
