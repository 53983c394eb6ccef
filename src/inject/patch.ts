// The injection (pure): a pod in, an RFC 6902 patch out. The patch is valid against the object as
// the API server sent it: missing or null lists and maps, no name, no namespace in the object.

import type { V1Container, V1Volume } from '@kubernetes/client-node';
import type { Config } from '../config/schema.js';
import {
  ANNOTATION_CLIENT_SETTINGS,
  ANNOTATION_STATUS,
  CLIENT_CONFIG_MOUNT,
  CLIENT_INIT_COMMAND,
  CLIENT_INIT_NAME,
  CLIENT_SETTINGS_FILE,
  CLIENT_SIDECAR_COMMAND,
  CLIENT_SIDECAR_NAME,
  CLIENT_NO_TOKEN_VOLUME_NAME,
  CLIENT_VOLUME_NAME,
  LABEL_EXIT,
  LABEL_ROUTED,
  SERVICE_ACCOUNT_TOKEN_PATH,
  VERSION,
} from '../constants.js';
import { agentInjectionPatch } from './agent-patch.js';
import { dnsConfig, type Injection, undoRecord, type InjectionInput, listAppend, mapEntries, noTokenVolume } from './patch-parts.js';
import { renderSettingsScript } from './settings.js';
import type { InjectionStatus, PatchOperation } from './types.js';

export function injectionPatch(input: InjectionInput): Injection {
  if (input.dataPlane === 'agent') return agentInjectionPatch(input);
  const { pod, gateway, config } = input;
  const spec = pod.spec ?? {};
  const native = config.sidecarMode === 'native';
  const init = clientContainer(CLIENT_INIT_NAME, CLIENT_INIT_COMMAND, config);
  const sidecar = clientContainer(CLIENT_SIDECAR_NAME, CLIENT_SIDECAR_COMMAND, config);
  if (native) sidecar.restartPolicy = 'Always';

  const status: InjectionStatus = {
    version: VERSION,
    gateway: gateway.name,
    ...(input.exit === undefined ? {} : { exit: input.exit }),
    initContainers: native ? [CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME] : [CLIENT_INIT_NAME],
    containers: native ? [] : [CLIENT_SIDECAR_NAME],
    volumes: [CLIENT_VOLUME_NAME, CLIENT_NO_TOKEN_VOLUME_NAME],
    ...undoRecord(pod, native),
  };
  const dns = dnsConfig(input);

  const patch: PatchOperation[] = [];
  if (pod.metadata === undefined || pod.metadata === null) patch.push({ op: 'add', path: '/metadata', value: {} });
  patch.push(...mapEntries('/metadata/labels', pod.metadata?.labels, { [LABEL_ROUTED]: gateway.name, ...(input.exit === undefined ? {} : { [LABEL_EXIT]: input.exit }) }));
  patch.push(
    ...mapEntries('/metadata/annotations', pod.metadata?.annotations, {
      [ANNOTATION_STATUS]: JSON.stringify(status),
      [ANNOTATION_CLIENT_SETTINGS]: renderSettingsScript(input.settings),
    }),
  );
  if (pod.spec === undefined || pod.spec === null) patch.push({ op: 'add', path: '/spec', value: {} });

  // The client init goes first: the app's own init containers must not run before routing exists.
  const leading = native ? [init, sidecar] : [init];
  if (Array.isArray(spec.initContainers)) {
    leading.forEach((c, i) => patch.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  } else {
    patch.push({ op: 'add', path: '/spec/initContainers', value: leading });
  }
  if (!native) patch.push(...listAppend('/spec/containers', spec.containers, sidecar));
  patch.push(...listAppend('/spec/volumes', spec.volumes, clientVolume(), noTokenVolume()));

  patch.push({ op: 'add', path: '/spec/dnsPolicy', value: 'None' });
  patch.push({ op: 'add', path: '/spec/dnsConfig', value: dns.config });
  return { patch, warnings: dns.warnings };
}



function clientContainer(name: string, command: string[], config: Config): V1Container {
  return {
    name,
    image: config.images.client,
    imagePullPolicy: config.images.pullPolicy,
    command: [...command],
    resources: { requests: { ...config.resources.requests }, limits: { ...config.resources.limits } },
    securityContext: {
      // ip, bridge and the VXLAN link need NET_ADMIN; udhcpc's packet socket and ping need NET_RAW.
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      privileged: false,
      allowPrivilegeEscalation: false,
      // Capabilities only reach root in Kubernetes (no ambient capabilities): root, explicitly, even
      // when the pod asks for runAsNonRoot.
      runAsUser: 0,
      runAsNonRoot: false,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: CLIENT_VOLUME_NAME, mountPath: CLIENT_CONFIG_MOUNT, readOnly: true },
      // Hides the app's API token from the client (see SERVICE_ACCOUNT_TOKEN_PATH): the client never
      // calls the API, and the ServiceAccount plugin skips a container with a mount here.
      { name: CLIENT_NO_TOKEN_VOLUME_NAME, mountPath: SERVICE_ACCOUNT_TOKEN_PATH, readOnly: true },
    ],
  };
}

function clientVolume(): V1Volume {
  return {
    name: CLIENT_VOLUME_NAME,
    downwardAPI: {
      defaultMode: 0o444,
      items: [
        {
          path: CLIENT_SETTINGS_FILE,
          fieldRef: { fieldPath: `metadata.annotations['${ANNOTATION_CLIENT_SETTINGS}']` },
        },
      ],
    },
  };
}
