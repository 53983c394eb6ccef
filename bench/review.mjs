// Benchmark inputs: AdmissionReviews as the API server sends them for a controller-created pod.
// Deterministic (no randomness, fixed uids and times) so every run measures the same bytes.
//
// The realistic review (~6 KB compact JSON, as the API server sends it) is a qBittorrent pod made by
// a Deployment's ReplicaSet: generateName and no name, ownerReferences, the managedFields entry the
// controller-manager writes, an init container, the app and an exporter sidecar with env, probes and
// resources, PVCs, an emptyDir and the kube-api-access projected volume the ServiceAccount admission
// plugin adds before any webhook runs.

const UID = '8f6c1a52-3d0e-4f7b-9a61-2c5d7e90b4a1';
const RS_UID = '0b5a3d3e-1111-4c7e-9d2f-7a4f1e2c9a10';
const RS = 'qbittorrent-7d9c6b8f5';

function appContainer(name, envExtra = []) {
  return {
    name,
    image: 'lscr.io/linuxserver/qbittorrent:5.0.3',
    imagePullPolicy: 'IfNotPresent',
    env: [
      { name: 'TZ', value: 'Europe/Berlin' },
      { name: 'PUID', value: '1000' },
      { name: 'PGID', value: '1000' },
      { name: 'UMASK', value: '002' },
      { name: 'WEBUI_PORT', value: '8080' },
      ...envExtra,
    ],
    ports: [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'bt-tcp', containerPort: 6881, protocol: 'TCP' },
    ],
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    livenessProbe: {
      httpGet: { path: '/', port: 'http', scheme: 'HTTP' },
      initialDelaySeconds: 30, timeoutSeconds: 5, periodSeconds: 30, successThreshold: 1, failureThreshold: 5,
    },
    volumeMounts: [
      { name: 'config', mountPath: '/config' },
      { name: 'downloads', mountPath: '/downloads' },
      { name: 'kube-api-access-7xk2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
}

function exporterContainer() {
  return {
    name: 'exporter',
    image: 'ghcr.io/martabal/qbittorrent-exporter:v1.6.0',
    imagePullPolicy: 'IfNotPresent',
    env: [
      { name: 'QBITTORRENT_BASE_URL', value: 'http://localhost:8080' },
      { name: 'QBITTORRENT_USERNAME', value: 'admin' },
      { name: 'QBITTORRENT_PASSWORD', valueFrom: { secretKeyRef: { name: 'qbittorrent-webui', key: 'password' } } },
    ],
    ports: [{ name: 'metrics', containerPort: 8090, protocol: 'TCP' }],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
    volumeMounts: [{ name: 'kube-api-access-7xk2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
}

/** The fieldsV1 the controller-manager records for one container it set. */
function containerFields(c) {
  const f = { '.': {}, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:resources': { '.': {}, 'f:requests': {} } };
  if (c.env) {
    f['f:env'] = { '.': {} };
    for (const e of c.env) f['f:env'][`k:{"name":"${e.name}"}`] = { '.': {}, 'f:name': {}, [e.valueFrom ? 'f:valueFrom' : 'f:value']: {} };
  }
  if (c.ports) {
    f['f:ports'] = { '.': {} };
    for (const p of c.ports) f['f:ports'][`k:{"containerPort":${p.containerPort},"protocol":"${p.protocol}"}`] = { '.': {}, 'f:containerPort': {}, 'f:name': {}, 'f:protocol': {} };
  }
  if (c.livenessProbe) f['f:livenessProbe'] = { '.': {}, 'f:httpGet': { '.': {}, 'f:path': {}, 'f:port': {} } };
  if (c.readinessProbe) f['f:readinessProbe'] = { '.': {}, 'f:tcpSocket': { '.': {}, 'f:port': {} } };
  f['f:volumeMounts'] = { '.': {} };
  for (const m of c.volumeMounts ?? []) {
    if (!m.name.startsWith('kube-api-access')) f['f:volumeMounts'][`k:{"mountPath":"${m.mountPath}"}`] = { '.': {}, 'f:mountPath': {}, 'f:name': {} };
  }
  return f;
}

function pod({ containers, initContainers }) {
  const fieldsContainers = {};
  for (const c of containers) fieldsContainers[`k:{"name":"${c.name}"}`] = containerFields(c);
  const fieldsInit = {};
  for (const c of initContainers) fieldsInit[`k:{"name":"${c.name}"}`] = containerFields(c);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${RS}-`,
      labels: { 'app.kubernetes.io/name': 'qbittorrent', 'app.kubernetes.io/instance': 'qbittorrent', 'pod-template-hash': '7d9c6b8f5' },
      annotations: { 'checksum/config': '3f9a2c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: RS, uid: RS_UID, controller: true, blockOwnerDeletion: true }],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-11-22T09:58:12Z',
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, 'f:checksum/config': {} },
              'f:generateName': {},
              'f:labels': { '.': {}, 'f:app.kubernetes.io/instance': {}, 'f:app.kubernetes.io/name': {}, 'f:pod-template-hash': {} },
              'f:ownerReferences': { '.': {}, [`k:{"uid":"${RS_UID}"}`]: {} },
            },
            'f:spec': {
              'f:containers': fieldsContainers,
              'f:initContainers': fieldsInit,
              'f:securityContext': { '.': {}, 'f:fsGroup': {} },
              'f:volumes': {
                '.': {},
                'k:{"name":"config"}': { '.': {}, 'f:name': {}, 'f:persistentVolumeClaim': { '.': {}, 'f:claimName': {} } },
                'k:{"name":"downloads"}': { '.': {}, 'f:name': {}, 'f:persistentVolumeClaim': { '.': {}, 'f:claimName': {} } },
              },
            },
          },
        },
      ],
    },
    spec: {
      volumes: [
        { name: 'config', persistentVolumeClaim: { claimName: 'qbittorrent-config' } },
        { name: 'downloads', persistentVolumeClaim: { claimName: 'media-downloads' } },
        {
          name: 'kube-api-access-7xk2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      initContainers,
      containers,
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: { fsGroup: 1000 },
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

function initContainer() {
  return {
    name: 'init-permissions',
    image: 'busybox:1.37',
    command: ['sh', '-c', 'chown -R 1000:1000 /config'],
    resources: {},
    volumeMounts: [{ name: 'config', mountPath: '/config' }],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
}

function review(object) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: UID,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'downloads',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: 'a1c3e5f7-2b4d-4f6a-8c0e-1f3b5d7f9a2c',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

export const REVIEW_UID = UID;

/** The ~6 KB review of the throughput and latency cells. */
export function realisticReview() {
  return review(pod({ initContainers: [initContainer()], containers: [appContainer('qbittorrent'), exporterContainer()] }));
}

/**
 * Cost growth: the realistic pod with `containers` app containers (each with its managedFields entry,
 * as a real pod of that size would carry), and `envVars` extra env vars on the first one.
 */
export function growthReview({ containers = 1, envVars = 0 }) {
  const env = Array.from({ length: envVars }, (_, i) => ({ name: `EXTRA_SETTING_${i}`, value: `value-${i}` }));
  const list = Array.from({ length: containers }, (_, i) => appContainer(i === 0 ? 'qbittorrent' : `worker-${i}`, i === 0 ? env : []));
  return review(pod({ initContainers: [initContainer()], containers: list }));
}
