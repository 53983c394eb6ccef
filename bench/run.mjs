// npm run bench: podvpn's production server against a bare fastify TLS server, side by side, on
// loopback with keep-alive; then start-up time, peak RSS and the cost growth of the pure core.
//
// Options (all optional): --duration S (per cell, default 3), --warmup S (default 0.5, after a 2 s
// warm-up of each server at the start), --rounds N (default 3; cells alternate which server goes
// first; the ratio is the median of the rounds' paired ratios), --connections 1,10,50, --starts N (cold
// starts timed, default 5). Writes bench/results/latest.json and bench/RESULTS.md.
//
// The webhook runs as production does: `node dist/cli.js serve` with a config file, --no-kube, at the
// default log level (info: one JSON line per review). Its stdout and stderr go to a file,
// bench/results/webhook.log, whose review lines are counted against the requests sent and then
// removed (it grows to tens of MB); its first lines are kept in latest.json.
//
// BENCH_PODVPN_CLI=/path/to/dist/cli.js measures another build of the CLI (a candidate fix) on the
// same harness; bench/RESULTS.md is then left alone. bench/profile.mjs says where the time goes.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  cannon,
  certsDir,
  checkReply,
  children,
  cpuSnapshot,
  here,
  httpGet,
  log,
  logPath,
  percentile,
  post,
  prepare,
  procStatus,
  PODVPN_CLI,
  resultsDir,
  root,
  startPhases,
  startServer,
  stopServer,
} from './lib.mjs';
import { growthReview, realisticReview } from './review.mjs';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '0.5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '1,10,50' },
    starts: { type: 'string', default: '5' },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const ROUNDS = Number(args.rounds);
const CONNECTIONS = args.connections.split(',').map(Number);
const STARTS = Number(args.starts);

const TARGETS = {
  throughputRatioAt10: 0.8,
  p99At50Ms: 10,
  peakRssMiB: 100,
  readyMs: 1000,
  containers1000Ms: 5,
};

async function measureCell(server, body, connections) {
  await cannon(server.url, body, connections, WARMUP);
  const latencies = [];
  const before = cpuSnapshot(server.child.pid);
  const t0 = performance.now();
  const result = await cannon(server.url, body, connections, DURATION, latencies);
  const seconds = (performance.now() - t0) / 1000;
  const after = cpuSnapshot(server.child.pid);
  const serverCpu = after.server - before.server;
  const selfCpu = after.self - before.self;
  return {
    seconds,
    serverCpu,
    // Other processes on the machine (not the server, not this load generator): contention.
    backgroundCpu: Math.max(0, after.machine - before.machine - serverCpu - selfCpu),
    ok: latencies.length,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    latencies,
  };
}

function pool(parts) {
  const latencies = Float64Array.from(parts.flatMap((p) => p.latencies)).sort();
  const seconds = parts.reduce((s, p) => s + p.seconds, 0);
  const sum = (k) => parts.reduce((s, p) => s + p[k], 0);
  const ok = sum('ok');
  return {
    reqPerSec: ok / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    p999Ms: percentile(latencies, 99.9),
    maxMs: latencies.at(-1),
    samples: latencies.length,
    perRound: parts.map((p) => p.ok / p.seconds),
    // Server CPU per answered request: robust to the machine being shared, unlike req/s.
    cpuUsPerRequest: (sum('serverCpu') / ok) * 1e6,
    backgroundCores: sum('backgroundCpu') / seconds,
    errors: { non2xx: sum('non2xx'), connectionErrors: sum('errors'), timeouts: sum('timeouts'), badReplies: sum('mismatches') },
  };
}

function metricValue(text, name, labels) {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    if (labels !== undefined && !(m[2] ?? '').includes(labels)) continue;
    return Number(m[3]);
  }
  return undefined;
}

