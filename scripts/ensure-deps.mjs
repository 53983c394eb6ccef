// Runs before `npm start` and `npm test`: on a fresh clone (or after the lock file changed), install
// the exact dependencies from package-lock.json, so each README command works on its own.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync('package-lock.json').mtimeMs;
if (stale) {
  process.stderr.write('podvpn: installing dependencies from package-lock.json (npm ci)\n');
  execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}
