// Exit health as the agent judges it (pure; the clock is an input). An exit is unhealthy when:
//   - it has no gateway pod (gone, or not scheduled);
//   - its pod is not Ready (manifests/gateway's readiness probe is gluetun's healthcheck);
//   - its exit probe (`podvpn exit-probe`, http://<exit pod IP>:9998/, answering as gluetun's health
//     server does: 200, or 500 and the reason, from a TCP connect through the tunnel every second)
//     failed FAILURES_TO_UNHEALTHY polls in a row with the exit's own word (a 500, or its pod's address
//     refusing the connection or unreachable), or SILENT_FAILURES_TO_UNHEALTHY polls in a row of any
//     failure (no answer within the timeout, another status).
// A terminating pod (deletionTimestamp) makes the exit *draining*: it still carries its pods, but it
// is going, so its pods move (exit-moves.ts) and nothing new is sent to it.
//
// Why two failed polls in a row: a failover is a move nobody undoes (the agent never moves a pod back
// on its own) and it breaks every flow of the moved pods, so one lost answer (a probe that timed out
// once, a GC pause in the probe) must not move 1/N of the pods. Polled every 500 ms, two 500s in a
// row cost half a second: the probe notices the dead tunnel within its round (1 s, plus its 0.8 s
// connect timeout when the tunnel swallows packets), the first failed poll follows within 0.5 s, the
// second 0.5 s later. Polled every second (before 2026-12-02), the two polls alone took 1 to 2 s.
//
// Why silence needs more: a poll that gets no answer in time says as much about the reader as about
// the exit. In the exits lab at 30 pods (a load of 9 on two cores) the agent's polls to all three
// exits timed out at once, again and again, with a 400 ms timeout: every exit judged unhealthy,
// pods moved off healthy exits. So a poll waits PROBE_TIMEOUT_MS (2 s; each exit polled on its own,
// a slow one holds up no other), and silence counts only after SILENT_FAILURES_TO_UNHEALTHY polls.
// A gone exit pod is seen sooner anyway: its Pod is deleted or not Ready, or its address refuses.
//
// Older manifests without the probe: an exit whose probe has never answered (an HTTP status of any
// kind) since its pod got its IP is judged by Ready alone (ready-only); the edge logs that once. Once
// the probe has answered, a silence counts as a failure (the probe died with the exit, or the exit is
// unreachable). A reading older than STALE_POLLS polls (the poller stalled) is not believed: ready-only.

import type { HealthReading } from '../exits/health.js';
import type { ExitPodState } from './cluster-view.js';

export const PROBE_INTERVAL_MS = 500;
/** A live probe answers in milliseconds; a busy node's reader may need a second or more. One poll per exit in flight. */
export const PROBE_TIMEOUT_MS = 2000;
/** Failed polls in a row, each the exit's own word (HealthReading.definitive), that make it unhealthy. */
export const FAILURES_TO_UNHEALTHY = 2;
/** Failed polls in a row of any kind (silence included) that make it unhealthy. */
export const SILENT_FAILURES_TO_UNHEALTHY = 3;
/**
 * A reading older than this many intervals (10 s) is not believed. It was 8 (4 s, two timed-out polls):
 * in the exits lab at 30 pods (a load of 24 on two cores) timed-out polls came back more than 4 s apart,
 * and a silent exit's verdict went unhealthy, healthy by Ready, unhealthy again every few seconds.
 * Ten seconds is four timed-out polls: only a poller that really stopped is overruled.
 */
export const STALE_POLLS = 20;

/** What the agent remembers of one exit's probe (per gateway pod IP: a new pod starts afresh). */
export interface ProbeMemory {
  podIP: string;
  /** The probe has answered with an HTTP status at least once at this pod IP. */
  answered: boolean;
  /** Failed polls in a row (non-200 or no answer); 0 after a 200. */
  failures: number;
  /** Of those, the latest in a row that were the exit's own word (HealthReading.definitive). */
  definitive: number;
  last: HealthReading;
}

/** Fold one poll into the memory. `answered`: an HTTP status came back (any status). */
export function recordPoll(previous: ProbeMemory | undefined, podIP: string, reading: HealthReading, answered: boolean): ProbeMemory {
  const same = previous !== undefined && previous.podIP === podIP;
  return {
    podIP,
    answered: answered || (same && previous.answered),
    failures: reading.healthy ? 0 : (same ? previous.failures : 0) + 1,
    definitive: reading.healthy || reading.definitive !== true ? 0 : (same ? previous.definitive : 0) + 1,
    last: reading,
  };
}

export type ExitState = 'healthy' | 'unhealthy' | 'draining';

export interface ExitVerdict {
  name: string;
  state: ExitState;
  /** Why (for the Event and the log): 'ok', or what failed. */
  reason: string;
  /** How it was judged: by the probe, or by the pod's Ready condition alone. */
  by: 'probe' | 'ready';
}

export function exitVerdict(pod: ExitPodState | undefined, probe: ProbeMemory | undefined, now: number): ExitVerdict {
  const name = pod?.name ?? probe?.last.exit ?? '';
  if (pod === undefined || pod.podIP === undefined) return { name, state: 'unhealthy', reason: 'no gateway pod', by: 'ready' };
  if (pod.terminating) return { name, state: 'draining', reason: 'gateway pod terminating', by: 'ready' };
  if (!pod.ready) return { name, state: 'unhealthy', reason: 'gateway pod not Ready', by: 'ready' };
  const usable = probe !== undefined && probe.podIP === pod.podIP && probe.answered && now - probe.last.at <= STALE_POLLS * PROBE_INTERVAL_MS;
  if (!usable) return { name, state: 'healthy', reason: 'ok', by: 'ready' };
  if (probe.definitive >= FAILURES_TO_UNHEALTHY || probe.failures >= SILENT_FAILURES_TO_UNHEALTHY) return { name, state: 'unhealthy', reason: `exit probe: ${probe.last.reason}`, by: 'probe' };
  return { name, state: 'healthy', reason: 'ok', by: 'probe' };
}

/** The probe's URL for an exit pod (EXIT_PROBE_PORT). */
export function probeURL(podIP: string, port: number): string {
  return `http://${podIP.includes(':') ? `[${podIP}]` : podIP}:${port}/`;
}
