// The kill switch without a cluster (standalone serve, tests): the ranges from config, else kubeadm's
// defaults, computed and checked once; nothing to write, so ensure() always succeeds.

import type { EnsureResult, KillSwitchGuard } from '../admission/ports.js';
import { assertRangesSafe, type ClusterRanges, standaloneRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';

/**
 * The standalone kill switch for this config. Throws (PublicRangeError) on a range that would open
 * the kill switch, unless config.cluster.allowPublicRanges: serve refuses to start on it.
 */
export function standaloneKillSwitch(config: Config): StandaloneKillSwitchGuard {
  const ranges = standaloneRanges(config.cluster);
  assertRangesSafe(ranges, { allowPublicRanges: config.cluster.allowPublicRanges });
  return new StandaloneKillSwitchGuard(ranges);
}

/** No cluster: fixed ranges; ensure() writes nothing. */
export class StandaloneKillSwitchGuard implements KillSwitchGuard {
  constructor(private readonly value: ClusterRanges) {}
  ranges(): ClusterRanges {
    return this.value;
  }
  problem(): undefined {
    return undefined;
  }
  async ensure(): Promise<EnsureResult> {
    return { ok: true };
  }
}
