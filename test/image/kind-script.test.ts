// scripts/kind-e2e.sh needs a Docker engine and cannot run here. This checks what can be checked
// without one: it parses, it says so in its header, and the names it relies on match the product.

import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIENT_INIT_NAME, LABEL_INJECT, LABEL_MANAGED_BY, NAMESPACE_INJECT_VALUE, PRODUCT, SYSTEM_NAMESPACE, VERSION } from '../../src/constants.js';
import { gatewayServiceName } from '../../src/config/schema.js';
import { REPO_ROOT, find, render } from '../manifests/render.js';

const path = join(REPO_ROOT, 'scripts/kind-e2e.sh');
const script = readFileSync(path, 'utf8');

describe('scripts/kind-e2e.sh', () => {
  it('is executable bash that parses', () => {
    expect(statSync(path).mode & 0o111).not.toBe(0);
    expect(script.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(() => execFileSync('bash', ['-n', path], { stdio: 'pipe' })).not.toThrow();
    expect(script).toContain('set -euo pipefail');
  });

  it('says up front that it needs a Docker engine and cannot run in CI', () => {
    const header = script.split('\n').slice(0, 10).join('\n');
    expect(header).toMatch(/NEEDS A DOCKER ENGINE/);
    expect(header).toMatch(/cannot run/);
  });

  it('installs a NetworkPolicy-enforcing CNI and the manifests of this checkout', () => {
    expect(script).toContain('disableDefaultCNI: true');
    expect(script).toMatch(/projectcalico\/calico\/\$\{CALICO_VERSION\}\/manifests\/calico\.yaml/);
    expect(script).toContain('k apply -k manifests/');
  });

  it('uses the names the manifests and the webhook use', () => {
    const objects = render('.');
    const webhook = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE);
    expect(webhook.spec.template.spec.containers[0].image).toBe(`ghcr.io/podvpn/podvpn:v${VERSION}`);
    expect(script).toContain('ghcr.io/podvpn/podvpn:v$(node -p');
    expect(script).toContain(`NS_SYSTEM=${SYSTEM_NAMESPACE}`);
    expect(script).toContain(`GATEWAY=${gatewayServiceName('default')}`);
    find(objects, 'Deployment', gatewayServiceName('default'), SYSTEM_NAMESPACE);
    expect(script).toContain(`${LABEL_INJECT}: ${NAMESPACE_INJECT_VALUE}`);
    expect(script).toContain(CLIENT_INIT_NAME);
    expect(script).toContain(`${LABEL_MANAGED_BY}=${PRODUCT}`);
    // The VPN Secret it creates is the one the gateway reads.
    const gw = find(objects, 'Deployment', gatewayServiceName('default'), SYSTEM_NAMESPACE);
    const gluetun = gw.spec.template.spec.initContainers.find((c: { name: string }) => c.name === 'gluetun');
    expect(gluetun.envFrom[0].secretRef.name).toBe(`${gatewayServiceName('default')}-vpn`);
    expect(script).toContain('"${GATEWAY}-vpn"');
  });

  it('checks egress through the VPN, and no egress with the tunnel down or the gateway down', () => {
    for (const check of ['check 4', 'check 5', 'check 6', 'check 7']) expect(script).toContain(check);
    expect(script).toContain('expect_blocked e2e-routed "tunnel down"');
    expect(script).toContain('expect_blocked e2e-routed "gateway down"');
  });
});
