// Pods per exit from the pod watch (src/exits/load-watch.ts) against the Kubernetes API double:
// only labelled, running pods count; a pod the watch shows settles its pending admission.
import { describe, expect, it } from 'vitest';
import { startExitLoads } from '../../src/exits/load-watch.js';
import { doublePerTest, eventually, silent } from '../kube/watch-fixture.js';

const pod = (name: string, exit: string | undefined, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'downloads', generateName: 'sonarr-7d9c8b6f5-', labels: { 'podvpn.io/routed': 'vpn', ...(exit === undefined ? {} : { 'podvpn.io/exit': exit }) } },
  spec: { containers: [{ name: 'app', image: 'x' }] },
  ...extra,
});

describe('exit loads from the pod watch', () => {
  const each = doublePerTest();

  it('counts running pods per exit by label, follows the watch, and settles pending admissions', async () => {
    const api = await each.start();
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads' } });
    api.put(pod('sonarr-7d9c8b6f5-aaaaa', 'vpn-a'));
    api.put(pod('sonarr-7d9c8b6f5-bbbbb', 'vpn-a'));
    api.put(pod('sonarr-7d9c8b6f5-ccccc', 'vpn-b', { status: { phase: 'Succeeded' } }));
    api.put(pod('unlabelled-0', undefined));
    const loads = each.stopAfter(await startExitLoads(api.kubeConfig(), silent));
    expect(loads.synced()).toBe(true);
    expect(loads.loads('vpn')).toEqual(new Map([['vpn-a', 2]]));
    // The list and watch ask for the label only.
    const reads = api.requests.filter((r) => r.resource === 'pods' && (r.verb === 'list' || r.verb === 'watch'));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((r) => r.query.labelSelector === 'podvpn.io/exit')).toBe(true);

    // An admission the watch has not shown yet counts; when its pod appears it is not counted twice.
    loads.admitted({ namespace: 'downloads', prefix: 'sonarr-7d9c8b6f5-', gateway: 'vpn', exit: 'vpn-c' });
    expect(loads.loads('vpn')).toEqual(new Map([['vpn-a', 2], ['vpn-c', 1]]));
    api.put(pod('sonarr-7d9c8b6f5-ddddd', 'vpn-c'));
    await eventually(() => expect(loads.loads('vpn')).toEqual(new Map([['vpn-a', 2], ['vpn-c', 1]])));
    api.put(pod('sonarr-7d9c8b6f5-eeeee', 'vpn-c'));
    await eventually(() => expect(loads.loads('vpn')).toEqual(new Map([['vpn-a', 2], ['vpn-c', 2]])));
  });
});
