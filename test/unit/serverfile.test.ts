/** Replacing server.yaml in place (add-client, remove-client): atomic, mode kept whatever the umask. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { replaceFile } from '../../src/cli/serverfile.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('the new file has the old mode though the umask would take group read away, and nothing is left beside it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tvpn-serverfile-'));
  dirs.push(dir);
  const file = join(dir, 'server.yaml');
  writeFileSync(file, 'old\n', { mode: 0o640 });
  const umask = process.umask(0o077);
  try {
    replaceFile(file, 'new\n', 0o640);
  } finally {
    process.umask(umask);
  }
  expect(readFileSync(file, 'utf8')).toBe('new\n');
  expect(statSync(file).mode & 0o777).toBe(0o640);
  expect(readdirSync(dir)).toEqual(['server.yaml']);
});
