// The built CLI as a user runs it: a real process, real files, real signals.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { post, tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli.js');

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 20_000 });
}

const FIXTURES = join(ROOT, 'test', 'fixtures', 'homelab');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

/** No cluster: no kubeconfig anywhere this process could find one. */
const NO_CLUSTER = { ...process.env, KUBECONFIG: '/nonexistent', HOME: '/nonexistent', KUBERNETES_SERVICE_HOST: '' };
delete (NO_CLUSTER as Record<string, string | undefined>).KUBERNETES_SERVICE_HOST;

function cli(args: string[], input?: string, env: NodeJS.ProcessEnv = NO_CLUSTER) {
  return spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 30_000, env });
}

function configFile(extra = ''): string {
  const file = join(tempDir(), 'podvpn.yaml');
  writeFileSync(file, `cluster:\n  podCIDRs: [10.42.0.0/16]\n  serviceCIDRs: [10.43.0.0/16]\n  dnsIPs: [10.43.0.10]\n${extra}`);
  return file;
}

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: qbittorrent
  namespace: downloads
spec:
  selector:
    matchLabels: { app: qbittorrent }
  template:
    metadata:
      labels: { app: qbittorrent }
    spec:
      containers:
        - name: qbittorrent
          image: lscr.io/linuxserver/qbittorrent:5.0.3
---
apiVersion: v1
kind: Service
metadata:
  name: qbittorrent
spec:
  ports: [{ port: 8080 }]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cleanup
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: cleanup
              image: busybox:1.36
---
apiVersion: v1
kind: Pod
metadata:
  name: unrouted
  labels: { podvpn.io/inject: "false" }
spec:
  containers:
    - name: app
      image: busybox:1.36
