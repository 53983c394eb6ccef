// What counts as a VPN already in the pod: the images and settings home-lab manifests use, and the
// look-alikes that must not count (a refusal the user has to annotate away is a cost too).

import type { V1Container } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { existingVpn } from './decision.js';

const APP = { name: 'app', image: 'ghcr.io/home-operations/qbittorrent:5.0.4' };
const pod = (c: V1Container, where: 'containers' | 'initContainers' = 'containers') =>
  where === 'containers' ? { containers: [APP, c] } : { containers: [APP], initContainers: [c] };

describe('existingVpn', () => {
  it.each([
    ['gluetun', { name: 'gluetun', image: 'ghcr.io/qdm12/gluetun:v3.40.0' }, 'gluetun'],
    ['gluetun from Docker Hub, any name', { name: 'tunnel', image: 'qmcgaw/gluetun' }, 'gluetun'],
    ['gluetun pinned by digest', { name: 'vpn', image: 'qmcgaw/gluetun@sha256:0123' }, 'gluetun'],
    ['a gluetun-based image, by its settings', { name: 'vpn', image: 'registry.local/vpn:1', env: [{ name: 'VPN_SERVICE_PROVIDER', value: 'mullvad' }] }, 'gluetun'],
    ['pod-gateway client by image', { name: 'gateway-init', image: 'ghcr.io/angelnu/pod-gateway:v1.11.1' }, 'a pod-gateway client added by hand'],
    ['pod-gateway client by command', { name: 'routes', image: 'registry.local/gw:1', command: ['/bin/client_init.sh'] }, 'a pod-gateway client added by hand'],
    ['transmission-openvpn', { name: 'transmission', image: 'haugene/transmission-openvpn:5.3.1' }, 'an app image with OpenVPN built in'],
    ['binhex qbittorrentvpn', { name: 'qbittorrent', image: 'binhex/arch-qbittorrentvpn:5.0.4-1-01' }, 'an app image with OpenVPN built in'],
    ['linuxserver wireguard', { name: 'wg', image: 'lscr.io/linuxserver/wireguard:latest' }, 'WireGuard'],
    ['wg-easy', { name: 'vpn', image: 'ghcr.io/wg-easy/wg-easy:14' }, 'WireGuard'],
    ['wg-quick in a plain image', { name: 'tunnel', image: 'alpine:3.21', command: ['sh', '-c'], args: ['wg-quick up wg0 && sleep infinity'] }, 'WireGuard'],
    ['openvpn client', { name: 'vpn', image: 'dperson/openvpn-client:latest' }, 'OpenVPN'],
  ])('%s', (_, container, what) => {
    expect(existingVpn(pod(container))?.what).toBe(what);
    expect(existingVpn(pod({ ...container, restartPolicy: 'Always' }, 'initContainers'))?.what).toBe(what);
  });

  it.each([
    ['the download client itself', { name: 'qbittorrent', image: 'lscr.io/linuxserver/qbittorrent:5.0.3' }],
    ['gluetun port-forward sync', { name: 'gluetun-port-manager', image: 'snoringdragon/gluetun-qbittorrent-port-manager:1.3' }],
    ['an exporter named after a VPN', { name: 'vpn-status-exporter', image: 'ghcr.io/onedr0p/exportarr:v2.0.1' }],
    ['a sidecar whose name starts like one', { name: 'wg-ui', image: 'ghcr.io/example/dashboard:1' }],
    ["podvpn's own client", { name: 'podvpn-client', image: 'ghcr.io/angelnu/pod-gateway:v1.13.0', command: ['/bin/client_sidecar.sh'] }],
  ])('not a VPN: %s', (_, container) => {
    expect(existingVpn(pod(container))).toBeUndefined();
  });

  it('names the container and its image', () => {
    expect(existingVpn(pod({ name: 'tunnel', image: 'qmcgaw/gluetun:latest' }))).toEqual({
      container: 'tunnel',
      where: 'container "tunnel" (image qmcgaw/gluetun:latest)',
      what: 'gluetun',
    });
  });
});
