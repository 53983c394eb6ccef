// Every temporary file of a test run (generated CA keys among them) goes under one directory that is
// removed when the run ends: TMPDIR points there for the workers and every process they start.
// PODVPN_KEEP_TEST_TMP=1 keeps it (its path is printed) for debugging.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'podvpn-run-'));
  // Traversable (not listable by others' guesses: names are random) so the image test can run its
  // server as nobody in a directory under it; each test's own directory stays 0700.
  chmodSync(dir, 0o711);
  process.env.TMPDIR = dir;
  return () => {
    if (process.env.PODVPN_KEEP_TEST_TMP === '1') process.stdout.write(`kept test files in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  };
}
