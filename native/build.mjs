// Builds native/build/Release/tvpn.node with node-gyp against the running Node's own headers
// (--nodedir = the prefix of process.execPath), so nothing is ever downloaded. Run by
// `npm install` (the package's install script) and `npm run build`.
//
// node-gyp comes from npm: npm passes its path in npm_config_node_gyp while it runs scripts;
// otherwise use the copy bundled with the npm next to this Node.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodedir = resolve(dirname(process.execPath), '..');
const headers = join(nodedir, 'include', 'node');

function fail(reason) {
  process.stderr.write(`tvpn: cannot build the native addon: ${reason}\n`);
  process.exit(1);
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(nodedir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((p) => p && existsSync(p));
}

const missing = [];
if (!process.env.PYTHON && !onPath('python3')) missing.push('python3');
if (!onPath('make')) missing.push('make');
if (!onPath('cc') && !onPath('gcc')) missing.push('a C compiler (gcc)');
if (!onPath('g++') && !onPath('c++')) missing.push('g++ (node-gyp links with it)');
if (missing.length > 0) fail(`missing ${missing.join(', ')} (on Debian: apt-get install python3 make g++)`);
for (const h of ['node_api.h', 'uv.h', 'common.gypi', join('openssl', 'evp.h')]) {
  if (!existsSync(join(headers, h))) fail(`Node's headers are missing (${join(headers, h)} not found); install Node with its headers`);
}
const nodeGyp = findNodeGyp();
if (!nodeGyp) fail("node-gyp not found (it ships with npm; run this through npm, or install npm next to this Node)");

const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], {
  cwd: here,
  stdio: 'inherit',
});
if (r.error) fail(`could not run node-gyp: ${r.error.message}`);
if (r.status !== 0) fail('the compiler failed (its output is above)');
if (!existsSync(join(here, 'build', 'Release', 'tvpn.node'))) fail('node-gyp succeeded but build/Release/tvpn.node is missing');