function machine() {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const nproc = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || os.availableParallelism();
  const fastify = JSON.parse(readFileSync(join(root, 'node_modules/fastify/package.json'), 'utf8')).version;
  const ac = JSON.parse(readFileSync(join(root, 'node_modules/autocannon/package.json'), 'utf8')).version;
  let commit = 'unknown';
  try {
    commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim() || commit;
    // The build is of the working tree: say when src/ differs from the commit.
    if (spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).stdout.trim() !== '') commit += ' + uncommitted src/ changes';
  } catch {
    // not a git checkout
  }
  return { nproc, cpu, node: process.version, platform: `${os.type()} ${os.release()} ${os.arch()}`, totalMemMiB: Math.round(os.totalmem() / 2 ** 20), fastify, autocannon: ac, commit };
}

const median = (xs) => percentile(xs.filter(Number.isFinite).sort((a, b) => a - b), 50);
const f = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const fi = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const mark = (ok) => (ok ? 'met' : 'MISSED');

function renderTables(r) {
  const lines = [];
  lines.push(`Load: ${r.review.bytes.toLocaleString('en-US')}-byte AdmissionReview (controller-created pod, managedFields, 1 init + 2 containers, 3 volumes), reply ${r.review.replyBytes.toLocaleString('en-US')} bytes; TLS ${r.tls.protocol} ${r.tls.cipher}, keep-alive, 127.0.0.1; ${r.settings.rounds} rounds x ${r.settings.durationS} s per cell after ${r.settings.warmupS} s warm-up, servers alternating; webhook log at info to a file.`);
  lines.push('');
  lines.push('| conc. | baseline req/s | podvpn req/s | ratio (median of rounds) | baseline p50 / p99 ms | podvpn p50 / p99 ms | podvpn p99.9 ms | server CPU µs/req (baseline / podvpn) | errors (podvpn / baseline) | other load (cores) |');
  lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const cell of r.load) {
    const e = (x) => x.errors.non2xx + x.errors.connectionErrors + x.errors.timeouts + x.errors.badReplies;
    lines.push(`| ${cell.connections} | ${fi(cell.baseline.reqPerSec)} | ${fi(cell.podvpn.reqPerSec)} | ${f(cell.ratio, 2)} | ${f(cell.baseline.p50Ms, 2)} / ${f(cell.baseline.p99Ms, 2)} | ${f(cell.podvpn.p50Ms, 2)} / ${f(cell.podvpn.p99Ms, 2)} | ${f(cell.podvpn.p999Ms, 2)} | ${fi(cell.baseline.cpuUsPerRequest)} / ${fi(cell.podvpn.cpuUsPerRequest)} | ${e(cell.podvpn)} / ${e(cell.baseline)} | ${f((cell.podvpn.backgroundCores + cell.baseline.backgroundCores) / 2, 2)} |`);
  }
  lines.push('');
  lines.push('| cost growth (in process) | review size | decide + patch ms | JSON.parse ms | whole review ms (parse → reply) | over TLS, c=1, p50 ms |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const c of r.growth.cases) {
    const label = c.envVars > 0 ? `1 container, ${c.envVars.toLocaleString('en-US')} env vars` : `${c.containers.toLocaleString('en-US')} container${c.containers === 1 ? '' : 's'}`;
    const wire = r.bigReviews.find((b) => b.id === c.id);
    lines.push(`| ${label} | ${(c.reviewBytes / 1024).toFixed(0)} KiB | ${f(c.coreMs, 3)} | ${f(c.parseMs, 2)} | ${f(c.reviewMs, 2)} | ${wire ? f(wire.p50Ms, 2) : 'n/a'} |`);
  }
  const lin = r.growth.linearity;
  lines.push('');
  lines.push(`Growth per container (1→100 vs 100→1,000): decide + patch ${f(lin.core.perContainerMs1to100 * 1000, 2)} vs ${f(lin.core.perContainerMs100to1000 * 1000, 2)} µs: ${lin.core.verdict}; whole review ${f(lin.review.perContainerMs1to100 * 1000, 1)} vs ${f(lin.review.perContainerMs100to1000 * 1000, 1)} µs (ratio ${f(lin.review.ratio, 2)}): ${lin.review.verdict}. Per env var: whole review ${f(r.growth.envPerVarMs.review * 1000, 2)} µs.`);
  lines.push('');
  lines.push('| target | measured | |');
  lines.push('|---|---:|---|');
  for (const t of r.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.context ? '' : mark(t.met)} |`);
  return lines.join('\n');
}

async function main() {
  const started = new Date();
  const review = realisticReview();
  const body = JSON.stringify(review);
  prepare(body);

  // Cold starts: spawn to /readyz 200, a fresh process each time; podvpn's log splits the time.
  log(`timing ${STARTS} cold starts of each server...`);
  const readyPodvpn = [];
  const readyBaseline = [];
  const phases = [];
  const rssReadyBaseline = [];
  const startLog = join(resultsDir, 'start.log');
  for (let i = 0; i < STARTS; i++) {
    const fd = openSync(startLog, 'w');
    try {
      const p = await startServer('podvpn', { stdoutFd: fd });
      readyPodvpn.push(p.readyMs);
      await stopServer(p);
      phases.push(startPhases(readFileSync(startLog, 'utf8'), p.spawnedAt));
    } finally {
      closeSync(fd);
    }
    const b = await startServer('baseline');
    readyBaseline.push(b.readyMs);
    rssReadyBaseline.push(procStatus(b.child.pid).vmRSSMiB);
    await stopServer(b);
  }
  rmSync(startLog, { force: true });

  let podvpn;
  let baseline;
  const logFd = openSync(logPath, 'w');
  try {
    podvpn = await startServer('podvpn', { stdoutFd: logFd });
    const pid = podvpn.child.pid;
    const rssAtReady = procStatus(pid);

    // The sample: one verified request, fully checked; its reply becomes the baseline's reply.
    const sample = await post(podvpn.url, body);
    const problems = checkReply(review, sample);
    if (problems.length > 0) throw new Error(`podvpn's reply to the realistic review is wrong: ${problems.join('; ')}`);
    writeFileSync(join(resultsDir, 'baseline-reply.json'), sample.body);
    baseline = await startServer('baseline');
    const baselineSample = await post(baseline.url, body);
    if (baselineSample.body !== sample.body) throw new Error('baseline reply differs from podvpn reply');

    const tls = await new Promise((resolve, reject) => {
      const req = https.request(podvpn.url, { method: 'POST', rejectUnauthorized: false, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        resolve({ protocol: res.socket.getProtocol(), cipher: res.socket.getCipher().standardName ?? res.socket.getCipher().name });
        res.resume();
      });
      req.on('error', reject);
      req.end(body);
    });

    // Warm both servers up (JIT) before the first cell.
    log('warming up...');
    await cannon(podvpn.url, body, 10, 2);
    await cannon(baseline.url, body, 10, 2);

    const raw = Object.fromEntries(CONNECTIONS.map((c) => [c, { podvpn: [], baseline: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, c] of CONNECTIONS.entries()) {
        const order = (round + i) % 2 === 0 ? [baseline, podvpn] : [podvpn, baseline];
        for (const server of order) {
          const m = await measureCell(server, body, c);
          raw[c][server.kind].push(m);
          log(`round ${round + 1} c=${c} ${server.kind}: ${fi(m.ok / m.seconds)} req/s, ${fi((m.serverCpu / m.ok) * 1e6)} µs CPU/req, background ${f(m.backgroundCpu / m.seconds, 2)} cores, errors ${m.non2xx + m.errors + m.timeouts + m.mismatches}`);
        }
      }
    }
    const rssAfterLoad = procStatus(pid);
    const rssBaselineAfterLoad = procStatus(baseline.child.pid);

    // Big reviews over the wire, one at a time (c=1): what fastify's parse and the webhook cost end to end.
    log('big reviews over TLS...');
    const bigReviews = [];
    for (const spec of [
      { id: 'containers-1', containers: 1, envVars: 0, n: 200 },
      { id: 'containers-100', containers: 100, envVars: 0, n: 100 },
      { id: 'containers-1000', containers: 1000, envVars: 0, n: 30 },
      { id: 'env-10000', containers: 1, envVars: 10_000, n: 30 },
    ]) {
      const obj = growthReview(spec);
      const text = JSON.stringify(obj);
      const first = await post(podvpn.url, text);
      const bad = checkReply(obj, first);
      if (bad.length > 0) throw new Error(`podvpn's reply to ${spec.id} is wrong: ${bad.join('; ')}`);
      const agent = new https.Agent({ keepAlive: true, ca: readFileSync(join(certsDir, 'ca.crt')), maxSockets: 1 });
      const times = [];
      for (let i = 0; i < spec.n; i++) {
        times.push(
          await new Promise((resolve, reject) => {
            const t0 = performance.now();
            const req = https.request(podvpn.url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
              res.resume();
              res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`HTTP ${res.statusCode}`))));
            });
            req.on('error', reject);
            req.end(text);
          }),
        );
      }
      agent.destroy();
      times.sort((a, b) => a - b);
      bigReviews.push({ id: spec.id, bytes: Buffer.byteLength(text), n: spec.n, p50Ms: percentile(times, 50), maxMs: times.at(-1) });
    }
    const rssEnd = procStatus(pid);

    const metrics = (await httpGet(`http://127.0.0.1:${podvpn.adminPort}/metrics`)).body;
    const injected = metricValue(metrics, 'podvpn_admission_reviews_total', 'outcome="injected"') ?? 0;
    const handlerSum = metricValue(metrics, 'podvpn_admission_review_duration_seconds_sum', 'outcome="injected"');
    const handlerCount = metricValue(metrics, 'podvpn_admission_review_duration_seconds_count', 'outcome="injected"');
    const otherOutcomes = metrics
      .split('\n')
      .filter((l) => l.startsWith('podvpn_admission_reviews_total{') && !l.includes('outcome="injected"'))
      .map((l) => l.trim());

    await stopServer(podvpn);
    closeSync(logFd);
    const logText = readFileSync(logPath, 'utf8');
    const logLines = logText.split('\n');
    const reviewLines = logLines.filter((l) => l.includes('"msg":"review"')).length;
    const logBytes = statSync(logPath).size;
    const logHead = logLines.filter((l) => !l.includes('"msg":"review"')).slice(0, 8).concat(logLines.filter((l) => l.includes('"msg":"review"')).slice(0, 1));
    rmSync(logPath, { force: true });

    const load = CONNECTIONS.map((c) => {
      const pv = pool(raw[c].podvpn);
      const bl = pool(raw[c].baseline);
      // Each round measures the two servers back to back, so a round's ratio shares its background
      // load; the median over rounds drops a round that a burst of other work hit on one side.
      const paired = pv.perRound.map((r, i) => r / bl.perRound[i]);
      return { connections: c, podvpn: pv, baseline: bl, ratio: median(paired), pairedRatios: paired, pooledRatio: pv.reqPerSec / bl.reqPerSec };
    });
    const loadErrors = load.reduce((s, cell) => s + Object.values(cell.podvpn.errors).reduce((a, b) => a + b, 0) + Object.values(cell.baseline.errors).reduce((a, b) => a + b, 0), 0);

    log('cost growth (separate process)...');
    const growthRun = spawnSync(process.execPath, [join(here, 'growth.mjs')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    if (growthRun.status !== 0) throw new Error(`growth.mjs failed: ${growthRun.stderr}`);
    const growth = JSON.parse(growthRun.stdout);

    const sortedReady = [...readyPodvpn].sort((a, b) => a - b);
    const sortedBaseReady = [...readyBaseline].sort((a, b) => a - b);
    const at = (c) => load.find((cell) => cell.connections === c);
    const c1000 = growth.cases.find((c) => c.id === 'containers-1000');
    const targets = [
      { target: `throughput at 10 concurrent ≥ ${TARGETS.throughputRatioAt10} of baseline`, measured: at(10) ? `${f(at(10).ratio, 2)} (${fi(at(10).podvpn.reqPerSec)} vs ${fi(at(10).baseline.reqPerSec)} req/s; by CPU per request ${f(at(10).baseline.cpuUsPerRequest / at(10).podvpn.cpuUsPerRequest, 2)})` : 'n/a', met: (at(10)?.ratio ?? 0) >= TARGETS.throughputRatioAt10 },
      { target: `p99 at 50 concurrent ≤ ${TARGETS.p99At50Ms} ms`, measured: at(50) ? `${f(at(50).podvpn.p99Ms, 2)} ms (baseline ${f(at(50).baseline.p99Ms, 2)})` : 'n/a', met: (at(50)?.podvpn.p99Ms ?? Infinity) <= TARGETS.p99At50Ms },
      { target: `peak RSS ≤ ${TARGETS.peakRssMiB} MiB`, measured: `${f(rssAfterLoad.vmHWMMiB)} MiB after the 6.5 KB load; ${f(rssEnd.vmHWMMiB)} MiB after the 1.8 MB reviews`, met: rssEnd.vmHWMMiB <= TARGETS.peakRssMiB },
      { target: `(context) baseline peak RSS`, measured: `${f(rssBaselineAfterLoad.vmHWMMiB)} MiB after the same load; podvpn at ready ${f(rssAtReady.vmRSSMiB)} MiB vs baseline ${f(percentile([...rssReadyBaseline].sort((a, b) => a - b), 50))} MiB`, met: true, context: true },
      { target: `ready ≤ ${TARGETS.readyMs} ms from process start`, measured: `median ${fi(percentile(sortedReady, 50))} ms, max ${fi(sortedReady.at(-1))} ms (bare fastify ${fi(percentile(sortedBaseReady, 50))} ms); boot + imports ${fi(median(phases.map((p) => p?.bootAndImportsMs)))} ms, config + TLS + listen ${fi(median(phases.map((p) => p?.configTlsListenMs)))} ms`, met: sortedReady.at(-1) <= TARGETS.readyMs },
      { target: `1,000-container pod decided and patched ≤ ${TARGETS.containers1000Ms} ms`, measured: `${f(c1000.coreMs, 3)} ms (whole review in process ${f(c1000.reviewMs, 1)} ms, of which JSON.parse ${f(c1000.parseMs, 1)})`, met: c1000.coreMs <= TARGETS.containers1000Ms },
      { target: 'errors under load = 0', measured: String(loadErrors), met: loadErrors === 0 },
      { target: 'growth with containers is linear', measured: `decide + patch: ${growth.linearity.core.verdict}; whole review: ${growth.linearity.review.verdict}`, met: !Object.values(growth.linearity).some((v) => v.verdict === 'super-linear') },
    ];

    const result = {
      date: started.toISOString(),
      machine: machine(),
      podvpnCli: PODVPN_CLI,
      settings: { durationS: DURATION, warmupS: WARMUP, rounds: ROUNDS, connections: CONNECTIONS, pipelining: 1, loadGenerator: `autocannon (same process as the orchestrator, same machine)`, webhookLog: 'info level, stdout+stderr to bench/results/webhook.log (counted, then removed)' },
      review: { bytes: Buffer.byteLength(body), replyBytes: Buffer.byteLength(sample.body) },
      tls,
      load: load.map((cell) => ({ ...cell })),
      ready: { podvpnMs: readyPodvpn, baselineMs: readyBaseline, podvpnMedianMs: percentile(sortedReady, 50), baselineMedianMs: percentile(sortedBaseReady, 50), podvpnPhases: phases },
      rss: { atReady: rssAtReady, afterLoad: rssAfterLoad, afterBigReviews: rssEnd, baselineAtReadyMiB: rssReadyBaseline, baselineAfterLoad: rssBaselineAfterLoad },
      bigReviews,
      webhook: {
        injectedReviews: injected,
        otherOutcomes,
        handlerMeanMs: handlerSum !== undefined && handlerCount ? (handlerSum / handlerCount) * 1000 : undefined,
        reviewLogLines: reviewLines,
        logBytes,
        logHead,
      },
      growth,
      targets,
    };
    if (reviewLines !== injected) throw new Error(`log has ${reviewLines} review lines but metrics count ${injected} injected reviews`);
    if (otherOutcomes.length > 0) throw new Error(`reviews with another outcome than injected: ${otherOutcomes.join(', ')}`);

    const table = renderTables(result);
    const otherLoad = load.reduce((acc, cell) => acc + cell.podvpn.backgroundCores + cell.baseline.backgroundCores, 0) / (2 * load.length);
    result.otherLoadCores = otherLoad;
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
    const m = result.machine;
    const md = [
      '# podvpn benchmark: latest results',
      '',
      `Run ${result.date} with \`npm run bench\` at commit ${m.commit}. Machine: ${m.nproc} CPUs (${m.cpu}), ${m.totalMemMiB.toLocaleString('en-US')} MiB, ${m.platform}; Node ${m.node}, fastify ${m.fastify}, autocannon ${m.autocannon}. The load generator runs on the same machine, so each side gets about one core.`,
      '',
      'Baseline: a bare fastify HTTPS server (`bench/baseline-server.mjs`) on the same Node, certificate and TLS settings, parsing the same body and returning podvpn\'s own reply, precomputed. podvpn: `node dist/cli.js serve --config bench/results/config.yaml --no-kube` with NODE_ENV=production as in the image, logging at info (one line per review) to a file.',
      '',
      table,
      '',
      `Also: in-handler time (podvpn's own histogram, parse excluded) mean ${f(result.webhook.handlerMeanMs, 3)} ms over ${fi(injected)} reviews, every one injected and logged (${fi(reviewLines)} log lines). RSS at ready ${f(rssAtReady.vmRSSMiB)} MiB. Raw figures: \`bench/results/latest.json\` (not committed).`,
      '',
      'How to read it:',
      '',
      '- Both servers are single-threaded, so at 10 and 50 connections each is CPU-bound: its throughput is about 1 / (CPU per request), and the ratio of CPU per request (baseline ÷ podvpn) predicts the throughput ratio with less noise than req/s does.',
      `- The machine may be shared: "other load" is the CPU other processes used during the cells (${f(otherLoad, 2)} cores on average in this run, out of ${m.nproc}). It depresses req/s and inflates latency for both servers alike (cells alternate which server goes first); server CPU µs per request is the steadier comparison.`,
      `- With N connections the load generator keeps N requests in flight, so latency ≈ N / throughput (Little's law): at 50 connections a p99 under 10 ms needs well over 5,000 req/s. The bare baseline's own p99 at 50 is ${f(at(50)?.baseline.p99Ms, 1)} ms here.`,
      '- Cost growth is measured in a separate process (`bench/growth.mjs`). "decide + patch" is the webhook\'s own work (it does not depend on the pod\'s size); the whole review is dominated by JSON.parse, which fastify pays for the baseline too.',
      '- Where podvpn\'s time goes: `node bench/profile.mjs` (CPU profile of both servers under the same load, per request, and the import cost of each dependency).',
      '',
    ].join('\n');
    if (process.env.BENCH_PODVPN_CLI === undefined) {
      // Sections recorded by the root-only benches (bench/agent-scale.mjs: "## Agent mode ...") stay
      const previous = existsSync(join(here, 'RESULTS.md')) ? readFileSync(join(here, 'RESULTS.md'), 'utf8') : '';
      const kept = previous.indexOf('\n## Agent mode');
      writeFileSync(join(here, 'RESULTS.md'), kept < 0 ? md : `${md}${previous.slice(kept)}`);
      process.stdout.write(`\n${table}\n\nwrote bench/results/latest.json and bench/RESULTS.md\n`);
    } else {
      // A candidate build: the record stays the production build's.
      process.stdout.write(`\n${table}\n\n(candidate build ${PODVPN_CLI}) wrote bench/results/latest.json only\n`);
    }
  } finally {
    await stopServer(podvpn);
    await stopServer(baseline);
    try {
      closeSync(logFd);
    } catch {
      // already closed
    }
  }
}

async function cleanup() {
  for (const child of children) child.kill('SIGKILL');
}
process.once('SIGINT', () => cleanup().then(() => process.exit(130)));
process.once('SIGTERM', () => cleanup().then(() => process.exit(143)));

main().catch(async (err) => {
  log(`bench failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
});
