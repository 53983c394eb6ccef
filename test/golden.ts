// The one golden-file harness. Convention, in a testdata/ directory:
//
//   <case>.input.yaml                the input
//   <case>.golden.yaml               its expected output, or, for a harness with several outputs,
//   <case>.<output>.golden.yaml      one per output (webhook, offline, ...)
//
// `npm run test:golden:refresh` (REFRESH_GOLDEN=1) rewrites every golden of every harness and deletes
// orphans; otherwise a missing golden fails and so does an orphan (a golden whose case or output is
// gone). Review the diff of a refresh like code.

import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

export const REFRESH = process.env.REFRESH_GOLDEN === '1' || process.env.REFRESH_GOLDEN === 'true';

const INPUT = '.input.yaml';
const GOLDEN = '.golden.yaml';

/** The case names of a testdata directory, sorted. */
export function goldenCases(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(INPUT))
    .map((f) => f.slice(0, -INPUT.length))
    .sort();
}

export function readInput(dir: string, name: string): string {
  return readFileSync(join(dir, `${name}${INPUT}`), 'utf8');
}

export function goldenPath(dir: string, name: string, output?: string): string {
  return join(dir, `${name}${output === undefined ? '' : `.${output}`}${GOLDEN}`);
}

/** Compare `text` with the golden (or write it, when refreshing). */
export function expectGolden(dir: string, name: string, output: string | undefined, text: string): void {
  expectGoldenFile(goldenPath(dir, name, output), text);
}

/**
 * The same for a golden whose cases live in the test's code, not in input files (the agent's
 * rendered firewall and tunnel plans): one refresh switch, one failure message.
 */
export function expectGoldenFile(path: string, text: string): void {
  if (REFRESH) writeFileSync(path, text);
  if (!existsSync(path)) throw new Error(`no golden ${path}: run npm run test:golden:refresh and review the diff`);
  expect(text, `${path} differs: run npm run test:golden:refresh and review the diff`).toBe(readFileSync(path, 'utf8'));
}

/**
 * Goldens in `dir` that belong to no case or to an output the harness does not write (`outputs`:
 * the outputs it writes; `undefined` stands for `<case>.golden.yaml`). Refreshing deletes them.
 */
export function orphanGoldens(dir: string, outputs: Array<string | undefined>): string[] {
  const wanted = new Set(goldenCases(dir).flatMap((name) => outputs.map((o) => goldenPath(dir, name, o))));
  const orphans = readdirSync(dir)
    .filter((f) => f.endsWith(GOLDEN) || (!f.endsWith(INPUT) && f.endsWith('.yaml')) || f.endsWith('.injected'))
    .map((f) => join(dir, f))
    .filter((p) => !wanted.has(p));
  if (REFRESH) {
    for (const o of orphans.filter((p) => p.endsWith(GOLDEN))) unlinkSync(o);
    return orphans.filter((p) => !p.endsWith(GOLDEN));
  }
  return orphans;
}
