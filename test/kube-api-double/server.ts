// A local test double of the Kubernetes API server, over real HTTP on 127.0.0.1, speaking the wire
// format @kubernetes/client-node expects. See README.md beside this file for what it does and does not
// do.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import jsonPatch from 'fast-json-patch';
import { parse as parseYaml } from 'yaml';
import { parseAddress, parseCidr, containsAddress, type Cidr, formatAddress } from '../../src/cidr/cidr.js';
import { AdmissionDenied, type AdmissionChainOptions, runMutatingChain, type WebhookCall } from './admission.js';
import { deleteAt, dotted, fieldsV1, getAt, leafPaths, same, setAt, unkey } from './fields.js';
import { apiVersionOf, DEFAULT_RESOURCES, type ResourceType } from './registry.js';

export type KubeObject = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: Record<string, unknown> & {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    generateName?: string;
  };
};

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  verb?: Verb;
  resource?: string;
  namespace?: string;
  name?: string;
  contentType?: string;
  dryRun: boolean;
}

/** A fault: requests that match answer `status` with a Status error (or hang for `delayMs` first). */
export interface FaultRule {
  verb?: Verb;
  resource?: string;
  namespace?: string;
  name?: string;
  /** HTTP status to answer; omitted with `delayMs` means: delay, then serve normally. */
  status?: number;
  message?: string;
  delayMs?: number;
  /** Apply this many times, then disappear (default: until removed). */
  times?: number;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface ManagedEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  paths: Set<string>;
  time: string;
}

interface Stored {
  rt: ResourceType;
  object: KubeObject;
  managed: ManagedEntry[];
}

interface LoggedEvent extends WatchEvent {
  rv: number;
  rt: ResourceType;
  /** The object before a MODIFIED: a selector watch sees an object enter (ADDED) or leave (DELETED). */
  prev?: KubeObject;
}

interface Watcher {
  rt: ResourceType;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  res: ServerResponse;
}

