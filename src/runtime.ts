// What serve runs on, in its two modes: the admission ports, what keeps the replica unready, and stop.
// Standalone (no cluster): fixed ranges, no namespace cache, no policy writes. Connected: the one
// namespace watch (shared by admission and the kill switch) and the kill switch. The cluster side
// (client-node and everything on it) is imported only when there is a cluster.

import type { Logger } from 'pino';
import type { AdmissionPorts } from './admission/review.js';
import type { Config } from './config/schema.js';
import { startExitHealthPoller } from './exits/health.js';
import type { KubeTarget } from './kube/client.js';
import { standaloneKillSwitch } from './killswitch/standalone.js';
import type { Metrics } from './server/metrics.js';

export interface Runtime {
  ports: AdmissionPorts;
  /** Reasons the replica is not ready yet (empty when ready). */
  notReady(): string[];
  stop(): Promise<void>;
}

export function standaloneRuntime(config: Config, log: Logger, noKube: boolean): Runtime {
  log.warn(
    noKube
      ? 'standalone (--no-kube): no cluster, no namespace cache, no kill-switch policy writes'
      : 'standalone: no cluster configured (no in-cluster account, no kubeconfig); no namespace cache, no kill-switch policy writes',
  );
  // Refuses to start on a range that would open the kill switch, unless forced.
  const guard = standaloneKillSwitch(config);
  log.info({ ranges: guard.ranges() }, 'cluster ranges');
  return {
    ports: {
      config,
      namespaceFacts: () => undefined,
      ranges: () => guard.ranges(),
      rangesProblem: () => guard.problem(),
      ensureKillSwitch: () => guard.ensure(),
    },
    notReady: () => [],
    stop: async () => undefined,
  };
}

export async function connectedRuntime(kube: KubeTarget, config: Config, log: Logger, metrics: Metrics): Promise<Runtime> {
  log.info({ source: kube.source, server: kube.kubeConfig.getCurrentCluster()?.server }, 'connected to a cluster');
  const [{ startNamespaceCache }, { startKillSwitch }] = await Promise.all([import('./kube/namespace-cache.js'), import('./killswitch/start.js')]);
  const namespaces = await startNamespaceCache(kube.kubeConfig, log);
  const killSwitch = await startKillSwitch(kube.kubeConfig, config, log, namespaces, {
    onCoverage: (r) => {
      metrics.nodeRangesNotInForce.set(r.notInForce.length);
      metrics.routedPodsMissingNodeRanges.set(r.podsMissing);
    },
  });
  const guard = killSwitch.guard;
  // Exit groups: pods per exit (one label-filtered pod watch), only when the config has a group.
  const hasGroups = Object.values(config.gateways).some((g) => g.exits !== undefined);
  const exitLoads = hasGroups ? await (await import('./exits/load-watch.js')).startExitLoads(kube.kubeConfig, log) : undefined;
  // Exit groups: each exit's health (gluetun's health server), so a new pod avoids an exit that is down.
  const exitHealth = startExitHealthPoller(config, {
    onReading: (r, previous) => {
      metrics.exitHealthy.set({ exit: r.exit }, r.healthy ? 1 : 0);
      if (previous?.healthy !== r.healthy) log[r.healthy ? 'info' : 'warn']({ exit: r.exit, reason: r.reason }, r.healthy ? 'exit healthy' : 'exit unhealthy');
    },
  });
  return {
    ports: {
      config,
      namespaceFacts: (ns) => namespaces.get(ns),
      fetchNamespaceFacts: (ns) => namespaces.fetch(ns),
      ranges: () => guard.ranges(),
      rangesProblem: () => guard.problem(),
      ensureKillSwitch: (ns, gw, opts) => guard.ensure(ns, gw, opts),
      exitFacts: (gw) => ({ healthy: exitHealth.healthy(gw), loads: exitLoads?.loads(gw) }),
      exitAssigned: (a) => exitLoads?.admitted(a),
    },
    notReady: () => (namespaces.synced() ? [] : ['namespace cache']),
    stop: async () => {
      exitHealth.stop();
      await exitLoads?.stop();
      await namespaces.stop();
      await killSwitch.stop();
    },
  };
}
