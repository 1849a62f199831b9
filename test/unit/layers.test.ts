/**
 * Layers only point down: every import in src/ is checked against one table of which folder
 * may import which. A new folder must be added to the table before it can be imported.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * Folder (or top-level module) of src/ -> the folders it may import besides itself. Read it
 * bottom-up: net, addon, errors (errorMessage) and version import nothing; the protocol core
 * (wireguard), control and crypto never reach the I/O shell, the daemon, config, server, lab
 * or cli; io never reaches daemon, config or cli; config never reaches daemon or cli; nothing
 * imports cli.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  net: [],
  addon: [],
  errors: [],
  version: [],
  crypto: ['net', 'addon', 'errors'],
  wireguard: ['net', 'addon', 'errors', 'crypto'],
  control: ['net', 'addon', 'errors', 'crypto', 'wireguard'],
  io: ['net', 'addon', 'errors', 'crypto'],
  lab: ['net', 'addon', 'errors', 'io'],
  config: ['net', 'errors', 'crypto', 'wireguard', 'control'],
  daemon: ['net', 'addon', 'errors', 'crypto', 'wireguard', 'control', 'io', 'lab', 'config', 'version'],
  cli: ['net', 'addon', 'errors', 'crypto', 'wireguard', 'control', 'io', 'lab', 'config', 'daemon', 'version'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The layer of a path below src/: its first folder, or a top-level module's name. */
const layerOf = (rel: string): string => (rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : rel.replace(/\.ts$/, ''));

/** Every relative import, re-export and dynamic import of a file, as paths below src/. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
}

it('src/ imports only point down the layer table', () => {
  const problems: string[] = [];
  for (const file of sources(SRC)) {
    const rel = relative(SRC, file);
    const from = layerOf(rel);
    const allowed = MAY_IMPORT[from];
    if (allowed === undefined) {
      problems.push(`${rel}: layer '${from}' is not in the table in test/unit/layers.test.ts`);
      continue;
    }
    for (const target of importsOf(file)) {
      const to = layerOf(target);
      if (to === from || allowed.includes(to)) continue;
      problems.push(`src/${rel} imports src/${target}: ${from} may import ${allowed.length > 0 ? `only ${allowed.join(', ')}` : 'nothing from the project'}`);
    }
  }
  expect(problems).toEqual([]);
});

it('the daemon roles share src/daemon/*.ts but never import each other', () => {
  const role = (rel: string): string | null => /^daemon\/(server|client)\//.exec(rel)?.[1] ?? null;
  const problems: string[] = [];
  for (const file of sources(join(SRC, 'daemon'))) {
    const rel = relative(SRC, file);
    for (const target of importsOf(file)) {
      const [from, to] = [role(rel), role(target)];
      if (to !== null && to !== from) problems.push(`src/${rel} imports src/${target}: ${from ? `the ${from}` : 'shared daemon code'} may not import the ${to}`);
    }
  }
  expect(problems).toEqual([]);
});

it('finds imports of every form', () => {
  const text = "import a from './a.js';\nimport './b.js';\nexport { c } from '../c.js';\nconst d = await import('./d.js');\n";
  expect(ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName)).toEqual(['./a.js', './b.js', '../c.js', './d.js']);
});

/** A file's static, value-carrying imports (no `import type`, no dynamic import()), bare ones included. */
function staticImportsOf(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  return sf.statements.flatMap((s) => {
    if (!ts.isImportDeclaration(s) && !ts.isExportDeclaration(s)) return [];
    if (ts.isImportDeclaration(s) ? s.importClause?.isTypeOnly : s.isTypeOnly) return [];
    const spec = s.moduleSpecifier;
    if (!spec || !ts.isStringLiteral(spec)) return [];
    return [spec.text.startsWith('.') ? relative(SRC, resolve(dirname(file), spec.text)).replace(/\.js$/, '.ts') : spec.text];
  });
}

it("the etcd client (@grpc/grpc-js, ~10 MB of RSS) is loaded only by a config with fleet: no static import reaches it from the CLI", () => {
  const seen = new Set<string>();
  const path = new Map<string, string>([['cli/main.ts', 'cli/main.ts']]);
  const queue = ['cli/main.ts'];
  while (queue.length > 0) {
    const rel = queue.shift()!;
    if (seen.has(rel)) continue;
    seen.add(rel);
    for (const dep of staticImportsOf(join(SRC, rel))) {
      expect(dep.startsWith('@grpc/') ? `${path.get(rel)} -> ${dep}` : '').toBe('');
      if (dep.endsWith('.ts') && !path.has(dep)) {
        path.set(dep, `${path.get(rel)} -> ${dep}`);
        queue.push(dep);
      }
    }
  }
  expect(seen.size).toBeGreaterThan(50);
});
