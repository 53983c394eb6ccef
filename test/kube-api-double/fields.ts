// Field paths and ownership for the double's server-side apply: leaves of the JSON object (arrays are
// atomic, as NetworkPolicy's and most lists in practice are; empty objects are leaves too).

export type Path = ReadonlyArray<string>;

/** Server-set metadata: never owned, never applied. */
const SERVER_FIELDS = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'generation',
  'managedFields',
  'deletionTimestamp',
  'selfLink',
]);

export function key(path: Path): string {
  return JSON.stringify(path);
}

export function unkey(k: string): Path {
  return JSON.parse(k) as string[];
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Every owned leaf of an object (identity fields excluded: apiVersion, kind, name, namespace). */
export function leafPaths(obj: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown, path: string[]) => {
    if (isMap(v) && Object.keys(v).length > 0) {
      for (const [k, child] of Object.entries(v)) {
        if (child === undefined) continue;
        if (path.length === 0 && (k === 'apiVersion' || k === 'kind' || k === 'status')) continue;
        if (path.length === 1 && path[0] === 'metadata' && (k === 'name' || k === 'namespace' || SERVER_FIELDS.has(k))) continue;
        walk(child, [...path, k]);
      }
      return;
    }
    if (path.length > 0) out.add(key(path));
  };
  walk(obj, []);
  return out;
}

export function getAt(obj: unknown, path: Path): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (!isMap(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

export function setAt(obj: Record<string, unknown>, path: Path, value: unknown): void {
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const p = path[i]!;
    if (!isMap(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = structuredClone(value);
}

/** Delete a leaf and any parent maps it leaves empty. */
export function deleteAt(obj: Record<string, unknown>, path: Path): void {
  const parents: Array<Record<string, unknown>> = [obj];
  let cur: unknown = obj;
  for (let i = 0; i < path.length - 1; i++) {
    cur = isMap(cur) ? cur[path[i]!] : undefined;
    if (!isMap(cur)) return;
    parents.push(cur);
  }
  delete parents[parents.length - 1]![path[path.length - 1]!];
  for (let i = parents.length - 1; i > 0; i--) {
    if (Object.keys(parents[i]!).length === 0) delete parents[i - 1]![path[i - 1]!];
    else break;
  }
}

/** Deep equality by canonical JSON (key order ignored). */
export function same(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    isMap(v)
      ? Object.fromEntries(
          Object.entries(v)
            .filter(([, x]) => x !== undefined)
            .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
        )
      : v,
  );
}

/** managedFields' FieldsV1 for a set of leaf paths: `{"f:spec":{"f:egress":{}}}`. */
export function fieldsV1(paths: Iterable<string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const k of paths) {
    let cur = root;
    for (const p of unkey(k)) {
      const f = `f:${p}`;
      if (!isMap(cur[f])) cur[f] = {};
      cur = cur[f] as Record<string, unknown>;
    }
  }
  return root;
}

/** `.spec.egress` for conflict messages, as the API server writes them. */
export function dotted(k: string): string {
  return unkey(k)
    .map((p) => (/^[A-Za-z0-9_]+$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`))
    .join('');
}
