// The agent install: one overlay, the config switch in step with the base config, and the DaemonSet's
// least-privilege and scheduling promises.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { layerConfigs } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/schema.js';
import { SYSTEM_NAMESPACE } from '../../src/constants.js';
import { MANIFESTS, find, render } from './render.js';

describe('manifests/overlays/agent', () => {
  const objects = render('overlays/agent');
  const ds = find(objects, 'DaemonSet', 'podvpn-agent', SYSTEM_NAMESPACE);
  const pod = ds.spec.template.spec;
  const agent = pod.containers[0];

  it('its config, as the webhook and the agent read it from the rendered ConfigMap, is the base config plus dataPlane: agent', () => {
    const configMaps = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('podvpn-config'));
    expect(configMaps).toHaveLength(1);
    const cm = configMaps[0]!;
    const webhook = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE).spec.template.spec;
    // What a container reads: its --config files, in order, out of the ConfigMap mounted at their directory
    const readConfig = (spec: any) => {
      const container = spec.containers[0];
      const volume = spec.volumes.find((v: any) => v.configMap?.name === cm.metadata.name);
      const mount = container.volumeMounts.find((m: any) => m.name === volume?.name);
      expect(mount, 'the rendered ConfigMap is mounted').toBeDefined();
      const files = [...(container.args ?? []), ...(container.command ?? [])].filter((a: string) => a.startsWith('--config=')).map((a: string) => a.slice('--config='.length));
      const layers = files.map((file: string) => {
        expect(file.startsWith(`${mount.mountPath}/`), file).toBe(true);
        const key = file.slice(mount.mountPath.length + 1);
        expect(cm.data, key).toHaveProperty([key]);
        return { file, raw: parse(cm.data[key]) as unknown };
      });
      return layerConfigs(layers);
    };
    const base = parse(readFileSync(join(MANIFESTS, 'base', 'podvpn.yaml'), 'utf8')) as Record<string, unknown>;
    for (const spec of [webhook, pod]) {
      const read = readConfig(spec);
      expect(read).toEqual({ ...base, dataPlane: 'agent' });
      expect(parseConfig(read).dataPlane).toBe('agent');
    }
    // The base's own file is the base's, byte for byte: the overlay repeats none of it
    expect(cm.data['config.yaml']).toBe(readFileSync(join(MANIFESTS, 'base', 'podvpn.yaml'), 'utf8'));
    expect(Object.keys(cm.data).sort()).toEqual(['config.yaml', 'data-plane.yaml']);
  });

  it('the default install reads the base config alone, in pod-gateway mode', () => {
    const objects = render('overlays/default');
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('podvpn-config'))!;
    const args: string[] = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE).spec.template.spec.containers[0].args;
    expect(args.filter((a) => a.startsWith('--config='))).toEqual(['--config=/etc/podvpn/config.yaml']);
    expect(Object.keys(cm.data)).toEqual(['config.yaml']);
    expect(parseConfig(parse(cm.data['config.yaml'])).dataPlane).toBe('pod-gateway');
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
