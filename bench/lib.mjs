// Shared by bench/run.mjs and bench/profile.mjs: paths, the servers' lifecycle, the load generator,
// reply checks and /proc readings.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import jsonpatch from 'fast-json-patch';
import { REVIEW_UID } from './review.mjs';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..');
export const resultsDir = join(here, 'results');
export const certsDir = join(resultsDir, 'certs');
export const logPath = join(resultsDir, 'webhook.log');
/**
 * The webhook under test: the production build. BENCH_PODVPN_CLI points at another build of the
 * same CLI (e.g. a candidate fix compiled elsewhere) to measure it on the same harness.
 */
export const PODVPN_CLI = process.env.BENCH_PODVPN_CLI ?? join(root, 'dist/cli.js');

// The config a production install would carry: explicit cluster ranges and one gateway.
export const CONFIG_YAML = `# podvpn benchmark config: what a production install sets explicitly.
defaultGateway: default
sidecarMode: native
gateways:
  default: {}
cluster:
  domain: cluster.local
  podCIDRs: [10.244.0.0/16]
  serviceCIDRs: [10.96.0.0/12]
  dnsIPs: [10.96.0.10]
  extraAllowedCIDRs: [192.168.1.0/24]
`;

export const children = new Set();

export function log(line) {
  process.stderr.write(`${line}\n`);
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function httpGet(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/**
 * Spawn a server; resolve once GET adminPort/readyz is 200, with the time from spawn to ready.
 * `stdoutFd`: where the server's stdout and stderr go (default: stdout discarded, stderr inherited).
 * `nodeArgs`: flags for node itself (e.g. --cpu-prof).
 */
export async function startServer(kind, { stdoutFd, nodeArgs = [] } = {}) {
  const port = await freePort();
  const adminPort = await freePort();
  const cert = join(certsDir, 'tls.crt');
  const key = join(certsDir, 'tls.key');
  const argv =
    kind === 'podvpn'
      ? [PODVPN_CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`,
        '--tls-cert', cert, '--tls-key', key, '--config', join(resultsDir, 'config.yaml'), '--no-kube', '--shutdown-delay', '0']
      : [join(here, 'baseline-server.mjs'), '--listen', String(port), '--admin-listen', String(adminPort),
        '--tls-cert', cert, '--tls-key', key, '--reply', join(resultsDir, 'baseline-reply.json')];
  const out = stdoutFd ?? 'ignore';
  const t0 = performance.now();
  const spawnedAt = Date.now();
  // NODE_ENV as the image sets it (Dockerfile), for both servers.
  const child = spawn(process.execPath, [...nodeArgs, ...argv], { cwd: root, env: { ...process.env, NODE_ENV: 'production' }, stdio: ['ignore', out, out === 'ignore' ? 'inherit' : out] });
  children.add(child);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = { code, signal };
    children.delete(child);
  });
  for (;;) {
    if (exited !== null) throw new Error(`${kind} exited before ready: ${JSON.stringify(exited)}`);
    if (performance.now() - t0 > 20_000) throw new Error(`${kind} not ready after 20 s`);
    try {
      const r = await httpGet(`http://127.0.0.1:${adminPort}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const readyMs = performance.now() - t0;
  return { kind, child, port, adminPort, readyMs, spawnedAt, url: `https://127.0.0.1:${port}/mutate` };
}

export async function stopServer(server) {
  if (server === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export function procStatus(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
  return { vmHWMMiB: kb('VmHWM') / 1024, vmRSSMiB: kb('VmRSS') / 1024 };
}

/** One verified request over TLS, checking the chain against our CA. */
export function post(url, body) {
  const ca = readFileSync(join(certsDir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = https.request(url, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The full check of one reply: envelope echoed, allowed, a JSONPatch that applies and injects. */
export function checkReply(reviewObj, reply) {
  const problems = [];
  let parsed;
  try {
    parsed = JSON.parse(reply.body);
  } catch {
    return [`reply is not JSON: ${reply.body.slice(0, 200)}`];
  }
  if (reply.status !== 200) problems.push(`HTTP ${reply.status}`);
  if (parsed.apiVersion !== 'admission.k8s.io/v1' || parsed.kind !== 'AdmissionReview') problems.push('envelope not echoed');
  const r = parsed.response ?? {};
  if (r.uid !== reviewObj.request.uid) problems.push('uid not echoed');
  if (r.allowed !== true) problems.push(`not allowed: ${JSON.stringify(r.status)}`);
  if (r.patchType !== 'JSONPatch' || typeof r.patch !== 'string') problems.push('no JSONPatch');
  else {
    try {
      const ops = JSON.parse(Buffer.from(r.patch, 'base64').toString('utf8'));
      const pod = jsonpatch.applyPatch(structuredClone(reviewObj.request.object), ops, true, false).newDocument;
      if (pod.spec.initContainers?.[0]?.name !== 'podvpn-client-init') problems.push('client init is not first');
      if (pod.metadata.labels?.['podvpn.io/routed'] !== 'default') problems.push('no routed label');
      if (!pod.spec.volumes.some((v) => v.name === 'podvpn-client-config')) problems.push('no client volume');
    } catch (err) {
      problems.push(`patch does not apply: ${err.message}`);
    }
  }
  return problems;
}

// Cheap per-response check for every reply under load (same for both servers): 200 is counted by
// autocannon; this catches a 200 that is a denial or an error reply.
export const verifyBody = (body) => body.includes('"allowed":true') && body.includes('"patchType":"JSONPatch"') && body.includes(REVIEW_UID);

export function cannon(url, body, connections, duration, latencies) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        connections,
        pipelining: 1,
        duration,
        timeout: 10,
        verifyBody,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (latencies !== undefined) {
      instance.on('response', (_client, statusCode, _bytes, responseTime) => {
        if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      });
    }
  });
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Busy CPU seconds of the whole machine, from /proc/stat. */
export function machineBusySeconds() {
  const [, ...v] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const n = v.map(Number);
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - n[3] - n[4]) / CLK_TCK;
}

export function cpuSnapshot(pid) {
  const self = process.cpuUsage();
  return { server: cpuSeconds(pid), self: (self.user + self.system) / 1e6, machine: machineBusySeconds() };
}


/**
 * Where podvpn's start-up time goes, from its own log: spawn to the first line ("config loaded":
 * node's boot and every module imported), then to "podvpn webhook serving" (config, TLS, metrics,
 * both listeners). Log times are milliseconds since the epoch, so the split is good to ~1 ms.
 */
export function startPhases(logText, spawnedAt) {
  const lines = logText.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const first = lines.find((l) => l.msg === 'config loaded');
  const serving = lines.find((l) => l.msg === 'podvpn webhook serving');
  if (first === undefined || serving === undefined) return undefined;
  return { bootAndImportsMs: first.time - spawnedAt, configTlsListenMs: serving.time - first.time };
}

/**
 * What both servers need on disk: the config, a serving certificate for 127.0.0.1 made by podvpn's own
 * `certs` command (mounted by path, as in a cluster), the review, and a placeholder baseline reply
 * (replaced by podvpn's real reply before the baseline serves load).
 */
export function prepare(body) {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'review.json'), body);
  writeFileSync(join(resultsDir, 'config.yaml'), CONFIG_YAML);
  writeFileSync(join(resultsDir, 'baseline-reply.json'), '{}');
  rmSync(certsDir, { recursive: true, force: true });
  const certs = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'certs', '--out', certsDir, '--dns-name', 'localhost', '--dns-name', '127.0.0.1'], { encoding: 'utf8' });
  if (certs.status !== 0) throw new Error(`podvpn certs failed: ${certs.stderr}`);
}
