// manifests/examples/exit-group: three exits of the group "vpn", each its own gateway pod with its
// own Secret and VXLAN id on the group's overlay, a PodDisruptionBudget over the group, and a
// NetworkPolicy that lets only the group's routed pods (and podvpn's own pods, on the health port)
// reach the exits. The rendered exits agree with podvpn's config, exit by exit.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EXIT_HEALTH_PORT, EXIT_PROBE_PORT, gatewayServiceName, parseConfig } from '../../src/config/schema.js';
import { SYSTEM_NAMESPACE } from '../../src/constants.js';
import { resolveProbeOptions } from '../../src/exits/probe.js';
import { restrictedViolations } from '../pod-security/restricted.js';
import { find, type K8sObject, parseShellSettings, render, volumeConfigMap } from './render.js';

const DIR = 'examples/exit-group';
const objects = render(DIR);
const webhook = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE);
const config = parseConfig(parseYaml(volumeConfigMap(objects, webhook, 'config').data['config.yaml'] as string), `${DIR} config`);
const group = config.gateways.vpn!;
const exitDeployments = objects.filter((o) => o.kind === 'Deployment' && o.spec.template.metadata.labels['podvpn.io/gateway'] === 'vpn');

type Selector = { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values?: string[] }> };

/** A LabelSelector as the API server evaluates it (matchLabels and matchExpressions, ANDed). */
function matches(selector: Selector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === 'In' && !(has && (e.values ?? []).includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && (e.values ?? []).includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

type Peer = { namespaceSelector?: Selector; podSelector?: Selector; ipBlock?: unknown };
type Rule = { from?: Peer[]; ports?: Array<{ port: string | number; protocol?: string }> };

/** May a pod (namespace, labels) open `port`/`protocol` to a pod the policy selects? (ingress, by selector) */
function admits(policy: K8sObject, from: { namespace: string; labels: Record<string, string> }, port: number | 'any', protocol = 'TCP'): boolean {
  const nsLabels = { 'kubernetes.io/metadata.name': from.namespace };
  return (policy.spec.ingress as Rule[]).some((rule) => {
    const portOk = rule.ports === undefined || (port !== 'any' && rule.ports.some((p) => (p.port === port || (p.port === 'health' && port === EXIT_HEALTH_PORT) || (p.port === 'probe' && port === EXIT_PROBE_PORT)) && (p.protocol ?? 'TCP') === protocol));
    if (!portOk) return false;
    if (rule.from === undefined) return true;
    return rule.from.some((peer) => {
      if (peer.ipBlock !== undefined) return false;
      const nsOk = peer.namespaceSelector === undefined ? from.namespace === policy.metadata.namespace : matches(peer.namespaceSelector, nsLabels);
      const podOk = peer.podSelector === undefined || matches(peer.podSelector, from.labels);
      return nsOk && podOk;
    });
  });
}

function settingsOf(deployment: K8sObject): Record<string, string> {
  const cm = volumeConfigMap(objects, deployment, 'settings');
  const shared = (cm.data['settings.sh'] as string).split('\n').filter((l) => l.trim() !== '. /config/exit.sh').join('\n');
  // settings.sh sources exit.sh last: its values win, as in the shell.
  return { ...parseShellSettings(shared), ...parseShellSettings(cm.data['exit.sh'] as string) };
}

const gluetunOf = (d: K8sObject) => (d.spec.template.spec.initContainers as K8sObject[]).find((c) => c.name === 'gluetun')!;
const probeOf = (d: K8sObject) => (d.spec.template.spec.containers as K8sObject[]).find((c) => c.name === 'exit-probe');

describe('examples/exit-group', () => {
  it("renders one gateway Deployment and Service per exit of the config's group, and no others for it", () => {
    expect(group.exits?.map((e) => e.name)).toEqual(['vpn-a', 'vpn-b', 'vpn-c']);
    expect(exitDeployments.map((d) => d.metadata.name).sort()).toEqual(group.exits!.map((e) => gatewayServiceName(e.name)).sort());
    for (const exit of group.exits!) {
      const service = find(objects, 'Service', gatewayServiceName(exit.name), SYSTEM_NAMESPACE);
      expect(exit.address).toBe(`${service.metadata.name}.${SYSTEM_NAMESPACE}.svc.${config.cluster.domain}`);
      expect(service.spec.clusterIP).toBe('None');
      expect(service.spec.selector['app.kubernetes.io/instance']).toBe(gatewayServiceName(exit.name));
      const deployment = find(objects, 'Deployment', gatewayServiceName(exit.name), SYSTEM_NAMESPACE);
      expect(matches({ matchLabels: service.spec.selector }, deployment.spec.template.metadata.labels)).toBe(true);
    }
  });

  it('gives each exit its own VPN Secret and VXLAN id, as the config says, on the one group overlay', () => {
    const secrets = new Set<string>();
    const ids = new Set<string>();
    for (const exit of group.exits!) {
      const deployment = find(objects, 'Deployment', gatewayServiceName(exit.name), SYSTEM_NAMESPACE);
      const secret = gluetunOf(deployment).envFrom[0].secretRef.name as string;
      expect(secret).toBe(`${gatewayServiceName(exit.name)}-vpn`);
      secrets.add(secret);
      const s = settingsOf(deployment);
      expect(s.VXLAN_ID).toBe(String(exit.vxlanId));
      ids.add(s.VXLAN_ID!);
      expect(s.VXLAN_PORT).toBe(String(group.vxlanPort));
      expect(`${s.VXLAN_IP_NETWORK}.0/24`).toBe(group.overlayNetwork);
      expect(`${s.VXLAN_IP_NETWORK}.1`).toBe(group.overlayGatewayIP);
      expect(s.VPN_INTERFACE_MTU).toBe(String(group.mtu));
      expect(Number(gluetunOf(deployment).env.find((e: { name: string }) => e.name === 'WIREGUARD_MTU').value)).toBe(group.mtu);
      // gateway_init.sh needs nat.conf; settings.sh sources exit.sh, so both must be in the volume.
      expect(Object.keys(volumeConfigMap(objects, deployment, 'settings').data).sort()).toEqual(['exit.sh', 'nat.conf', 'nat6.conf', 'settings.sh']);
      // The start order survives the exit's patches.
      expect((deployment.spec.template.spec.initContainers as K8sObject[]).map((c) => c.name)).toEqual(['gateway-init', 'gluetun']);
    }
    expect(secrets.size).toBe(3);
    expect(ids.size).toBe(3);
  });

  it("gives each exit its own VXLAN_ID when bash sources the files as pod-gateway's scripts do (set -e, the image's defaults first)", () => {
    for (const exit of group.exits!) {
      const deployment = find(objects, 'Deployment', gatewayServiceName(exit.name), SYSTEM_NAMESPACE);
      const data = volumeConfigMap(objects, deployment, 'settings').data as Record<string, string>;
      const dir = mkdtempSync(join(tmpdir(), 'podvpn-exit-'));
      // The volume is mounted at /config; here it is `dir`.
      writeFileSync(join(dir, 'settings.sh'), data['settings.sh']!.replaceAll('/config/', `${dir}/`));
      writeFileSync(join(dir, 'exit.sh'), data['exit.sh']!);
      // /default_config/settings.sh of pod-gateway v1.13.0 sets VXLAN_ID="42" and VXLAN_IP_NETWORK="172.16.0".
      writeFileSync(join(dir, 'default.sh'), 'VXLAN_ID="42"\nVXLAN_IP_NETWORK="172.16.0"\n');
      const out = execFileSync('bash', ['-c', `set -ex; . ${dir}/default.sh; . ${dir}/settings.sh; echo "$VXLAN_ID $VXLAN_IP_NETWORK $VPN_INTERFACE_MTU"`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(out.trim()).toBe(`${exit.vxlanId} ${group.overlayNetwork.replace(/\.0\/24$/, '')} ${group.mtu}`);
    }
  });

  it("serves gluetun's health server on the pod's address, and the exit probe at the port of the config's health URL; the exec probes stay", () => {
    for (const exit of group.exits!) {
      const deployment = find(objects, 'Deployment', gatewayServiceName(exit.name), SYSTEM_NAMESPACE);
      const g = gluetunOf(deployment);
      expect(g.env.find((e: { name: string }) => e.name === 'HEALTH_SERVER_ADDRESS').value).toBe(`:${EXIT_HEALTH_PORT}`);
      expect(g.ports).toEqual([{ name: 'health', containerPort: EXIT_HEALTH_PORT, protocol: 'TCP' }]);
      // The webhook's default health URL is the probe's port, on the exit's Service name.
      expect(new URL(exit.healthURL).port).toBe(String(EXIT_PROBE_PORT));
      expect(new URL(exit.healthURL).hostname).toBe(exit.address);
      expect(probeOf(deployment)?.ports).toEqual([{ name: 'probe', containerPort: EXIT_PROBE_PORT, protocol: 'TCP' }]);
      // The control server (it can stop the VPN) stays on loopback.
      expect(g.env.find((e: { name: string }) => e.name === 'HTTP_CONTROL_SERVER_ADDRESS').value).toBe('127.0.0.1:8000');
      expect(g.readinessProbe.exec.command).toEqual(['/gluetun-entrypoint', 'healthcheck']);
    }
  });

  it("opens 9999 and 9998 in gluetun's firewall on eth0 from non-public sources only, and drops them from the routed pods' vxlan0", () => {
    const base = render('gateway').find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('podvpn-gateway-firewall'))!;
    const baseRules = (base.data['post-rules.txt'] as string).trim().split('\n');
    const deployment = find(objects, 'Deployment', gatewayServiceName('vpn-a'), SYSTEM_NAMESPACE);
    const rules = (volumeConfigMap(objects, deployment, 'firewall').data['post-rules.txt'] as string).trim().split('\n');
    expect(rules.slice(0, baseRules.length)).toEqual(baseRules);
    const added = rules.slice(baseRules.length);
    const accepts = added.filter((r) => r.includes('-j ACCEPT'));
    expect(accepts.every((r) => / -i eth0 -s (10\.0\.0\.0\/8|172\.16\.0\.0\/12|192\.168\.0\.0\/16|100\.64\.0\.0\/10) -p tcp --dport (9999|9998) -j ACCEPT$/.test(r))).toBe(true);
    for (const port of [EXIT_HEALTH_PORT, EXIT_PROBE_PORT]) {
      expect(accepts.filter((r) => r.includes(`--dport ${port} `))).toHaveLength(4);
      expect(added).toContain(`iptables -I INPUT -i vxlan0 -p tcp --dport ${port} -j DROP`);
    }
    expect(added).toHaveLength(10);
  });

  it('has a PodDisruptionBudget with maxUnavailable 1 over exactly the group\'s exit pods', () => {
    const pdb = find(objects, 'PodDisruptionBudget', 'podvpn-gateway-vpn', SYSTEM_NAMESPACE);
    expect(() => new PodDisruptionBudget(pdb as never).validate()).not.toThrow();
    expect(pdb.spec.maxUnavailable).toBe(1);
    const selected = objects.filter((o) => o.kind === 'Deployment' && matches(pdb.spec.selector, o.spec.template.metadata.labels)).map((o) => o.metadata.name);
    expect(selected.sort()).toEqual(['podvpn-gateway-vpn-a', 'podvpn-gateway-vpn-b', 'podvpn-gateway-vpn-c']);
  });

  describe('the exit probe container', () => {
    it("runs podvpn's own image as a regular container after gluetun (not an init container), with flags the probe accepts", () => {
      for (const d of exitDeployments) {
        const spec = d.spec.template.spec;
        expect((spec.containers as K8sObject[]).map((c) => c.name)).toEqual(['gateway-sidecar', 'exit-probe']);
        expect((spec.initContainers as K8sObject[]).map((c) => c.name)).toEqual(['gateway-init', 'gluetun']);
        const probe = probeOf(d)!;
        expect(probe.image).toBe((webhook.spec.template.spec.containers as K8sObject[])[0]!.image);
        expect(probe.command).toBeUndefined();
        expect(probe.args[0]).toBe('exit-probe');
        // The manifest's flags parse (the CLI would refuse them otherwise) to the port the config reads.
        const flag = (name: string) => (probe.args as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
        const o = resolveProbeOptions({ listen: flag('listen'), interval: flag('interval'), timeout: flag('timeout'), drain: flag('drain'), targets: undefined }, EXIT_PROBE_PORT);
        expect(o.listen).toEqual({ host: '0.0.0.0', port: EXIT_PROBE_PORT });
        expect([o.intervalMs, o.timeoutMs]).toEqual([1000, 800]);
        // No probe of its own: the pod's Ready stays gluetun's.
        expect([probe.readinessProbe, probe.livenessProbe, probe.startupProbe]).toEqual([undefined, undefined, undefined]);
      }
    });

    it('is non-root, read-only, without capabilities, RuntimeDefault seccomp, small requests and limits: restricted on its own', () => {
      for (const d of exitDeployments) {
        const probe = probeOf(d)!;
        expect(probe.securityContext).toEqual({
          runAsNonRoot: true,
          runAsUser: 65532,
          runAsGroup: 65532,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(restrictedViolations({ metadata: { name: 'p' }, spec: { containers: [probe] } })).toEqual([]);
        // Negative control: the evaluator flags the gateway's own privileged containers.
        expect(restrictedViolations({ metadata: { name: 'p' }, spec: { containers: [gluetunOf(d)] } })).not.toEqual([]);
        expect(probe.resources).toEqual({ requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } });
      }
    });

    it('keeps gluetun routing through a drain window: the probe answers "stopping" and dnsmasq stays for it, inside the grace period', () => {
      for (const d of exitDeployments) {
        const spec = d.spec.template.spec;
        const probe = probeOf(d)!;
        const drain = Number((probe.args as string[]).find((a) => a.startsWith('--drain='))!.slice('--drain='.length));
        expect(drain).toBeGreaterThanOrEqual(5);
        const sidecar = (spec.containers as K8sObject[]).find((c) => c.name === 'gateway-sidecar')!;
        expect(sidecar.lifecycle.preStop.exec.command).toEqual(['sleep', String(drain)]);
        // gluetun, a native sidecar (restartPolicy Always), is stopped only after both; leave it 10 s.
        expect(gluetunOf(d).restartPolicy).toBe('Always');
        expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(drain + 10);
      }
    });
  });

  describe('the group NetworkPolicy', () => {
    const policy = find(objects, 'NetworkPolicy', 'podvpn-gateway-vpn-ingress', SYSTEM_NAMESPACE);
    const routed = (gateway: string) => ({ namespace: 'downloads', labels: { app: 'qbittorrent', 'podvpn.io/routed': gateway, 'podvpn.io/exit': 'vpn-a' } });

    it('is valid and selects exactly the three exits (not the default gateway, not the webhook)', () => {
      expect(() => new NetworkPolicy(policy as never).validate()).not.toThrow();
      const selected = objects.filter((o) => o.kind === 'Deployment' && matches(policy.spec.podSelector, o.spec.template.metadata.labels)).map((o) => o.metadata.name);
      expect(selected.sort()).toEqual(['podvpn-gateway-vpn-a', 'podvpn-gateway-vpn-b', 'podvpn-gateway-vpn-c']);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
    });

    it("lets the group's routed pods (any namespace, any exit label) reach every exit: VXLAN and the client's pings", () => {
      expect(admits(policy, routed('vpn'), 4789, 'UDP')).toBe(true);
      expect(admits(policy, { ...routed('vpn'), namespace: 'media' }, 'any')).toBe(true);
    });

    it("keeps out a pod routed through another gateway (group B cannot reach group A's exits), and unrouted pods", () => {
      expect(admits(policy, routed('default'), 4789, 'UDP')).toBe(false);
      expect(admits(policy, routed('nl'), 'any')).toBe(false);
      expect(admits(policy, { namespace: 'downloads', labels: { app: 'qbittorrent' } }, 4789, 'UDP')).toBe(false);
      // Negative control: the evaluator does admit when the label matches.
      expect(admits(policy, routed('vpn'), 'any')).toBe(true);
    });

    it("lets podvpn's webhook and agent read the probe and health ports, and nothing else of the exit", () => {
      const webhookPod = { namespace: SYSTEM_NAMESPACE, labels: webhook.spec.template.metadata.labels as Record<string, string> };
      const agentPod = { namespace: SYSTEM_NAMESPACE, labels: render('agent').find((o) => o.kind === 'DaemonSet')!.spec.template.metadata.labels as Record<string, string> };
      for (const p of [webhookPod, agentPod]) {
        expect(admits(policy, p, EXIT_PROBE_PORT)).toBe(true);
        expect(admits(policy, p, EXIT_HEALTH_PORT)).toBe(true);
        expect(admits(policy, p, 8000)).toBe(false);
        expect(admits(policy, p, 4789, 'UDP')).toBe(false);
      }
      // The same labels in another namespace do not count.
      expect(admits(policy, { ...webhookPod, namespace: 'downloads' }, EXIT_HEALTH_PORT)).toBe(false);
      expect(admits(policy, { ...webhookPod, namespace: 'downloads' }, EXIT_PROBE_PORT)).toBe(false);
      // The agent is not hostNetwork: its pod labels are what the selector sees.
      expect(render('agent').find((o) => o.kind === 'DaemonSet')!.spec.template.spec.hostNetwork ?? false).toBe(false);
      // The port names point at gluetun's health port and the probe's port on every exit.
      for (const d of exitDeployments) {
        expect(gluetunOf(d).ports.map((p: { name: string }) => p.name)).toContain('health');
        expect(probeOf(d)?.ports.map((p: { name: string }) => p.name)).toEqual(['probe']);
      }
    });
  });
});