export interface KubeApiDoubleOptions {
  resources?: ResourceType[];
  /**
   * The service ranges Service clusterIPs are allocated from and validated against (a clusterIP
   * outside them is refused with the real API server's message). Default: kubeadm's 10.96.0.0/12.
   */
  serviceCIDRs?: string[];
  /** How many watch events are kept for watches that resume from a resourceVersion (default 1000). */
  eventLogSize?: number;
  port?: number;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class KubeApiDouble {
  readonly requests: RecordedRequest[] = [];
  /** Every mutating webhook call made by the admission chain (see setAdmission). */
  readonly webhookCalls: WebhookCall[] = [];
  private admission: AdmissionChainOptions | undefined;
  private readonly store = new Map<string, Stored>();
  private readonly log: LoggedEvent[] = [];
  private rv = 1;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private faults: Array<FaultRule & { remaining: number }> = [];
  private server: Server;
  private readonly resources: ResourceType[];
  private serviceRanges: Cidr[];
  private nextServiceIP = 10n;
  private readonly eventLogSize: number;
  private portNumber = 0;

  private constructor(opts: KubeApiDoubleOptions) {
    this.resources = opts.resources ?? DEFAULT_RESOURCES;
    this.serviceRanges = (opts.serviceCIDRs ?? ['10.96.0.0/12']).map((c) => parseCidr(c));
    this.eventLogSize = opts.eventLogSize ?? 1000;
    this.server = this.makeServer();
  }

  /** Start on 127.0.0.1 on a random port (or `opts.port`). */
  static async start(opts: KubeApiDoubleOptions = {}): Promise<KubeApiDouble> {
    const api = new KubeApiDouble(opts);
    await api.listen(opts.port ?? 0);
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.portNumber}`;
  }

  /** A KubeConfig pointing at the double, for @kubernetes/client-node. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'double', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test', token: 'double-token' }],
      contexts: [{ name: 'double', cluster: 'double', user: 'test' }],
      currentContext: 'double',
    });
    return kc;
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The API server goes down: connections (watches included) are cut and new ones refused. */
  async down(): Promise<void> {
    await this.close();
  }

  /** Back up on the same port, with the same store. */
  async up(): Promise<void> {
    this.server = this.makeServer();
    await this.listen(this.portNumber);
  }

  /** Inject a fault; returns a function that removes it. */
  fault(rule: FaultRule): () => void {
    const entry = { ...rule, remaining: rule.times ?? Number.POSITIVE_INFINITY };
    this.faults.push(entry);
    return () => {
      this.faults = this.faults.filter((f) => f !== entry);
    };
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** End every open watch (clients see the stream close and re-watch from their resourceVersion). */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forget the event log: watches resuming from an older resourceVersion get 410 Expired. */
  compact(): void {
    this.log.length = 0;
  }

  /**
   * Run a mutating admission chain on pod CREATE (over HTTP), as kube-apiserver does: the in-tree
   * ServiceAccount plugin if asked, the webhooks in order, and one reinvocation pass (see admission.ts).
   * `undefined` turns it off (the default: pods are stored as sent).
   */
  setAdmission(options: AdmissionChainOptions | undefined): void {
    this.admission = options;
  }

  /**
   * Start deleting a namespace as a real cluster does: deletionTimestamp and status.phase Terminating,
   * and (as the namespace controller would) its objects deleted. Until finishTermination(), creates in
   * it are refused by NamespaceLifecycle with 403 "... because it is being terminated".
   */
  terminateNamespace(name: string, opts: { deleteContent?: boolean } = {}): void {
    const rt = this.typeOf({ apiVersion: 'v1', kind: 'Namespace' });
    const s = this.mustGet(rt, undefined, name);
    const next = structuredClone(s.object);
    next.metadata = { ...next.metadata, deletionTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), resourceVersion: undefined };
    next.spec = { finalizers: ['kubernetes'] };
    next.status = { phase: 'Terminating' };
    this.commitChange(s, next, s.managed, false);
    if (opts.deleteContent !== false) {
      for (const o of [...this.store.values()]) {
        if (o.rt.namespaced && o.object.metadata?.namespace === name) this.delete(o.rt, name, o.object.metadata.name!, { dryRun: false });
      }
    }
  }

  /** The namespace controller is done: the namespace and anything left in it are gone. */
  finishTermination(name: string): void {
    this.delete(this.typeOf({ apiVersion: 'v1', kind: 'Namespace' }), undefined, name, { dryRun: false });
  }

  setServiceCIDRs(cidrs: string[]): void {
    this.serviceRanges = cidrs.map((c) => parseCidr(c));
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---- direct store access for tests (no HTTP, no faults, same validation and events) ----

  /** Create or replace an object as manager `test` (an Update). Returns the stored object. */
  put(input: object, manager = 'test'): KubeObject {
    const obj = structuredClone(input) as KubeObject;
    const rt = this.typeOf(obj);
    const ns = rt.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined;
    const name = obj.metadata?.name;
    if (name === undefined) throw new Error('put: metadata.name is required');
    const existing = this.store.get(this.storeKey(rt, ns, name));
    if (existing === undefined) return this.create(rt, ns, obj, { manager, dryRun: false });
    // A test's put replaces whatever is stored: no resourceVersion or uid precondition
    return this.update(rt, ns, name, { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined, uid: undefined } }, { manager, dryRun: false });
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const rt = this.typeOf({ apiVersion, kind });
    const s = this.store.get(this.storeKey(rt, rt.namespaced ? namespace : undefined, name));
    return s === undefined ? undefined : this.render(s);
  }

  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const rt = this.typeOf({ apiVersion, kind });
    return [...this.store.values()]
      .filter((s) => s.rt === rt && (namespace === undefined || s.object.metadata?.namespace === namespace))
      .map((s) => this.render(s));
  }

  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const rt = this.typeOf({ apiVersion, kind });
    try {
      this.delete(rt, rt.namespaced ? namespace : undefined, name, { dryRun: false });
      return true;
    } catch {
      return false;
    }
  }

  /** Requests that changed (or would change) something: everything but get, list and watch. */
  writes(): RecordedRequest[] {
    return this.requests.filter((r) => r.verb !== undefined && !['get', 'list', 'watch'].includes(r.verb));
  }

  // ---- HTTP ----

  private makeServer(): Server {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendError(res, new ApiError(500, 'InternalError', String(err)));
        else res.end();
      });
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.portNumber = (this.server.address() as AddressInfo).port;
  }

  private dropConnections(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://double');
    const query = Object.fromEntries(url.searchParams.entries());
    const body = await readBody(req);
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      contentType: req.headers['content-type'],
      dryRun: query.dryRun === 'All',
    };
    this.requests.push(record);

    if (this.serveDiscovery(url.pathname, res)) return;
    const route = this.route(url.pathname);
    if (route === undefined) {
      return this.sendError(res, new ApiError(404, 'NotFound', `the server could not find the requested resource`));
    }
    const { rt, namespace, name } = route;
    const watch = query.watch === 'true' || query.watch === '1';
    const verb = verbOf(record.method, name, watch);
    Object.assign(record, { verb, resource: rt.resource, namespace, name });

    for (const f of this.faults) {
      if (f.remaining <= 0) continue;
      if (f.verb !== undefined && f.verb !== verb) continue;
      if (f.resource !== undefined && f.resource !== rt.resource) continue;
      if (f.namespace !== undefined && f.namespace !== namespace) continue;
      if (f.name !== undefined && f.name !== name) continue;
      f.remaining--;
      if (f.delayMs !== undefined) {
        await new Promise((r) => setTimeout(r, f.delayMs));
        if (res.destroyed) return; // the client gave up, or the double went down meanwhile
      }
      if (f.status !== undefined) {
        return this.sendError(res, new ApiError(f.status, reasonFor(f.status), f.message ?? `injected fault (${f.status})`));
      }
      break;
    }

    try {
      const dryRun = query.dryRun === 'All';
      if (query.dryRun !== undefined && !dryRun) {
        throw new ApiError(400, 'BadRequest', `Invalid dry run value: ${query.dryRun}`);
      }
      const manager = query.fieldManager;
      switch (verb) {
        case 'get': {
          const s = this.mustGet(rt, namespace, name!);
          return send(res, 200, this.render(s));
        }
        case 'list':
          return send(res, 200, this.listBody(rt, namespace, query.labelSelector, query.fieldSelector));
        case 'watch':
          return this.startWatch(res, rt, namespace, query);
        case 'create': {
          let obj = parseJson(body);
          let warnings: string[] = [];
          if (rt.kind === 'Pod' && this.admission !== undefined) {
            // NamespaceLifecycle runs before the webhooks.
            this.checkNamespaceLifecycle(rt, namespace!, obj.metadata?.name ?? '');
            try {
              const admitted = await runMutatingChain(obj, { namespace: namespace!, dryRun, options: this.admission, calls: this.webhookCalls });
              obj = admitted.pod;
              warnings = admitted.warnings;
            } catch (err) {
              if (err instanceof AdmissionDenied) throw new ApiError(err.code, err.reason, err.message);
              throw err;
            }
          }
          const created = this.create(rt, namespace, obj, { manager: manager ?? userAgentManager(req), dryRun });
          return send(res, 201, created, warnings);
        }
        case 'update': {
          const obj = parseJson(body);
          const updated = this.update(rt, namespace, name!, obj, { manager: manager ?? userAgentManager(req), dryRun });
          return send(res, 200, updated);
        }
        case 'patch': {
          const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
          if (type === 'application/apply-patch+yaml') {
            if (manager === undefined || manager === '') {
              throw new ApiError(400, 'BadRequest', 'PATCH, application/apply-patch+yaml: fieldManager is required for apply requests');
            }
            const force = query.force === 'true';
            const { status, object } = this.apply(rt, namespace, name!, parseApplyBody(body), { manager, force, dryRun });
            return send(res, status, object);
          }
          if (query.force !== undefined) {
            throw new ApiError(400, 'BadRequest', 'force is not allowed for non-apply patch types');
          }
          const patched = this.patch(rt, namespace, name!, type, body, { manager: manager ?? userAgentManager(req), dryRun });
          return send(res, 200, patched);
        }
        case 'delete': {
          const out = this.delete(rt, namespace, name!, { dryRun });
          return send(res, 200, out);
        }
        case 'deletecollection': {
          for (const s of this.select(rt, namespace, query.labelSelector, query.fieldSelector)) {
            this.delete(rt, s.object.metadata?.namespace, s.object.metadata!.name!, { dryRun });
          }
          return send(res, 200, successStatus());
        }
      }
    } catch (err) {
      if (err instanceof ApiError) return this.sendError(res, err);
      throw err;
    }
  }

  private serveDiscovery(path: string, res: ServerResponse): boolean {
    if (path === '/api') {
      send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
      return true;
    }
    if (path === '/apis') {
      const groups = new Map<string, string[]>();
      for (const r of this.resources) {
        if (r.group === '') continue;
        const versions = groups.get(r.group) ?? [];
        if (!versions.includes(r.version)) versions.push(r.version);
        groups.set(r.group, versions);
      }
      send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...groups.entries()].map(([name, versions]) => ({
          name,
          versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
          preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
        })),
      });
      return true;
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/?$/.exec(path);
    if (m === null) return false;
    const group = m[1] !== undefined ? '' : m[2]!;
    const version = m[1] ?? m[3]!;
    const rts = this.resources.filter((r) => r.group === group && r.version === version);
    if (rts.length === 0) {
      this.sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
      return true;
    }
    send(res, 200, {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf({ group, version }),
      resources: rts.map((r) => ({
        name: r.resource,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    });
    return true;
  }

  private route(path: string): { rt: ResourceType; namespace?: string; name?: string } | undefined {
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+?)\/?$/.exec(path);
    if (m === null) return undefined;
    const group = m[1] !== undefined ? '' : m[2]!;
    const version = m[1] ?? m[3]!;
    const segs = m[4]!.split('/').map(decodeURIComponent);
    const find = (resource: string) =>
      this.resources.find((r) => r.group === group && r.version === version && r.resource === resource);
    // /namespaces/{ns}/{resource}[/{name}]: a namespaced resource (unless it is the namespace itself).
    if (segs[0] === 'namespaces' && segs.length >= 3) {
      const rt = find(segs[2]!);
      if (rt === undefined || !rt.namespaced || segs.length > 4) return undefined;
      return { rt, namespace: segs[1], name: segs[3] };
    }
    const rt = find(segs[0]!);
    if (rt === undefined || segs.length > 2) return undefined;
    if (rt.namespaced && segs.length === 2) return undefined; // namespaced objects need their namespace
    return { rt, name: segs[1] };
  }

  private sendError(res: ServerResponse, err: ApiError): void {
    send(res, err.code, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: err.message,
      reason: err.reason,
      ...(err.details === undefined ? {} : { details: err.details }),
      code: err.code,
    });
  }

  // ---- store operations ----

  private typeOf(obj: { apiVersion?: string; kind?: string }): ResourceType {
    const rt = this.resources.find((r) => apiVersionOf(r) === obj.apiVersion && r.kind === obj.kind);
    if (rt === undefined) throw new Error(`the double does not serve ${obj.apiVersion} ${obj.kind}`);
    return rt;
  }

  private storeKey(rt: ResourceType, namespace: string | undefined, name: string): string {
    return `${rt.group}/${rt.resource}/${namespace ?? ''}/${name}`;
  }

  private mustGet(rt: ResourceType, namespace: string | undefined, name: string): Stored {
    const s = this.store.get(this.storeKey(rt, namespace, name));
    if (s === undefined) throw notFound(rt, name);
    return s;
  }

  private render(s: Stored): KubeObject {
    const out = structuredClone(s.object);
    out.metadata!.managedFields = s.managed
      .filter((m) => m.paths.size > 0)
      .map((m) => ({
        manager: m.manager,
        operation: m.operation,
        apiVersion: m.apiVersion,
        time: m.time,
        fieldsType: 'FieldsV1',
        fieldsV1: fieldsV1(m.paths),
      }));
    return out;
  }

  private select(rt: ResourceType, namespace: string | undefined, labelSelector?: string, fieldSelector?: string): Stored[] {
    return [...this.store.values()]
      .filter((s) => s.rt === rt && matches(s.object, namespace, labelSelector, fieldSelector))
      .sort((a, b) => (this.storeKeyOf(a) < this.storeKeyOf(b) ? -1 : 1));
  }

  private storeKeyOf(s: Stored): string {
    return this.storeKey(s.rt, s.object.metadata?.namespace, s.object.metadata!.name!);
  }

  private listBody(rt: ResourceType, namespace: string | undefined, labelSelector?: string, fieldSelector?: string): KubeObject {
    return {
      apiVersion: apiVersionOf(rt),
      kind: `${rt.kind}List`,
      metadata: { resourceVersion: String(this.rv) },
      items: this.select(rt, namespace, labelSelector, fieldSelector).map((s) => this.render(s)),
    };
  }

  /** Identity, validation and the checks the API server makes before any write. */
  private admit(rt: ResourceType, namespace: string | undefined, obj: KubeObject, existing: Stored | undefined): KubeObject {
    const apiVersion = apiVersionOf(rt);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion) {
      throw new ApiError(400, 'BadRequest', `the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersion})`);
    }
    if (obj.kind !== undefined && obj.kind !== rt.kind) {
      throw new ApiError(400, 'BadRequest', `the kind in the data (${obj.kind}) does not match the expected kind (${rt.kind})`);
    }
    const out: KubeObject = { ...structuredClone(obj), apiVersion, kind: rt.kind };
    out.metadata = { ...(out.metadata ?? {}) };
    if (rt.namespaced) {
      if (out.metadata.namespace !== undefined && out.metadata.namespace !== namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      out.metadata.namespace = namespace;
      if (existing === undefined) this.checkNamespaceLifecycle(rt, namespace!, out.metadata.name ?? '');
    } else {
      delete out.metadata.namespace;
    }
    delete out.metadata.managedFields;
    if (existing !== undefined) {
      for (const k of ['uid', 'creationTimestamp'] as const) out.metadata[k] = existing.object.metadata![k];
    }
    if (rt.validate !== undefined) {
      try {
        rt.validate(out);
      } catch (err) {
        const name = out.metadata.name ?? '';
        throw new ApiError(422, 'Invalid', `${rt.kind} "${name}" is invalid: ${(err as Error).message}`, {
          name,
          group: rt.group,
          kind: rt.kind,
        });
      }
    }
    if (rt.kind === 'Service') this.admitService(out, existing);
    if (rt.kind === 'Namespace') {
      out.metadata.labels = { ...(out.metadata.labels ?? {}), 'kubernetes.io/metadata.name': out.metadata.name! };
    }
    return out;
  }

  /** The NamespaceLifecycle admission plugin, for a create: the namespace must exist and not be terminating. */
  private checkNamespaceLifecycle(rt: ResourceType, namespace: string, name: string): void {
    const ns = this.store.get(this.storeKey(this.typeOf({ apiVersion: 'v1', kind: 'Namespace' }), undefined, namespace));
    if (ns === undefined) {
      throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
    }
    if ((ns.object.status as { phase?: string } | undefined)?.phase === 'Terminating') {
      const resource = `${rt.resource}${rt.group === '' ? '' : `.${rt.group}`}`;
      throw new ApiError(
        403,
        'Forbidden',
        `${resource} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        {
          name,
          group: rt.group,
          kind: rt.resource,
          causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }],
        },
      );
    }
  }

  private admitService(svc: KubeObject, existing: Stored | undefined): void {
    const spec = (svc.spec ?? {}) as Record<string, unknown>;
    svc.spec = spec;
    const name = svc.metadata?.name ?? '';
    if (existing !== undefined) {
      const old = (existing.object.spec ?? {}) as Record<string, unknown>;
      spec.clusterIP = spec.clusterIP ?? old.clusterIP;
      spec.clusterIPs = spec.clusterIPs ?? old.clusterIPs;
      return;
    }
    const requested = typeof spec.clusterIP === 'string' && spec.clusterIP !== '' ? spec.clusterIP : undefined;
    if (requested === 'None') {
      spec.clusterIPs = ['None'];
      return;
    }
    if (requested !== undefined) {
      const addr = parseAddress(requested);
      if (!containsAddress(this.serviceRanges, addr.family, addr.network)) {
        const valid = this.serviceRanges.filter((r) => r.family === addr.family).map((r) => `${formatAddress(r.family, r.network)}/${r.prefix}`);
        throw new ApiError(
          422,
          'Invalid',
          `Service "${name}" is invalid: spec.clusterIPs: Invalid value: ["${requested}"]: failed to allocate IP ${requested}: ` +
            `the provided IP (${requested}) is not in the valid range. The range of valid IPs is ${valid.join(',')}`,
          {
            name,
            kind: 'Service',
            causes: [
              {
                reason: 'FieldValueInvalid',
                message: `Invalid value: ["${requested}"]: failed to allocate IP ${requested}: the provided IP (${requested}) is not in the valid range. The range of valid IPs is ${valid.join(',')}`,
                field: 'spec.clusterIPs',
              },
            ],
          },
        );
      }
      spec.clusterIPs = [requested];
      return;
    }
    const range = this.serviceRanges.find((r) => r.family === 4) ?? this.serviceRanges[0];
    if (range === undefined) return;
    const ip = formatAddress(range.family, range.network + this.nextServiceIP++);
    spec.clusterIP = ip;
    spec.clusterIPs = [ip];
  }

  private create(
    rt: ResourceType,
    namespace: string | undefined,
    obj: KubeObject,
    opts: { manager: string; dryRun: boolean; operation?: 'Apply' | 'Update' },
  ): KubeObject {
    const meta = obj.metadata ?? {};
    let name = meta.name;
    if ((name === undefined || name === '') && typeof meta.generateName === 'string') {
      name = `${meta.generateName}${randomUUID().slice(0, 5)}`;
    }
    if (name === undefined || name === '') {
      throw new ApiError(422, 'Invalid', `${rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') {
      throw new ApiError(400, 'BadRequest', 'resourceVersion should not be set on objects to be created');
    }
    const k = this.storeKey(rt, namespace, name);
    if (this.store.has(k)) {
      throw new ApiError(409, 'AlreadyExists', `${rt.resource}${rt.group === '' ? '' : `.${rt.group}`} "${name}" already exists`, {
        name,
        group: rt.group,
        kind: rt.resource,
      });
    }
    const admitted = this.admit(rt, namespace, { ...obj, metadata: { ...meta, name } }, undefined);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    admitted.metadata!.uid = randomUUID();
    admitted.metadata!.creationTimestamp = now;
    admitted.metadata!.generation = 1;
    const stored: Stored = {
      rt,
      object: admitted,
      managed: [{ manager: opts.manager, operation: opts.operation ?? 'Update', apiVersion: apiVersionOf(rt), paths: leafPaths(opts.operation === 'Apply' ? obj : admitted), time: now }],
    };
    return this.commit(k, stored, 'ADDED', opts.dryRun);
  }

  private update(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    obj: KubeObject,
    opts: { manager: string; dryRun: boolean },
  ): KubeObject {
    const existing = this.mustGet(rt, namespace, name);
    if (obj.metadata?.name !== undefined && obj.metadata.name !== name) {
      throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    }
    // A uid in the body is a precondition (a patch naming the uid of a pod since recreated under the
    // same name fails): the storage layer's invalid-object error, answered as a Conflict.
    const uid: unknown = obj.metadata?.uid;
    const existingUid = String(existing.object.metadata!.uid);
    if (typeof uid === 'string' && uid !== '' && uid !== existingUid) {
      const key = `/registry/${rt.group === '' ? '' : `${rt.group}/`}${rt.resource}/${namespace === undefined ? '' : `${namespace}/`}${name}`;
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${rt.resource}${rt.group === '' ? '' : `.${rt.group}`} "${name}": StorageError: invalid object, Code: 4, Key: ${key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: ${uid}, UID in object meta: ${existingUid}`,
        { name, group: rt.group, kind: rt.resource },
      );
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== existing.object.metadata!.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${rt.resource}${rt.group === '' ? '' : `.${rt.group}`} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: rt.group, kind: rt.resource },
      );
    }
    const admitted = this.admit(rt, namespace, { ...obj, metadata: { ...obj.metadata, name } }, existing);
    const managed = takeOwnership(existing, admitted, opts.manager, apiVersionOf(rt));
    return this.commitChange(existing, admitted, managed, opts.dryRun);
  }

  private patch(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    type: string,
    body: string,
    opts: { manager: string; dryRun: boolean },
  ): KubeObject {
    const existing = this.mustGet(rt, namespace, name);
    const current = structuredClone(existing.object);
    let next: KubeObject;
    if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
      // Strategic merge is served as a JSON merge patch: lists are replaced, not merged by key.
      next = mergePatch(current, parseJson(body)) as KubeObject;
    } else if (type === 'application/json-patch+json') {
      const ops = JSON.parse(body) as jsonPatch.Operation[];
      try {
        next = jsonPatch.applyPatch(current, ops, true, false).newDocument;
      } catch (err) {
        throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${(err as Error).message}`);
      }
    } else {
      throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
    }
    const meta = { ...(next.metadata ?? {}) };
    if (meta.resourceVersion === existing.object.metadata!.resourceVersion) delete meta.resourceVersion;
    return this.update(rt, namespace, name, { ...next, metadata: meta }, opts);
  }

  private apply(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    applied: KubeObject,
    opts: { manager: string; force: boolean; dryRun: boolean },
  ): { status: number; object: KubeObject } {
    if (applied.metadata?.name !== undefined && applied.metadata.name !== name) {
      throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    }
    if (applied.apiVersion === undefined || applied.kind === undefined) {
      throw new ApiError(400, 'BadRequest', 'apiVersion and kind must be set in an apply configuration');
    }
    const k = this.storeKey(rt, namespace, name);
    const existing = this.store.get(k);
    const apiVersion = apiVersionOf(rt);
    const appliedPaths = leafPaths(applied);
    if (existing === undefined) {
      const created = this.create(rt, namespace, { ...applied, metadata: { ...applied.metadata, name } }, { ...opts, operation: 'Apply' });
      return { status: 201, object: created };
    }
    // Conflicts: a field this apply sets to a different value than another manager owns it at.
    const conflicts: Array<{ manager: string; path: string }> = [];
    for (const m of existing.managed) {
      if (m.manager === opts.manager && m.operation === 'Apply') continue;
      if (m.manager === opts.manager) continue;
      for (const p of appliedPaths) {
        const owned = [...m.paths].some((q) => q === p || isPrefix(q, p) || isPrefix(p, q));
        if (!owned) continue;
        if (!same(getAt(existing.object, unkey(p)), getAt(applied, unkey(p)))) conflicts.push({ manager: m.manager, path: p });
      }
    }
    if (conflicts.length > 0 && !opts.force) {
      const causes = conflicts.map((c) => ({
        reason: 'FieldManagerConflict',
        message: `conflict with "${c.manager}" using ${apiVersion}`,
        field: dotted(c.path),
      }));
      throw new ApiError(
        409,
        'Conflict',
        `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ${causes.map((c) => `${c.message}: ${c.field}`).join('\n')}`,
        { name, group: rt.group, kind: rt.kind, causes },
      );
    }
    const next = structuredClone(existing.object);
    const managed = existing.managed.map((m) => ({ ...m, paths: new Set(m.paths) }));
    const mine = managed.find((m) => m.manager === opts.manager && m.operation === 'Apply');
    const previouslyMine = mine?.paths ?? new Set<string>();
    // Forced: the other managers lose the conflicting fields.
    for (const c of conflicts) {
      for (const m of managed) {
        if (m.manager === c.manager) {
          for (const q of [...m.paths]) if (q === c.path || isPrefix(q, c.path) || isPrefix(c.path, q)) m.paths.delete(q);
        }
      }
    }
    // Fields this manager applied before and no longer does: removed unless someone else owns them.
    for (const p of previouslyMine) {
      if (appliedPaths.has(p)) continue;
      const ownedByOther = managed.some((m) => m !== mine && m.paths.has(p));
      if (!ownedByOther) deleteAt(next, unkey(p));
    }
    for (const p of appliedPaths) {
      const value = getAt(applied, unkey(p));
      const current = getAt(next, unkey(p));
      const isMap = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
      // An empty map claims the field but leaves what others set inside it; any other leaf replaces.
      if (isMap(value) && Object.keys(value as object).length === 0 && isMap(current)) continue;
      deleteAt(next, unkey(p));
      setAt(next, unkey(p), value);
    }
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (mine === undefined) managed.push({ manager: opts.manager, operation: 'Apply', apiVersion, paths: appliedPaths, time: now });
    else {
      const changed = ![...appliedPaths].every((p) => mine.paths.has(p)) || mine.paths.size !== appliedPaths.size;
      mine.paths = appliedPaths;
      if (changed) mine.time = now;
    }
    const admitted = this.admit(rt, namespace, { ...next, metadata: { ...next.metadata, resourceVersion: undefined } }, existing);
    return { status: 200, object: this.commitChange(existing, admitted, managed, opts.dryRun) };
  }

  private delete(rt: ResourceType, namespace: string | undefined, name: string, opts: { dryRun: boolean }): KubeObject {
    const k = this.storeKey(rt, namespace, name);
    const existing = this.mustGet(rt, namespace, name);
    const rendered = this.render(existing);
    if (opts.dryRun) return rt.kind === 'Pod' ? rendered : successStatus(rt, name, existing);
    this.store.delete(k);
    this.rv++;
    rendered.metadata!.resourceVersion = String(this.rv);
    this.emit({ type: 'DELETED', object: rendered, rv: this.rv, rt });
    if (rt.kind === 'Namespace') {
      // Namespace deletion takes its objects with it (no finalizers in the double).
      for (const s of [...this.store.values()]) {
        if (s.rt.namespaced && s.object.metadata?.namespace === name) this.delete(s.rt, name, s.object.metadata.name!, opts);
      }
    }
    return rt.kind === 'Pod' ? rendered : successStatus(rt, name, existing);
  }

  private commitChange(existing: Stored, admitted: KubeObject, managed: ManagedEntry[], dryRun: boolean): KubeObject {
    const before = { ...existing.object, metadata: { ...existing.object.metadata, resourceVersion: undefined, generation: undefined } };
    const after = { ...admitted, metadata: { ...admitted.metadata, resourceVersion: undefined, generation: undefined } };
    const unchangedObject = same(before, after);
    const unchangedOwners = same(
      existing.managed.map((m) => [m.manager, m.operation, [...m.paths].sort()]),
      managed.map((m) => [m.manager, m.operation, [...m.paths].sort()]),
    );
    if (unchangedObject && unchangedOwners) return this.render(existing); // a no-op write: no new resourceVersion, no event
    const specChanged = !same(existing.object.spec, admitted.spec);
    admitted.metadata!.generation = ((existing.object.metadata!.generation as number | undefined) ?? 1) + (specChanged ? 1 : 0);
    const stored: Stored = { rt: existing.rt, object: admitted, managed: managed.filter((m) => m.paths.size > 0) };
    return this.commit(this.storeKeyOf(existing), stored, 'MODIFIED', dryRun, this.render(existing));
  }

  private commit(k: string, stored: Stored, type: 'ADDED' | 'MODIFIED', dryRun: boolean, prev?: KubeObject): KubeObject {
    if (dryRun) {
      const out = this.render(stored);
      if (type === 'ADDED') delete out.metadata!.resourceVersion;
      return out;
    }
    this.rv++;
    stored.object.metadata!.resourceVersion = String(this.rv);
    this.store.set(k, stored);
    const rendered = this.render(stored);
    this.emit({ type, object: rendered, rv: this.rv, rt: stored.rt, prev });
    return this.render(stored);
  }

  private emit(event: LoggedEvent): void {
    this.log.push(event);
    if (this.log.length > this.eventLogSize) this.log.shift();
    for (const w of this.watchers) this.deliver(w, event);
  }

  private deliver(w: Watcher, event: LoggedEvent): void {
    if (event.rt !== w.rt) return;
    const now = matches(event.object, w.namespace, w.labelSelector, w.fieldSelector);
    let type = event.type;
    if (event.type === 'MODIFIED' && event.prev !== undefined) {
      const before = matches(event.prev, w.namespace, w.labelSelector, w.fieldSelector);
      if (!before && !now) return;
      if (!before) type = 'ADDED';
      else if (!now) type = 'DELETED';
    } else if (!now) return;
    w.res.write(`${JSON.stringify({ type, object: event.object })}\n`);
  }

  private startWatch(res: ServerResponse, rt: ResourceType, namespace: string | undefined, query: Record<string, string>): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { rt, namespace, labelSelector: query.labelSelector, fieldSelector: query.fieldSelector, res };
    const from = query.resourceVersion;
    if (from === undefined || from === '' || from === '0') {
      for (const s of this.select(rt, namespace, w.labelSelector, w.fieldSelector)) {
        res.write(`${JSON.stringify({ type: 'ADDED', object: this.render(s) })}\n`);
      }
    } else {
      const since = Number(from);
      const oldest = this.log[0]?.rv ?? this.rv + 1;
      if (Number.isNaN(since) || (since < oldest - 1 && since < this.rv)) {
        res.write(
          `${JSON.stringify({
            type: 'ERROR',
            object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.rv})`, reason: 'Expired', code: 410 },
          })}\n`,
        );
        res.end();
        return;
      }
      for (const e of this.log) if (e.rv > since) this.deliver(w, e);
    }
    this.watchers.add(w);
    const timeout = Number(query.timeoutSeconds ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      if (timer !== undefined) clearTimeout(timer);
      this.watchers.delete(w);
    });
  }
}

