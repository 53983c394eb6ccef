// Prometheus metrics, on a registry of our own (tests build many servers in one process).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  reviews: Counter<'outcome' | 'reason'>;
  duration: Histogram<'outcome'>;
  certReloads: Counter<'result'>;
  /** Node pod ranges the cluster pod ranges in force do not cover. */
  nodeRangesNotInForce: Gauge;
  /** Routed pods whose not-routed list (fixed at admission) misses a node's pod range. */
  routedPodsMissingNodeRanges: Gauge;
  /**
   * Where the pod-MTU gauges read from at scrape time (podvpn_pod_network_mtu,
   * podvpn_gateway_mtu_too_large): set once the cluster ranges are known.
   */
  observePodMTU(read: () => PodMTUStatus): void;
  /** Exit groups: pods given each exit at admission (by this replica). */
  exitAssignments: Counter<'gateway' | 'exit'>;
  /** Exit groups: each exit's last health reading, 1 healthy, 0 not (src/exits/health.ts). */
  exitHealthy: Gauge<'exit'>;
}

export interface PodMTUStatus {
  /** undefined: unknown (neither config nor the CNI says it). */
  podMTU: number | undefined;
  /** Each gateway, and whether its mtu is too big for the pod network (its routed pods are denied). */
  gateways: Array<{ name: string; tooLarge: boolean }>;
}

export function createMetrics(opts: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  let podMTU: (() => PodMTUStatus) | undefined;
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'podvpn_' });
  const metrics: Metrics = {
    registry,
    reviews: new Counter({
      name: 'podvpn_admission_reviews_total',
      help: 'AdmissionReviews answered, by outcome (injected, reordered, skipped, denied, error) and reason (the gateway when injected or reordered)',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'podvpn_admission_review_duration_seconds',
      help: 'Time to answer an AdmissionReview, from body parsed to reply built',
      labelNames: ['outcome'],
      // Up to the webhook's 5 s timeout: anything past 1 s is an incident.
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    certReloads: new Counter({
      name: 'podvpn_tls_reloads_total',
      help: 'Serving certificate reloads from disk, by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    nodeRangesNotInForce: new Gauge({
      name: 'podvpn_node_pod_ranges_uncovered',
      help: "Nodes' pod ranges (spec.podCIDRs) not covered by the cluster pod ranges podvpn gives routed pods",
      registers: [registry],
    }),
    routedPodsMissingNodeRanges: new Gauge({
      name: 'podvpn_routed_pods_missing_node_ranges',
      help: "Routed pods whose not-routed list, fixed at admission, misses a node's pod range (restart them)",
      registers: [registry],
    }),
    observePodMTU(read) {
      podMTU = read;
    },
    exitAssignments: new Counter({
      name: 'podvpn_exit_assignments_total',
      help: 'Pods of an exit group given an exit at admission by this replica, by gateway and exit (pinned ones included)',
      labelNames: ['gateway', 'exit'],
      registers: [registry],
    }),
    exitHealthy: new Gauge({
      name: 'podvpn_exit_healthy',
      help: "Each exit's last health reading (gluetun's health server: its tunnel passed its last check): 1 healthy, 0 not",
      labelNames: ['exit'],
      registers: [registry],
    }),
  };
  new Gauge({
    name: 'podvpn_pod_network_mtu',
    help: "The pod network's MTU podvpn checks the gateways' tunnel MTU against (config cluster.podMTU, else what the CNI publishes); 0 when unknown",
    registers: [registry],
    collect() {
      this.set(podMTU?.().podMTU ?? 0);
    },
  });
  new Gauge({
    name: 'podvpn_gateway_mtu_too_large',
    help: "1 when a gateway's mtu does not fit the pod network's MTU (at most podMTU - 80): its routed pods are denied",
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of podMTU?.().gateways ?? []) this.set({ gateway: g.name }, g.tooLarge ? 1 : 0);
    },
  });
  return metrics;
}
