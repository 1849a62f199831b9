/**
 * A copy of the compiled CLI that an unprivileged uid can run: the checkout may sit where it
 * cannot go (e.g. /root), and node_modules may be a symlink out of it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './tvpn.js';

/** Copies bin, dist/src, the addon and the runtime dependencies (plus `extra` paths) to dest; returns its bin/tvpn. */
export function copyForAnyUser(dest: string, extra: string[] = []): string {
  for (const p of ['bin', 'dist/src', 'native', 'package.json', ...extra]) cpSync(join(ROOT, p), join(dest, p), { recursive: true });
  for (const dep of ['commander', 'yaml', '@noble']) cpSync(join(ROOT, 'node_modules', dep), join(dest, 'node_modules', dep), { recursive: true, dereference: true });
  execFileSync('chmod', ['-R', 'a+rX', dest]);
  chmodSync(dest, 0o755);
  return join(dest, 'bin/tvpn');
}
