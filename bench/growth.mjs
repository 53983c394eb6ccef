// Cost growth of the pure core, in its own process (clean heap, no load generator beside it).
// For each pod: "core" = decide + clientSettings + injectionPatch (what the webhook adds per pod);
// "parse" = JSON.parse of the body alone (fastify pays it for the baseline too);
// "review" = what one review costs in process: JSON.parse of the body, parseReview, admit, buildResponse
// and JSON.stringify of the reply (fastify's work, TLS and logging excluded).
// Prints one JSON object on stdout. Run standalone: node bench/growth.mjs

import { performance } from 'node:perf_hooks';
import { admit, buildResponse, parseReview } from '../dist/admission/review.js';
import { defaultConfig } from '../dist/config/schema.js';
import { decide } from '../dist/inject/decision.js';
import { injectionPatch } from '../dist/inject/patch.js';
import { clientSettings } from '../dist/inject/settings.js';
import { growthReview } from './review.mjs';

const config = defaultConfig();
// The ranges the benchmark's config file gives the server (bench/lib.mjs CONFIG_YAML), as the
// ClusterRanges the core reads; built here so this file does not depend on where src resolves them.
const ranges = {
  podCIDRs: ['10.244.0.0/16'],
  serviceCIDRs: ['10.96.0.0/12'],
  extraCIDRs: ['192.168.1.0/24'],
  dnsIPs: ['10.96.0.10'],
  sources: { podCIDRs: 'config', serviceCIDRs: 'config', dnsIPs: 'config' },
};
const ports = {
  config,
  namespaceFacts: () => undefined,
  ranges: () => ranges,
  ensureKillSwitch: async () => ({ ok: true }),
};

function core(request) {
  const decision = decide({
    operation: request.operation,
    resource: 'pods',
    subResource: undefined,
    namespace: request.namespace,
    pod: request.object,
    namespaceFacts: undefined,
    ranges,
    config,
  });
  if (decision.action !== 'inject') throw new Error(`expected an injection, got ${JSON.stringify(decision)}`);
  return injectionPatch({ pod: request.object, namespace: request.namespace, gateway: decision.gateway, settings: clientSettings(decision.gateway, ranges), config });
}

async function fullReview(body) {
  const review = parseReview(JSON.parse(body));
  const outcome = await admit(review.request, ports);
  if (outcome.outcome !== 'injected') throw new Error(`expected an injection, got ${outcome.outcome}`);
  return JSON.stringify(buildResponse(review, review.request.uid, outcome));
}

/** Median per-op milliseconds over `samples` timed batches of at least `minMs` each. */
async function perOp(fn, { samples = 7, minMs = 150 } = {}) {
  // Warm up (JIT) and calibrate the batch size.
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await fn();
    const took = performance.now() - t0;
    if (took >= minMs / 2) {
      n = Math.max(1, Math.ceil((n * minMs) / took));
      break;
    }
    n *= 4;
  }
  const times = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await fn();
    times.push((performance.now() - t0) / n);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], min: times[0], max: times.at(-1), opsPerBatch: n };
}

const cases = [
  { id: 'containers-1', containers: 1, envVars: 0 },
  { id: 'containers-100', containers: 100, envVars: 0 },
  { id: 'containers-1000', containers: 1000, envVars: 0 },
  { id: 'env-10000', containers: 1, envVars: 10_000 },
];

// Warm every path up first (JIT tiers), so the first case measured is not the coldest.
const prepared = cases.map((c) => {
  const body = JSON.stringify(growthReview(c));
  return { body, request: parseReview(JSON.parse(body)).request };
});
for (let round = 0; round < 3; round++) {
  for (const p of prepared) {
    const until = performance.now() + 50;
    while (performance.now() < until) core(p.request);
    await fullReview(p.body);
  }
}

const results = [];
for (const c of cases) {
  const body = JSON.stringify(growthReview(c));
  const request = parseReview(JSON.parse(body)).request;
  const patchOps = core(request).patch.length;
  const coreTime = await perOp(() => core(request));
  const reviewTime = await perOp(() => fullReview(body), { samples: 5, minMs: 200 });
  // JSON.parse alone: the share of a review the baseline's fastify pays too.
  const parseTime = await perOp(() => JSON.parse(body), { samples: 5, minMs: 200 });
  results.push({
    ...c,
    reviewBytes: Buffer.byteLength(body),
    patchOps,
    coreMs: coreTime.ms,
    coreSpread: [coreTime.min, coreTime.max],
    reviewMs: reviewTime.ms,
    reviewSpread: [reviewTime.min, reviewTime.max],
    parseMs: parseTime.ms,
  });
}

// Linearity: the marginal cost per container between 1 -> 100 and 100 -> 1,000. Linear growth keeps
// it constant (ratio ~1); quadratic growth would make the second ~10x the first.
const by = Object.fromEntries(results.map((r) => [r.id, r]));
function marginal(key) {
  const a = (by['containers-100'][key] - by['containers-1'][key]) / 99;
  const b = (by['containers-1000'][key] - by['containers-100'][key]) / 900;
  return { perContainerMs1to100: a, perContainerMs100to1000: b, ratio: b / a };
}
const linearity = { core: marginal('coreMs'), review: marginal('reviewMs') };
for (const v of Object.values(linearity)) {
  // Below a microsecond of marginal cost the ratio is noise; call it flat (constant).
  v.verdict = v.perContainerMs100to1000 < 0.001 && v.perContainerMs1to100 < 0.001 ? 'flat (constant)' : v.ratio < 2 ? 'linear' : 'super-linear';
}
const env = by['env-10000'];
const envPerVarMs = { core: (env.coreMs - by['containers-1'].coreMs) / 10_000, review: (env.reviewMs - by['containers-1'].reviewMs) / 10_000 };

process.stdout.write(`${JSON.stringify({ cases: results, linearity, envPerVarMs })}\n`);
