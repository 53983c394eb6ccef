// What the agent writes to the API when it moves a pod to another exit: the pod's label
// podvpn.io/exit (the exit it now leaves through: `kubectl get pods -L podvpn.io/exit`, and the loads
// every agent and the webhook count), and an Event on the pod. The bodies are pure (exit-api.test.ts);
// the two calls at the bottom are the edge.
//
// The label patch is a JSON merge patch that also names the pod's uid: kube-apiserver treats a uid in
// a patch as a precondition (409 Conflict when the pod with that name is another one, recreated in
// between), so a late patch never relabels a new pod.

import { type CoreV1Api, type CoreV1Event, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { LABEL_EXIT } from '../constants.js';
import type { MoveWhy } from './exit-moves.js';

export const EVENT_REASONS: Record<MoveWhy, string> = {
  failover: 'ExitFailover',
  drain: 'ExitDrain',
  assign: 'ExitAssigned',
  rebalance: 'ExitRebalance',
};

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export function exitLabelPatch(pod: PodRef, exit: string): { metadata: { uid: string; labels: Record<string, string> } } {
  return { metadata: { uid: pod.uid, labels: { [LABEL_EXIT]: exit } } };
}

export function exitMoveMessage(group: string, move: { from: string | undefined; to: string; why: MoveWhy; reason: string }): string {
  switch (move.why) {
    case 'failover':
      return `exit ${move.from} of gateway ${group} is unhealthy (${move.reason}): moved to exit ${move.to}`;
    case 'drain':
      return `exit ${move.from} of gateway ${group} is stopping (${move.reason}): moved to exit ${move.to} before it stops`;
    case 'assign':
      return `the pod had no exit of gateway ${group}: assigned exit ${move.to}`;
    case 'rebalance':
      return `gateway ${group} rebalanced on request: moved from exit ${move.from} to exit ${move.to}`;
  }
}

/** A core/v1 Event on the pod, as a controller reports one (source: the agent on its node). */
export function exitEvent(pod: PodRef, group: string, move: { from: string | undefined; to: string; why: MoveWhy; reason: string }, node: string, now: Date): CoreV1Event {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: pod.namespace, name: pod.name, uid: pod.uid },
    reason: EVENT_REASONS[move.why],
    // kube-apiserver caps an Event's message at 1 kB (the reason is clipped by exits/health.ts already)
    message: exitMoveMessage(group, move).slice(0, 1024),
    type: move.why === 'failover' ? 'Warning' : 'Normal',
    source: { component: 'podvpn-agent', host: node },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

// ---- the edge ----------------------------------------------------------------------------------

export async function patchExitLabel(api: CoreV1Api, pod: PodRef, exit: string): Promise<void> {
  await api.patchNamespacedPod({ namespace: pod.namespace, name: pod.name, body: exitLabelPatch(pod, exit) }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

export async function createExitEvent(api: CoreV1Api, event: CoreV1Event): Promise<void> {
  await api.createNamespacedEvent({ namespace: event.metadata.namespace!, body: event });
}
