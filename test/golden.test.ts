// The golden harness's own rules, on a scratch directory: the orphan check finds what it must (a
// detector that never fires proves nothing), and a missing golden fails instead of passing.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectGolden, goldenCases, orphanGoldens, REFRESH } from './golden.js';
import { tempDir } from './helpers.js';

describe.skipIf(REFRESH)('golden harness', () => {
  it('finds goldens without a case, of an output the harness does not write, and of the old convention', () => {
    const dir = tempDir();
    for (const f of ['a.input.yaml', 'a.webhook.golden.yaml', 'a.offline.golden.yaml', 'b.webhook.golden.yaml', 'a.stale.golden.yaml', 'c.yaml', 'c.yaml.injected']) {
      writeFileSync(join(dir, f), 'x: 1\n');
    }
    expect(goldenCases(dir)).toEqual(['a']);
    expect(orphanGoldens(dir, ['webhook', 'offline']).map((p) => p.slice(dir.length + 1)).sort()).toEqual([
      'a.stale.golden.yaml',
      'b.webhook.golden.yaml',
      'c.yaml',
      'c.yaml.injected',
    ]);
    expect(orphanGoldens(dir, [undefined, 'webhook', 'offline', 'stale']).map((p) => p.slice(dir.length + 1)).sort()).toEqual(['b.webhook.golden.yaml', 'c.yaml', 'c.yaml.injected']);
  });

  it('a missing golden fails, a different one fails, an equal one passes', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.input.yaml'), 'x: 1\n');
    expect(() => expectGolden(dir, 'a', 'webhook', 'y: 2\n')).toThrow(/no golden .*a\.webhook\.golden\.yaml: run npm run test:golden:refresh/);
    writeFileSync(join(dir, 'a.webhook.golden.yaml'), 'y: 2\n');
    expect(() => expectGolden(dir, 'a', 'webhook', 'y: 3\n')).toThrow();
    expectGolden(dir, 'a', 'webhook', 'y: 2\n');
  });
});
