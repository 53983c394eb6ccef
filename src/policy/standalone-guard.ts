// The kill switch without a cluster (standalone serve, tests): the ranges from config, else kubeadm's
// defaults; nothing to write, so ensure() always succeeds.

import { type ClusterRanges, standaloneRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import type { EnsureResult, KillSwitchGuard } from './guard-types.js';

/** No cluster: ranges from config, else kubeadm's defaults; ensure() succeeds and writes nothing. */
export class StandaloneKillSwitchGuard implements KillSwitchGuard {
  private readonly value: ClusterRanges;
  constructor(config: Config) {
    this.value = standaloneRanges(config.cluster);
  }
  ranges(): ClusterRanges {
    return this.value;
  }
  async ensure(): Promise<EnsureResult> {
    return { ok: true };
  }
}

