// Where podvpn's time goes, next to the baseline's: node bench/profile.mjs (after npm run build).
//
// 1. Both servers run under `node --cpu-prof` and take the same load in alternating 2 s bursts
//    (c=10), so whatever else runs on the machine hits both alike. Samples outside the bursts
//    (start-up, shutdown) are dropped; the rest is divided by the requests answered: CPU µs per
//    request, by function and by component.
// 2. Start-up: the runtime dependencies imported in turn in a fresh node, time and RSS after each.
// Profiles stay in bench/results/profile/ (open them in Chrome DevTools for the flame chart).

import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cannon, checkReply, children, log, post, prepare, resultsDir, root, startServer, stopServer } from './lib.mjs';
import { realisticReview } from './review.mjs';

const { values: args } = parseArgs({ options: { bursts: { type: 'string', default: '4' }, burst: { type: 'string', default: '2' }, connections: { type: 'string', default: '10' } } });
const BURSTS = Number(args.bursts);
const BURST_S = Number(args.burst);
const CONNECTIONS = Number(args.connections);
const profDir = join(resultsDir, 'profile');

/** A .cpuprofile cut to the given [start, end] windows (µs, CLOCK_MONOTONIC like the profile's). */
function analyse(file, windows) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inWindow = (t) => windows.some(([a, b]) => t >= a && t <= b);
  const label = (n) => {
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(`${root}/`, '').replace(/^.*node_modules\//, '');
    return `${n.callFrame.functionName || '(anonymous)'} ${url}${url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
  };
  const self = new Map();
  const inclusive = new Map();
  let t = prof.startTime;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    if (!inWindow(t)) continue;
    const dt = prof.timeDeltas[i + 1] ?? 0; // a sample stands for the interval that follows it
    total += dt;
    let id = prof.samples[i];
    self.set(label(nodes.get(id)), (self.get(label(nodes.get(id))) ?? 0) + dt);
    const seen = new Set();
    while (id !== undefined) {
      const k = label(nodes.get(id));
      if (!seen.has(k)) {
        inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
        seen.add(k);
      }
      id = parent.get(id);
    }
  }
  return { self, inclusive, total };
}

/** Components, by a pattern on the inclusive labels (first match of each is taken). */
const COMPONENTS = [
  ['JSON body parse (fastify, secure-json-parse)', /^parse secure-json-parse\//],
  ['reply write: TLS encrypt + socket (writev)', /^writev $/],
  ['reply serialize (fastify)', /^serialize fastify\/lib\/reply\.js/],
  ['podvpn: admit (decide + settings + patch)', /^admit \S*dist\/admission\/review\.js/],
  ['  of which clientSettings (CIDR merge per review)', /^clientSettings \S*dist\/inject\/settings\.js/],
  ['  of which decide', /^decide \S*dist\/inject\/decision\.js/],
  ['  of which injectionPatch', /^injectionPatch \S*dist\/inject\/patch\.js/],
  ['podvpn: buildResponse (patch JSON + base64)', /^buildResponse \S*dist\/admission\/review\.js/],
  ['podvpn: parseReview', /^parseReview \S*dist\/admission\/review\.js/],
  ['podvpn: review log line (pino)', /^(info|LOG) pino\/lib\/|^write pino\/lib\/proto\.js/],
  ['podvpn: metrics (prom-client)', /^(observe|inc) prom-client\//],
  ['garbage collector', /^\(garbage collector\) $/],
  ['idle', /^\(idle\) $/],
];

function perRequestReport(name, a, requests) {
  const us = (v) => v / requests; // profile times are µs
  const lines = [`${name}: ${requests.toLocaleString('en-US')} requests, ${(a.total / 1e6).toFixed(2)} s sampled, ${us(a.total - (a.self.get('(idle) ') ?? 0)).toFixed(0)} µs busy per request`];
  for (const [label, re] of COMPONENTS) {
    const hit = [...a.inclusive].find(([k]) => re.test(k));
    if (hit) lines.push(`  ${label.padEnd(52)} ${us(hit[1]).toFixed(1).padStart(7)} µs/req`);
  }
  lines.push('  top self time:');
  for (const [k, v] of [...a.self].sort((x, y) => y[1] - x[1]).slice(0, 12)) lines.push(`    ${us(v).toFixed(1).padStart(7)} µs/req  ${k}`);
  return { text: lines.join('\n'), components: Object.fromEntries(COMPONENTS.map(([label, re]) => [label.trim(), us([...a.inclusive].find(([k]) => re.test(k))?.[1] ?? 0)])) };
}

/**
 * Start-up: the runtime dependencies imported one after another in one fresh node (as podvpn loads
 * them, each paying only for what the previous ones did not load), then podvpn's own modules; the
 * median of 3 processes per step.
 */
function importCosts() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const deps = Object.keys(pkg.dependencies).sort((a, b) => (a === '@kubernetes/client-node' ? -1 : b === '@kubernetes/client-node' ? 1 : a.localeCompare(b)));
  const steps = [...deps, join(root, 'dist/cli.js')];
  const script =
    `const out = []; for (const d of ${JSON.stringify(steps)}) { const t = performance.now(); await import(d); ` +
    'out.push({ dep: d, ms: performance.now() - t, rssMiB: process.memoryUsage().rss / 1048576 }); } process.stdout.write(JSON.stringify(out))';
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`imports: ${r.stderr}`);
    runs.push(JSON.parse(r.stdout));
  }
  return steps.map((dep, i) => {
    const ms = runs.map((run) => run[i].ms).sort((a, b) => a - b)[1];
    const rssMiB = runs.map((run) => run[i].rssMiB).sort((a, b) => a - b)[1];
    return { dep: dep.endsWith('dist/cli.js') ? "podvpn's own modules (dist/)" : dep, ms, rssMiB };
  });
}

async function main() {
  const review = realisticReview();
  const body = JSON.stringify(review);
  prepare(body);
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(join(profDir, 'podvpn'), { recursive: true });
  mkdirSync(join(profDir, 'baseline'), { recursive: true });
  const logFd = openSync(join(profDir, 'webhook.log'), 'w');
  let podvpn;
  let baseline;
  const windows = { podvpn: [], baseline: [] };
  const requests = { podvpn: 0, baseline: 0 };
  try {
    podvpn = await startServer('podvpn', { stdoutFd: logFd, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(profDir, 'podvpn')] });
    const sample = await post(podvpn.url, body);
    const bad = checkReply(review, sample);
    if (bad.length > 0) throw new Error(`podvpn's reply is wrong: ${bad.join('; ')}`);
    writeFileSync(join(resultsDir, 'baseline-reply.json'), sample.body);
    baseline = await startServer('baseline', { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(profDir, 'baseline')] });
    log('warming up...');
    await cannon(podvpn.url, body, CONNECTIONS, 1);
    await cannon(baseline.url, body, CONNECTIONS, 1);
    for (let i = 0; i < BURSTS; i++) {
      for (const server of i % 2 === 0 ? [podvpn, baseline] : [baseline, podvpn]) {
        const latencies = [];
        const a = Number(process.hrtime.bigint() / 1000n);
        const r = await cannon(server.url, body, CONNECTIONS, BURST_S, latencies);
        const b = Number(process.hrtime.bigint() / 1000n);
        windows[server.kind].push([a, b]);
        requests[server.kind] += latencies.length;
        if (r.non2xx + r.errors + r.mismatches > 0) throw new Error(`${server.kind}: errors under load`);
        log(`burst ${i + 1} ${server.kind}: ${latencies.length} requests`);
      }
    }
  } finally {
    await stopServer(podvpn);
    await stopServer(baseline);
    closeSync(logFd);
  }

  const out = [];
  const json = { windowsUs: windows, requests };
  for (const kind of ['baseline', 'podvpn']) {
    const dir = join(profDir, kind);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error(`no profile written for ${kind}`);
    const report = perRequestReport(kind, analyse(join(dir, file), windows[kind]), requests[kind]);
    out.push(report.text);
    json[kind] = report.components;
  }
  log('import costs...');
  const imports = importCosts();
  json.imports = imports;
  out.push(
    [
      'start-up: runtime dependencies imported in turn in one fresh node (median of 3): time, RSS after',
      ...imports.map((r) => `  ${r.dep.padEnd(32)} ${r.ms.toFixed(0).padStart(5)} ms  RSS ${r.rssMiB.toFixed(1).padStart(6)} MiB`),
      `  ${'total'.padEnd(32)} ${imports.reduce((a, r) => a + r.ms, 0).toFixed(0).padStart(5)} ms`,
    ].join('\n'),
  );
  writeFileSync(join(profDir, 'summary.json'), `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`${out.join('\n\n')}\n\nprofiles in bench/results/profile/\n`);
}

main().catch((err) => {
  log(`profile failed: ${err.stack ?? err}`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