// ---- helpers ----

function verbOf(method: string, name: string | undefined, watch: boolean): Verb {
  switch (method) {
    case 'GET':
      return name !== undefined ? 'get' : watch ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return name !== undefined ? 'delete' : 'deletecollection';
    default:
      return 'get';
  }
}

function reasonFor(status: number): string {
  return (
    {
      400: 'BadRequest',
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'NotFound',
      409: 'Conflict',
      410: 'Expired',
      422: 'Invalid',
      429: 'TooManyRequests',
      500: 'InternalError',
      503: 'ServiceUnavailable',
      504: 'Timeout',
    }[status] ?? 'Unknown'
  );
}

function notFound(rt: ResourceType, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${rt.resource}${rt.group === '' ? '' : `.${rt.group}`} "${name}" not found`, {
    name,
    group: rt.group,
    kind: rt.resource,
  });
}

function successStatus(rt?: ResourceType, name?: string, s?: Stored): KubeObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    ...(rt === undefined ? {} : { details: { name, group: rt.group, kind: rt.resource, uid: s?.object.metadata?.uid } }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    // RFC 7234 warn-code 299, agent "-", as the API server sends admission warnings.
    ...(warnings.length > 0 ? { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`) } : {}),
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(body: string): KubeObject {
  try {
    const v = JSON.parse(body) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as KubeObject;
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the body of the request could not be decoded: ${(err as Error).message}`);
  }
}

function parseApplyBody(body: string): KubeObject {
  try {
    const v = parseYaml(body) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as KubeObject;
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `error decoding YAML: ${(err as Error).message}`);
  }
}

function userAgentManager(req: IncomingMessage): string {
  const ua = req.headers['user-agent'] ?? 'unknown';
  return ua.split('/')[0] ?? 'unknown';
}

function isPrefix(shorter: string, longer: string): boolean {
  const a = unkey(shorter);
  const b = unkey(longer);
  return a.length < b.length && a.every((p, i) => p === b[i]);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function takeOwnership(existing: Stored, next: KubeObject, manager: string, apiVersion: string): ManagedEntry[] {
  const before = leafPaths(existing.object);
  const after = leafPaths(next);
  const changed = new Set<string>();
  for (const p of after) if (!before.has(p) || !same(getAt(existing.object, unkey(p)), getAt(next, unkey(p)))) changed.add(p);
  const managed = existing.managed.map((m) => ({ ...m, paths: new Set([...m.paths].filter((p) => after.has(p) && !changed.has(p))) }));
  if (changed.size > 0) {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const entry = managed.find((m) => m.manager === manager && m.operation === 'Update');
    if (entry === undefined) managed.push({ manager, operation: 'Update', apiVersion, paths: changed, time: now });
    else {
      for (const p of changed) entry.paths.add(p);
      entry.time = now;
    }
  }
  return managed;
}

/** Equality-based and set-based label selectors, as the API server parses them. */
export function matchesLabels(labels: Record<string, string> | undefined, selector: string | undefined): boolean {
  if (selector === undefined || selector.trim() === '') return true;
  const l = labels ?? {};
  const terms = selector.match(/([^,(]+(\([^)]*\))?)/g) ?? [];
  return terms.every((raw) => {
    const t = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t)) !== null) {
      const values = m[3]!.split(',').map((v) => v.trim());
      const has = m[1]! in l && values.includes(l[m[1]!]!);
      return m[2] === 'in' ? has : !has;
    }
    if ((m = /^([^\s!=]+)\s*!=\s*(.*)$/.exec(t)) !== null) return l[m[1]!] !== m[2]!.trim();
    if ((m = /^([^\s!=]+)\s*==?\s*(.*)$/.exec(t)) !== null) return l[m[1]!] === m[2]!.trim();
    if ((m = /^!\s*(\S+)$/.exec(t)) !== null) return !(m[1]! in l);
    return t in l;
  });
}

function matches(obj: KubeObject, namespace: string | undefined, labelSelector?: string, fieldSelector?: string): boolean {
  if (namespace !== undefined && obj.metadata?.namespace !== namespace) return false;
  if (!matchesLabels(obj.metadata?.labels, labelSelector)) return false;
  if (fieldSelector !== undefined && fieldSelector.trim() !== '') {
    for (const term of fieldSelector.split(',')) {
      const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term.trim());
      if (m === null) continue;
      // A field selector compares scalar fields; an object or list never matches a value.
      const field = getAt(obj, m[1]!.split('.'));
      const value = typeof field === 'string' || typeof field === 'number' || typeof field === 'boolean' ? String(field) : '';
      if (m[2] === '!=' ? value === m[3] : value !== m[3]) return false;
    }
  }
  return true;
}

