// npm run bench:hostile: what one hostile pod or client costs a replica. Figures, not assertions
// (test/hardening.test.ts and test/shutdown.test.ts assert the behaviour with generous bounds).
//
//   1. a review with 250k dnsConfig searches: its reply time, and /healthz's worst latency meanwhile;
//   2. slow clients: N connections that send headers and part of a body, then stall: peak RSS, how
//      many the server accepted, and how long until it closed them;
//   3. big bodies: 8 clients at once each sending a 5.9 MiB review: replies by status, peak RSS.
//
// BENCH_PODVPN_CLI=/path/to/dist/cli.js measures another build (e.g. the previous commit's).
// Options: --slow N (default 1200), --hold S (seconds to wait for slow connections to be closed,
// default 40), --skip-searches (the previous build needs minutes for part 1).

import { connect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { certsDir, httpGet, log, post, prepare, procStatus, PODVPN_CLI, startServer, stopServer } from './lib.mjs';
import { realisticReview } from './review.mjs';

const { values: args } = parseArgs({ options: { slow: { type: 'string', default: '1200' }, hold: { type: 'string', default: '40' }, 'skip-searches': { type: 'boolean', default: false } } });
const SLOW = Number(args.slow);
const HOLD_S = Number(args.hold);

const review = (pod) => JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: crypto.randomUUID(), kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'downloads', operation: 'CREATE', object: pod, dryRun: false },
});
const pod = (spec = {}, metadata = { generateName: 'web-' }) => ({ apiVersion: 'v1', kind: 'Pod', metadata, spec: { containers: [{ name: 'app', image: 'busybox:1.36' }], ...spec } });

prepare(JSON.stringify(realisticReview()));
const ca = readFileSync(join(certsDir, 'ca.crt'));
const server = await startServer('podvpn');
const rss = () => procStatus(server.child.pid);
const results = { cli: PODVPN_CLI, readyRssMiB: rss().vmRSSMiB };
log(`podvpn (${PODVPN_CLI}) ready, RSS ${results.readyRssMiB.toFixed(1)} MiB`);

try {
  // 1. 250k searches.
  if (!args['skip-searches']) {
    const body = review(pod({ dnsConfig: { searches: Array.from({ length: 250_000 }, (_, i) => `s${i}`) } }));
    let polling = true;
    let worst = 0;
    const poller = (async () => {
      while (polling) {
        const t = performance.now();
        await httpGet(`http://127.0.0.1:${server.adminPort}/healthz`).catch(() => undefined);
        worst = Math.max(worst, performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t = performance.now();
    const reply = await Promise.race([post(server.url, body), new Promise((r) => setTimeout(() => r({ status: 'no reply within 120 s' }), 120_000))]);
    const ms = performance.now() - t;
    polling = false;
    await poller;
    results.searches250k = { replyMs: Math.round(ms), status: reply.status, healthzWorstMs: Math.round(worst) };
    log(`250k searches: reply ${results.searches250k.replyMs} ms (${reply.status}), /healthz worst ${results.searches250k.healthzWorstMs} ms`);
  }

  // 2. Slow clients.
  {
    const sockets = [];
    let accepted = 0;
    let closed = 0;
    const closedAt = [];
    const replies = new Set();
    const t0 = performance.now();
    for (let i = 0; i < SLOW; i++) {
      const s = connect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' }, () => {
        accepted += 1;
        s.resume(); // read the server's 408 and its close
        s.write(`POST /mutate HTTP/1.1\r\nHost: podvpn\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n${'{"a":"'.padEnd(48 * 1024, 'x')}`);
      });
      s.on('data', (d) => replies.add(d.toString('utf8').split('\r\n')[0]));
      s.on('error', (e) => replies.add(`error ${e.code}`));
      s.on('close', () => {
        closed += 1;
        closedAt.push(performance.now() - t0);
      });
      sockets.push(s);
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    let peak = 0;
    const deadline = performance.now() + HOLD_S * 1000;
    while (performance.now() < deadline && closed < SLOW) {
      peak = Math.max(peak, rss().vmRSSMiB);
      await new Promise((r) => setTimeout(r, 250));
    }
    const healthz = await httpGet(`http://127.0.0.1:${server.adminPort}/healthz`).then((r) => r.status, (e) => e.code);
    results.slowClients = {
      opened: SLOW,
      handshakes: accepted,
      closedWithinHold: closed,
      holdS: HOLD_S,
      lastClosedS: closedAt.length ? Math.round(Math.max(...closedAt) / 100) / 10 : null,
      peakRssMiB: Math.round(peak * 10) / 10,
      healthzAfter: healthz,
      replies: [...replies],
    };
    log(`slow clients: ${JSON.stringify(results.slowClients)}`);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
  }

  // 3. Big bodies at once.
  {
    const body = review(pod({}, { generateName: 'web-', annotations: { note: 'n'.repeat(5.9 * 1024 * 1024) } }));
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, rss().vmRSSMiB);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const replies = await Promise.all(Array.from({ length: 8 }, () => post(server.url, body).then((r) => r.status, (e) => e.code)));
    sampling = false;
    await sampler;
    const byStatus = {};
    for (const s of replies) byStatus[s] = (byStatus[s] ?? 0) + 1;
    results.bigBodies = { clients: 8, bytesEach: body.length, byStatus, peakRssMiB: Math.round(peak * 10) / 10 };
    log(`big bodies: ${JSON.stringify(results.bigBodies)}`);
  }
  results.peakRssMiB = Math.round(rss().vmHWMMiB * 10) / 10;
  log(`peak RSS over the run (VmHWM): ${results.peakRssMiB} MiB`);
} finally {
  await stopServer(server);
}
console.log(JSON.stringify(results, null, 2));
