// The agent install: one overlay, the config switch in step with the base config, and the DaemonSet's
// least-privilege and scheduling promises.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/schema.js';
import { SYSTEM_NAMESPACE } from '../../src/constants.js';
import { MANIFESTS, find, render } from './render.js';

describe('manifests/overlays/agent', () => {
  const objects = render('overlays/agent');
  const ds = find(objects, 'DaemonSet', 'podvpn-agent', SYSTEM_NAMESPACE);
  const pod = ds.spec.template.spec;
  const agent = pod.containers[0];

  it("its config is the base config plus dataPlane: agent, and the webhook and agent read that one", () => {
    const base = parse(readFileSync(join(MANIFESTS, 'base', 'podvpn.yaml'), 'utf8')) as Record<string, unknown>;
    const overlay = parse(readFileSync(join(MANIFESTS, 'overlays', 'agent', 'podvpn.yaml'), 'utf8')) as Record<string, unknown>;
    expect(overlay).toEqual({ ...base, dataPlane: 'agent' });
    expect(parseConfig(overlay).dataPlane).toBe('agent');
    const configMaps = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('podvpn-config'));
    expect(configMaps).toHaveLength(1);
    const webhook = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE);
    const cmName = (spec: { volumes: Array<{ configMap?: { name: string } }> }) => spec.volumes.find((v) => v.configMap)?.configMap?.name;
    expect(cmName(webhook.spec.template.spec)).toBe(configMaps[0]!.metadata.name);
    expect(cmName(pod)).toBe(configMaps[0]!.metadata.name);
  });

  it('runs on every node: tolerates every taint, system-node-critical, Linux only', () => {
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
  });

  it('least privilege: hostPID but no hostNetwork, no hostPath, four named capabilities, not privileged', () => {
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.volumes.some((v: Record<string, unknown>) => 'hostPath' in v)).toBe(false);
    expect(agent.securityContext).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      seccompProfile: { type: 'RuntimeDefault' },
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE'] },
    });
  });

  it('bounded resources and a liveness probe on /healthz', () => {
    expect(Object.keys(agent.resources.limits).sort()).toEqual(['cpu', 'memory']);
    expect(Object.keys(agent.resources.requests).sort()).toEqual(['cpu', 'memory']);
    expect(agent.livenessProbe.httpGet.path).toBe('/healthz');
  });
});