`;

describe('podvpn inject', () => {
  it('--config given twice layers the second file over the first (one key changed, the rest kept)', () => {
    const layer = join(tempDir(), 'data-plane.yaml');
    writeFileSync(layer, 'dataPlane: agent\n');
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: { name: web, namespace: downloads, labels: { podvpn.io/inject: "true" } }\nspec:\n  containers: [{ name: app, image: busybox:1.36 }]\n';
    const result = cli(['inject', '-f', '-', '--config', configFile(), '--config', layer, '--no-policies'], pod);
    expect(result.status, result.stderr).toBe(0);
    const injected = parseAllDocuments(result.stdout)[0]!.toJS();
    expect(injected.spec.initContainers.map((c: any) => c.name)).toEqual(['podvpn-gate']);
    // The cluster ranges still come from the first file: the gate's pod is routed with them
    const alone = cli(['inject', '-f', '-', '--config', layer, '--no-policies'], pod);
    expect(alone.status, 'the layer alone has no cluster ranges and no cluster to ask').not.toBe(0);
  });

  it('injects pod templates, passes other documents through byte for byte, one report line per document', () => {
    const result = cli(['inject', '-f', '-', '--config', configFile(), '-n', 'media'], DEPLOYMENT);
    expect(result.status, result.stderr).toBe(0);
    const docs = parseAllDocuments(result.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['Deployment', 'Service', 'CronJob', 'Pod', 'NetworkPolicy', 'NetworkPolicy']);
    const [deployment, , cronjob, pod, policyDownloads, policyMedia] = docs;
    // One kill-switch policy per touched namespace, from the same ranges as the client's routes.
    expect([policyDownloads.metadata.namespace, policyMedia.metadata.namespace]).toEqual(['downloads', 'media']);
    expect(policyDownloads.spec.podSelector.matchLabels).toEqual({ 'podvpn.io/routed': 'default' });
    const allowed = policyDownloads.spec.egress.flatMap((r: any) => (r.to ?? []).map((p: any) => p.ipBlock?.cidr)).filter(Boolean);
    const routes = deployment.spec.template.metadata.annotations['podvpn.io/client-settings'].match(/NOT_ROUTED_TO_GATEWAY_CIDRS='([^']*)'/)[1].split(' ');
    expect([...allowed].sort()).toEqual([...routes].sort());
    const names = (spec: any) => spec.initContainers.map((c: any) => c.name);
    expect(names(deployment.spec.template.spec)).toEqual(['podvpn-client-init', 'podvpn-client']);
    expect(deployment.spec.template.spec.dnsConfig.searches[0]).toBe('downloads.svc.cluster.local');
    expect(cronjob.spec.jobTemplate.spec.template.spec.dnsConfig.searches[0]).toBe('media.svc.cluster.local');
    expect(result.stdout).toContain('---\napiVersion: v1\nkind: Service\nmetadata:\n  name: qbittorrent\nspec:\n  ports: [{ port: 8080 }]\n');
    expect(pod.spec.initContainers).toBeUndefined();
    expect(result.stderr.trim().split('\n')).toEqual([
      'Deployment/qbittorrent in downloads: injected through gateway default',
      'Service/qbittorrent: unchanged (no pod template)',
      'CronJob/cleanup in media: injected through gateway default',
      'Pod/unrouted in media: skipped: pod label podvpn.io/inject is "false" (opted-out)',
    ]);
  });

  it('is idempotent: injecting its own output changes nothing, policies are not repeated', () => {
    const config = configFile();
    const once = cli(['inject', '-f', '-', '--config', config, '-n', 'media'], DEPLOYMENT).stdout;
    const twice = cli(['inject', '-f', '-', '--config', config, '-n', 'media'], once);
    expect(twice.status).toBe(0);
    expect(twice.stdout).toBe(once);
    expect(twice.stderr).toMatch(/Deployment\/qbittorrent in downloads: unchanged \(already injected through gateway default, up to date\)/);
  });

  it('refreshes: re-injecting with a corrected config replaces the settings and the policy in place', () => {
    const k3s = cli(['inject', '-f', '-', '--config', configFile()], fixture('sabnzbd-statefulset.yaml')).stdout;
    const corrected = configFile('  extraAllowedCIDRs: [192.168.1.0/24]\n');
    const again = cli(['inject', '-f', '-', '--config', corrected], k3s);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/StatefulSet\/sabnzbd in downloads: refreshed through gateway default/);
    const docs = parseAllDocuments(again.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['StatefulSet', 'Service', 'NetworkPolicy']);
    const settings = docs[0].spec.template.metadata.annotations['podvpn.io/client-settings'];
    expect(settings).toContain("NOT_ROUTED_TO_GATEWAY_CIDRS='10.42.0.0/15 192.168.1.0/24'");
    expect(docs[0].spec.template.spec.initContainers.map((c: any) => c.name)).toEqual(['podvpn-client-init', 'podvpn-client', 'config-seed']);
    expect(JSON.stringify(docs[2])).toContain('192.168.1.0/24');
  });

  it('keeps comments, renovate markers and key order; uninject gives the file back exactly', () => {
    const dir = tempDir();
    const input = fixture('sabnzbd-statefulset.yaml');
    const out = join(dir, 'injected.yaml');
    const injected = cli(['inject', '-f', join(FIXTURES, 'sabnzbd-statefulset.yaml'), '--config', configFile(), '-o', out]);
    expect(injected.status, injected.stderr).toBe(0);
    expect(injected.stdout).toBe('');
    const text = readFileSync(out, 'utf8');
    for (const comment of input.split('\n').filter((l) => l.includes('#')).map((l) => l.slice(l.indexOf('#')))) {
      expect(text).toContain(comment);
    }
    expect(text).toContain('# renovate: datasource=docker depName=ghcr.io/home-operations/sabnzbd\n          image: ghcr.io/home-operations/sabnzbd:4.4.1');
    const back = cli(['uninject', '-f', out]);
    expect(back.status, back.stderr).toBe(0);
    // The Service is written byte for byte; the StatefulSet podvpn changed is printed again by the yaml
    // library, which pads flow collections ([a] -> [ a ]): equal to the input in the library's form.
    expect(back.stdout).toBe(parseAllDocuments(input).map((d) => d.toString({ lineWidth: 0 })).join(''));
    expect(back.stdout.split('---\napiVersion: v1\nkind: Service')[1]).toBe(input.split('---\napiVersion: v1\nkind: Service')[1]);
    expect(back.stderr).toMatch(/StatefulSet\/sabnzbd: uninjected/);
    expect(back.stderr).toMatch(/NetworkPolicy\/podvpn-killswitch-default: removed/);
  });

  it('kind: List (kubectl get -o yaml): injects each item, honours each opt-out', () => {
    const result = cli(['inject', '-f', join(FIXTURES, 'deployments-list.yaml'), '--config', configFile()]);
    expect(result.status, result.stderr).toBe(0);
    const [list, policy] = parseAllDocuments(result.stdout).map((d) => d.toJS());
    expect(list.kind).toBe('List');
    expect(list.items[0].spec.template.spec.initContainers.map((c: any) => c.name)).toEqual(['podvpn-client-init', 'podvpn-client']);
    expect(list.items[0].spec.template.spec.dnsPolicy).toBe('None');
    expect(list.items[1].spec.template.spec.initContainers).toBeUndefined();
    expect(policy.metadata.namespace).toBe('downloads');
    expect(result.stderr).toMatch(/Deployment\/jackett in downloads: injected/);
    expect(result.stderr).toMatch(/Deployment\/flaresolverr in downloads: skipped: .*\(opted-out\)/);
    const back = cli(['uninject', '-f', '-'], result.stdout);
    expect(back.stdout).toBe(fixture('deployments-list.yaml'));
  });

  it('a VPN already in the pod: refused, naming the container; kept on request with a warning', () => {
    const gluetun = cli(['inject', '-f', join(FIXTURES, 'qbittorrent-gluetun.yaml'), '--config', configFile()]);
    expect(gluetun.status).toBe(1);
    expect(gluetun.stdout).toBe('');
    expect(gluetun.stderr).toMatch(/Deployment\/qbittorrent in downloads: refused: container "gluetun" \(image ghcr\.io\/qdm12\/gluetun:v3\.40\.0\) already runs a VPN \(gluetun\).*Remove the "gluetun" container/);
    const transmission = cli(['inject', '-f', join(FIXTURES, 'transmission-openvpn.yaml'), '--config', configFile()]);
    expect(transmission.status).toBe(1);
    expect(transmission.stderr).toMatch(/container "transmission" \(image haugene\/transmission-openvpn:5\.3\.1\) already runs a VPN/);
    const kept = fixture('qbittorrent-gluetun.yaml').replace(
      '      labels:\n        app.kubernetes.io/name: qbittorrent\n    spec:',
      '      labels:\n        app.kubernetes.io/name: qbittorrent\n      annotations:\n        podvpn.io/allow-existing-vpn: "true"\n    spec:',
    );
    const allowed = cli(['inject', '-f', '-', '--config', configFile()], kept);
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stderr).toMatch(/warning: container "gluetun" .* runs its own VPN \(gluetun\); kept because podvpn.io\/allow-existing-vpn is "true"/);
  });

  it('without config and without a cluster: refuses with the config lines to add, writes nothing', () => {
    const result = cli(['inject', '-f', '-'], DEPLOYMENT);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/Deployment\/qbittorrent in downloads: refused: podvpn does not know the cluster's cluster\.podCIDRs, cluster\.serviceCIDRs, cluster\.dnsIPs/);
    expect(result.stderr).toContain('  cluster:\n    podCIDRs: [10.244.0.0/16]');
    expect(result.stderr).toMatch(/no kubeconfig found/);
    expect(result.stderr).not.toMatch(/10\.244\.0\.0\/16'/); // nothing was injected with a guessed range
  });

  it('a document without a namespace needs -n (no default.svc.cluster.local baked in)', () => {
    const refused = cli(['inject', '-f', join(FIXTURES, 'prowlarr-base.yaml'), '--config', configFile()]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/Deployment\/prowlarr: refused: it names no namespace.*pass -n NAMESPACE/);
    const ok = cli(['inject', '-f', join(FIXTURES, 'prowlarr-base.yaml'), '--config', configFile(), '-n', 'downloads']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('- downloads.svc.cluster.local');
    expect(ok.stdout).not.toContain('default.svc');
  });

  it('makes the webhook\'s checks: Pod Security of a Namespace in the same input, Jobs in container mode', () => {
    const restricted = `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: downloads\n  labels:\n    podvpn.io/inject: enabled\n    pod-security.kubernetes.io/enforce: restricted\n---\n${DEPLOYMENT.split('---')[0]}`;
    const denied = cli(['inject', '-f', '-', '--config', configFile()], restricted);
    expect(denied.status).toBe(1);
    expect(denied.stderr).toMatch(/refused: namespace downloads enforces Pod Security level "restricted"/);
    const job = 'apiVersion: batch/v1\nkind: Job\nmetadata: { name: backup, namespace: downloads }\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{ name: a, image: b }]\n';
    const warned = cli(['inject', '-f', '-', '--config', configFile('sidecarMode: container\n')], job);
    expect(warned.status, warned.stderr).toBe(0);
    expect(warned.stderr).toContain('Job/backup in downloads: warning: sidecarMode "container" keeps this Job\'s pod running');
    expect(warned.stderr).not.toMatch(/podvpn: .*podvpn:/);
  });

  it('refuses a configured range that would open the kill switch, unless forced', () => {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: downloads }\nspec:\n  containers: [{ name: a, image: b }]\n';
    const refused = cli(['inject', '-f', '-', '--config', configFile('  extraAllowedCIDRs: [0.0.0.0/0]\n')], pod);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/0\.0\.0\.0\/0/);
    expect(cli(['inject', '-f', '-', '--config', configFile('  extraAllowedCIDRs: [0.0.0.0/0]\n  allowPublicRanges: true\n')], pod).status).toBe(0);
  });

  it('fails with the reason for a pod it cannot protect, and writes nothing', () => {
    const result = cli(['inject', '-f', '-', '--config', configFile()], 'apiVersion: v1\nkind: Pod\nmetadata: { name: h, namespace: downloads }\nspec:\n  hostNetwork: true\n  containers: [{ name: a, image: b }]\n');
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/Pod\/h in downloads: refused: pod uses hostNetwork/);
  });

  it('names the bad config field', () => {
    const dir = tempDir();
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'gateways:\n  default:\n    vxlanPort: 99999\ncluster:\n  podCIDRs: [10.42.0.0/33]\n');
    const result = cli(['inject', '-f', '-', '--config', config], 'kind: Service\n');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/gateways\.default\.vxlanPort: /);
    expect(result.stderr).toMatch(/cluster\.podCIDRs\[0\]: must be a CIDR/);
  });

  it('walks a directory like kubectl -f DIR, and names a missing file plainly', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.yaml'), fixture('sabnzbd-statefulset.yaml'));
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
    writeFileSync(join(dir, 'b.yml'), DEPLOYMENT.split('---')[0]!);
    const walked = cli(['inject', '-f', dir, '--config', configFile()]);
    expect(walked.status, walked.stderr).toBe(0);
    expect(parseAllDocuments(walked.stdout).map((d) => d.toJS().kind)).toEqual(['StatefulSet', 'Service', 'Deployment', 'NetworkPolicy']);
    mkdirSync(join(dir, 'apps'));
    writeFileSync(join(dir, 'apps', 'c.yaml'), fixture('deployments-list.yaml'));
    expect(parseAllDocuments(cli(['inject', '-f', dir, '-R', '--config', configFile()]).stdout).map((d) => d.toJS().kind)).toEqual([
      'StatefulSet', 'Service', 'List', 'Deployment', 'NetworkPolicy',
    ]);
    const missing = cli(['inject', '-f', join(dir, 'nope.yaml'), '--config', configFile()]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`podvpn: ${join(dir, 'nope.yaml')}: no such file or directory\n`);
  });

  it('says so for empty or comment-only input and hints at rendering Helm templates', () => {
    const empty = cli(['inject', '-f', '-', '--config', configFile()], '# nothing here yet\n---\n');
    expect(empty.status).toBe(1);
    expect(empty.stderr).toMatch(/standard input: no Kubernetes objects \(empty, or only comments\)/);
    const helm = cli(['inject', '-f', '-', '--config', configFile()], 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include "app.fullname" . }}\n');
    expect(helm.status).toBe(1);
    expect(helm.stderr).toMatch(/looks like a Helm template: render it first \(helm template/);
    const unparsable = cli(['inject', '-f', '-', '--config', configFile()], '{{- if .Values.enabled }}\napiVersion: v1\nkind: Pod\n{{- end }}\n');
    expect(unparsable.status).toBe(1);
    expect(unparsable.stderr).toMatch(/is not valid YAML: .*looks like a Helm template/);
    // Negative control: Alertmanager-style templates in a ConfigMap's text are not Helm.
    const alerts = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: rules, namespace: downloads }\ndata:\n  rule: |\n    {{ $labels.instance }} is down\n  summary: "{{ $value }}"\n';
    const text = cli(['inject', '-f', '-', '--config', configFile()], alerts);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toBe(alerts);
  });

  it('explains usage errors in one line, with the nearest flag or command', () => {
    const noFile = cli(['inject']);
    expect(noFile.status).toBe(2);
    expect(noFile.stderr).toBe('podvpn: inject needs -f FILE, -f DIR or -f - (standard input)\nRun "podvpn help" for usage.\n');
    expect(cli(['inject', '--namepsace', 'x']).stderr).toMatch(/^podvpn: inject has no flag --namepsace; did you mean --namespace\?\n/);
    expect(cli(['injcet']).stderr).toMatch(/unknown command "injcet"; did you mean "inject"\?/);
    expect(cli(['serve', '--bogus']).status).toBe(2);
    expect(cli(['serve', '--bogus']).stderr).not.toMatch(/Usage:/);
    const level = cli(['serve', '--log-level', 'chatty']);
    expect(level.status).toBe(2);
    expect(level.stderr).toBe('podvpn: --log-level must be one of fatal, error, warn, info, debug, trace, silent; got "chatty"\nRun "podvpn help" for usage.\n');
  });
});

describe('podvpn inject against a live cluster (the kubeconfig, like istioctl kube-inject)', () => {
  function cliAsync(args: string[], input: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (status) => resolve({ status, stdout, stderr }));
      child.stdin.end(input);
    });
  }

  it('reads the ranges, the context namespace and the namespaces\' Pod Security from the cluster', async () => {
    const { KubeApiDouble } = await import('./kube-api-double/index.js');
    const api = await KubeApiDouble.start({ serviceCIDRs: ['10.43.0.0/16'] }); // k3s's ranges
    try {
      api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'k3s-1' }, spec: { podCIDR: '10.42.0.0/24', podCIDRs: ['10.42.0.0/24'] } });
      api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'k3s-2' }, spec: { podCIDR: '10.42.1.0/24', podCIDRs: ['10.42.1.0/24'] } });
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
      api.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.43.0.0/16'] } });
      api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.43.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } });
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' } } });
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media', labels: { 'podvpn.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'baseline' } } });
      const kc = api.kubeConfig();
      const context = kc.getCurrentContext();
      const kubeconfig = join(tempDir(), 'kubeconfig');
      writeFileSync(kubeconfig, kc.exportConfig());
      const env = { ...NO_CLUSTER, KUBECONFIG: kubeconfig };
      const withContextNs = join(tempDir(), 'kubeconfig-downloads');
      const exported = JSON.parse(kc.exportConfig()) as { contexts: Array<{ name: string; context: Record<string, string> }> };
      for (const c of exported.contexts) if (c.name === context) c.context.namespace = 'downloads';
      writeFileSync(withContextNs, JSON.stringify(exported));

      const ok = await cliAsync(['inject', '-f', '-', '--kubeconfig', withContextNs], fixture('prowlarr-base.yaml'), env);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stderr).toMatch(/cluster ranges from kubeconfig .*: pods 10\.42\.0\.0\/23 \(nodes' spec\.podCIDRs/);
      expect(ok.stderr).toMatch(/Deployment\/prowlarr in downloads: injected through gateway default/);
      const [deployment] = parseAllDocuments(ok.stdout).map((d) => d.toJS());
      expect(deployment.spec.template.metadata.annotations['podvpn.io/client-settings']).toContain("K8S_DNS_IPS='10.43.0.10'");
      expect(deployment.spec.template.spec.dnsConfig.searches[0]).toBe('downloads.svc.cluster.local');

      const baseline = await cliAsync(['inject', '-f', '-', '-n', 'media'], fixture('prowlarr-base.yaml'), env);
      expect(baseline.status).toBe(1);
      expect(baseline.stderr).toMatch(/Deployment\/prowlarr in media: refused: namespace media enforces Pod Security level "baseline"/);
    } finally {
      await api.close();
    }
  }, 60_000);
});

describe('podvpn certs', () => {
  it('writes a CA and serving certificate that openssl verifies, keys 0600, and reuses them', () => {
    const dir = tempDir();
    const first = run(['certs', '--out', dir, '--dns-name', 'podvpn-webhook.podvpn-system.svc', '--dns-name', 'localhost']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^wrote CA/);
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')], { encoding: 'utf8' });
    expect(verify.stdout.trim()).toBe(`${join(dir, 'tls.crt')}: OK`);
    const text = spawnSync('openssl', ['x509', '-in', join(dir, 'tls.crt'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/DNS:podvpn-webhook\.podvpn-system\.svc, DNS:localhost/);
    expect(text).toMatch(/TLS Web Server Authentication/);
    expect(text).toMatch(/CA:FALSE/);
    const caText = spawnSync('openssl', ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
    expect(caText).toMatch(/CA:TRUE/);
    expect(caText).toMatch(/Certificate Sign/);
    expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const before = readFileSync(join(dir, 'tls.crt'), 'utf8');
    const second = run(['certs', '--out', dir, '--dns-name', 'podvpn-webhook.podvpn-system.svc', '--dns-name', 'localhost']);
    expect(second.stdout).toMatch(/^kept existing/);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(before);
  });
});

describe('podvpn serve as a process', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });

  function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  }

  async function waitFor<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('starts standalone with built-in defaults, serves, counts, and drains on SIGTERM', async () => {
    const certs = tempDir();
    const logs: string[] = [];
    const webhookPort = 20_000 + Math.floor(Math.random() * 20_000);
    const adminPort = webhookPort + 1;
    child = spawn(
      process.execPath,
      [CLI, 'serve', '--listen', `127.0.0.1:${webhookPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--certs-dir', certs, '--shutdown-delay', '1'],
      { env: { ...process.env, KUBECONFIG: '/nonexistent', HOME: certs }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (c: Buffer) => logs.push(...c.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));

    await waitFor(async () => ((await httpGet(adminPort, '/readyz')).status === 200 ? true : undefined), 30_000);
    expect(existsSync(join(certs, 'ca.key'))).toBe(true);
    const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
    const reply = await post(webhookPort, ca, readFileSync(join(ROOT, 'examples', 'review.json')));
    expect(reply.json().response.allowed).toBe(true);

    const get = await new Promise<{ status: number; allow: unknown }>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: webhookPort, path: '/mutate', ca, servername: 'localhost' }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, allow: res.headers.allow });
      }).on('error', reject);
    });
    expect(get).toEqual({ status: 405, allow: 'POST' });

    const metrics = (await httpGet(adminPort, '/metrics')).body;
    expect(metrics).toMatch(/podvpn_admission_reviews_total\{outcome="injected",reason="default"\} 1/);
    expect(metrics).toMatch(/podvpn_admission_review_duration_seconds_count\{outcome="injected"\} 1/);

    child.kill('SIGTERM');
    await waitFor(async () => ((await httpGet(adminPort, '/readyz')).status === 503 ? true : undefined), 2000);
    expect(await exited).toBe(0);

    const json = logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(json.some((l) => /standalone: no cluster configured/.test(l.msg))).toBe(true);
    const review = json.find((l) => l.msg === 'review');
    expect(review).toMatchObject({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', namespace: 'downloads', pod: 'qbittorrent-7d9c6b8f5-', outcome: 'injected' });
    expect(logs.join('\n')).not.toMatch(/PRIVATE KEY/);
    expect(logs.join('\n')).not.toMatch(/Deprecation/);
  }, 60_000);
});
