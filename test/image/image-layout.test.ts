// The container image without a Docker engine: the Dockerfile's layout reproduced in a fresh
// directory (compiled dist/, package.json, production dependencies from the lock file only),
// owned by root and read-only to the server, which runs as a non-root user, becomes ready and
// answers an AdmissionReview over TLS.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMISSION_API_VERSION, HEALTHZ_PATH, MUTATE_PATH, READYZ_PATH } from '../../src/constants.js';
import { REPO_ROOT } from '../manifests/render.js';

/** The uid/gid the server runs as: `nobody`, as a stand-in for the image's 65532. */
const UID = 65534;
const isRoot = process.getuid?.() === 0;

/** dist/cli.js exists and is newer than every non-test source file. */
function distIsFresh(): boolean {
  const cli = join(REPO_ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) return false;
  const built = statSync(cli).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) => {
        const p = join(dir, e.name);
        if (e.isDirectory()) return newest(p);
        return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? statSync(p).mtimeMs : 0;
      }),
    );
  return built >= newest(join(REPO_ROOT, 'src'));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

function postReview(port: number, ca: string, body: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        path: MUTATE_PATH,
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
          } catch {
            reject(new Error(`not JSON (${res.statusCode}): ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const review = (uid: string): string =>
  JSON.stringify({
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'downloads',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'qbittorrent-', namespace: 'downloads', labels: { app: 'qbittorrent', 'podvpn.io/inject': 'true' } },
        spec: { containers: [{ name: 'qbittorrent', image: 'lscr.io/linuxserver/qbittorrent:4.6.7' }] },
      },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  });

describe('the Dockerfile', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split('\n').filter((l) => /^FROM\s/.test(l));

  it('builds in stages and ships production dependencies only, on a Node LTS base, as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const major = Number(/ARG NODE_MAJOR=(\d+)/.exec(dockerfile)?.[1]);
    expect(major % 2, 'LTS lines are even').toBe(0);
    expect(major).toBeGreaterThanOrEqual(22);
    const final = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(final).toMatch(/^USER 65532:65532$/m);
    expect(final).not.toMatch(/npm (ci|install)/);
    expect(final).toMatch(/ENTRYPOINT \[.*"dist\/cli\.js"\]/);
  });

  it('runs as the uid the Deployment sets', () => {
    const deployment = readFileSync(join(REPO_ROOT, 'manifests/base/deployment.yaml'), 'utf8');
    expect(deployment).toMatch(/runAsUser: 65532/);
    expect(deployment).toMatch(/readOnlyRootFilesystem: true/);
  });

  it('.dockerignore keeps the context to what the build copies', () => {
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore[ignore.findIndex((l) => !l.startsWith('#'))]).toBe('*');
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)) {
      for (const src of copied[1]!.split(' ')) expect(ignore, src).toContain(`!${src.replace(/\/?$/, src === 'src' ? '/' : '')}`);
    }
  });
});

describe('the image layout, reproduced', () => {
  let work = '';
  let app = '';
  let certs = '';
  let server: ChildProcess | undefined;
  let output = '';
  let ports = { webhook: 0, admin: 0 };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'podvpn-image-'));
    chmodSync(work, 0o755);
    app = join(work, 'app');
    // Stage "build": the compiled dist/. `npm test` has just built the repository's; reuse it when
    // it is newer than every source file, else compile into the fresh directory (never into the
    // repository's dist/, which other tests may be reading).
    if (distIsFresh()) cpSync(join(REPO_ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    else execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')], { cwd: REPO_ROOT, stdio: 'pipe' });
    // Stage "deps": package.json and the lock file, production dependencies only.
    cpSync(join(REPO_ROOT, 'package.json'), join(app, 'package.json'));
    cpSync(join(REPO_ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      stdio: 'pipe',
      env: { ...process.env, NODE_ENV: 'production' },
    });
    rmSync(join(app, 'package-lock.json'));
    // Writable only where the Deployment mounts an emptyDir: the certificate directory.
    certs = join(work, 'certs');
    execFileSync('mkdir', ['-p', certs]);
    if (isRoot) chownSync(certs, UID, UID);

    ports = { webhook: await freePort(), admin: await freePort() };
    const args = [
      join(app, 'dist/cli.js'),
      'serve',
      '--no-kube',
      `--listen=127.0.0.1:${ports.webhook}`,
      `--admin-listen=127.0.0.1:${ports.admin}`,
      `--certs-dir=${certs}`,
      '--shutdown-delay=0',
    ];
    const [cmd, cmdArgs] = isRoot
      ? ['setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, ...args]]
      : [process.execPath, args];
    server = spawn(cmd, cmdArgs, { cwd: app, env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (output += d.toString()));

    const deadline = Date.now() + 20_000;
    while ((await get(ports.admin, READYZ_PATH)) !== 200) {
      if (server.exitCode !== null) throw new Error(`the server exited (${server.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`not ready after 20 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 180_000);

  afterAll(async () => {
    if (server !== undefined && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('holds production dependencies only', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dep)), dep).toBe(true);
    // Nothing the lock file marks dev-only (test runner, compiler, schemas, benchmark tools).
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path.startsWith('node_modules/') && p.dev === true);
    expect(devOnly.length).toBeGreaterThan(0);
    for (const [path] of devOnly) expect(existsSync(join(app, path)), path).toBe(false);
    const modules = readdirSync(join(app, 'node_modules'));
    for (const tool of ['vitest', 'typescript', 'kubernetes-models', 'fast-check', 'autocannon']) expect(modules).not.toContain(tool);
  });

  it.skipIf(!isRoot)('runs as a non-root user that cannot write the application', () => {
    const status = readFileSync(`/proc/${server!.pid}/status`, 'utf8');
    // setpriv execs node in place, so the pid is the server's.
    expect(status).toMatch(new RegExp(`^Uid:\\s+${UID}\\s+${UID}`, 'm'));
    expect(() => execFileSync('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', 'touch', join(app, 'dist', 'x')], { stdio: 'pipe' })).toThrow();
  });

  it('is live and ready on the admin port', async () => {
    expect(await get(ports.admin, HEALTHZ_PATH)).toBe(200);
    expect(await get(ports.admin, READYZ_PATH)).toBe(200);
  });

  it('answers an AdmissionReview over TLS, echoing apiVersion, kind and uid', async () => {
    const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
    const uid = 'f0a3c6a2-7c1e-4d0b-9a53-3c1f7e0b9d11';
    const reply = await postReview(ports.webhook, ca, review(uid));
    expect(reply.status).toBe(200);
    expect(reply.json.apiVersion).toBe(ADMISSION_API_VERSION);
    expect(reply.json.kind).toBe('AdmissionReview');
    expect(reply.json.response.uid).toBe(uid);
    expect(typeof reply.json.response.allowed).toBe('boolean');
  });
});
