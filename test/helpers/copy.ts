/**
 * A copy of the compiled CLI that an unprivileged uid can run: the checkout may sit where it
 * cannot go (e.g. /root), and node_modules may be a symlink out of it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from './tvpn.js';

/**
 * A new temporary directory (mode 0755) holding in tvpn/ a copy of bin, dist/src, the addon and
 * the runtime dependencies, plus `extra` paths.
 */
export function tempCopyForAnyUser(prefix: string, extra: string[] = []): { dir: string; copy: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const dest = join(dir, 'tvpn');
  for (const p of ['bin', 'dist/src', 'native', 'package.json', ...extra]) cpSync(join(ROOT, p), join(dest, p), { recursive: true });
  for (const dep of runtimePackages()) cpSync(join(ROOT, dep), join(dest, dep), { recursive: true, dereference: true });
  execFileSync('chmod', ['-R', 'a+rX', dest]);
  return { dir, copy: dest };
}

/** node_modules/<package> of every runtime dependency, direct or not (nested ones come with their parent). */
function runtimePackages(): string[] {
  const paths = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  return paths.map((p) => relative(ROOT, p)).filter((rel) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(rel));
}
