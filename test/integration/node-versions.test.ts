/**
 * tvpn runs on Node 20.19 and later, 22 and 24 included, but the suite runs on the system's
 * Node (20 on Debian 12). This runs the tests that reach into Node itself (node:crypto's X25519
 * and ChaCha20-Poly1305, the N-API addon, the CLI) under Node 22 and 24 as well: Node 24
 * refused the JWK import X25519 keys used to go through ("Invalid JWK OKP key"), so no daemon
 * could start on it, and nothing on 20 could show it.
 *
 * The binaries come from test/fetch-node.sh (the npm registry; .ci/run calls it first), so the
 * test itself reaches no network; without them it is skipped, saying how to get them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROOT } from '../helpers/tvpn.js';

const CACHE = process.env['TVPN_NODE_CACHE'] ?? '/var/cache/tvpn-node';
const TESTS = ['noise', 'keys', 'aead', 'aead-runs', 'addon', 'device', 'cli'].map((t) => `test/unit/${t}.test.ts`);

describe('other Node versions', () => {
  for (const major of ['22', '24']) {
    const node = join(CACHE, `node-${major}`, 'bin', 'node');
    test.skipIf(!existsSync(node))(`Node ${major}: crypto, addon and CLI tests${existsSync(node) ? '' : ` [skipped: no ${node}; run test/fetch-node.sh]`}`, () => {
      expect(execFileSync(node, ['--version'], { encoding: 'utf8' })).toMatch(new RegExp(`^v${major}\\.`));
      let out: string;
      try {
        out = execFileSync(node, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...TESTS], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', timeout: 240_000 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`the tests failed under Node ${major}:\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-2000)}`);
      }
      expect(out.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/Test Files +\d+ passed \(\d+\)/);
    }, 300_000);
  }
});
