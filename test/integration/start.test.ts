/**
 * The README's "Using it" block, run line by line as written, in a fresh directory:
 *
 *   server ns (a) ── veth 198.18.81.0/24 ── client ns (b)
 *
 * Only what the namespaces need is changed: the endpoint is the server namespace's address,
 * `npm install -g .` is a PATH entry holding the link to bin/tvpn it would make, the server's
 * default state_dir (/var/lib/tvpn) is on a tmpfs of its own mount namespace, so the host's
 * stays untouched. Also the state_dir refusal on a read-only mount (the Docker example's trap).
 *
 * Needs root and the compiled CLI (npx tsc -p tsconfig.build.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createNetnsPair, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, ROOT, stopProc, until, type Proc } from '../helpers/tvpn.js';

/** The commands of the README's "Using it" block, comments dropped. */
function readmeSteps(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /^## Using it\n\n```sh\n([^]*?)\n```/m.exec(readme)![1]!;
  return block.split('\n').map((line) => line.replace(/\s+#.*$/, '').trim());
}

describeRoot("README 'Using it', literally", () => {
  let pair: NetnsPair;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const procs: Proc[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-start-'));
    mkdirSync(join(dir, 'bin'));
    symlinkSync(BIN, join(dir, 'bin', 'tvpn'));
    env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` };
    mkdirSync(join(dir, 'work'));
    pair = await createNetnsPair({ prefix: 'tvstart', index: 81, ipv6: false });
  });

  afterAll(async () => {
    for (const p of procs) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A README line in the work directory under the README's umask: its output, or its failure. */
  const sh = (line: string): { code: number; out: string } => {
    try {
      return { code: 0, out: execFileSync('sh', ['-c', `umask 077; ${line} 2>&1`], { cwd: join(dir, 'work'), env, encoding: 'utf8' }) };
    } catch (err) {
      const e = err as { status: number; stdout: string };
      return { code: e.status, out: e.stdout };
    }
  };

  /** A long-running README line in ns; `prelude` runs first in the same shell. */
  const daemon = (ns: Netns, line: string, prelude = 'true'): Proc => {
    const child = ns.spawn('unshare', ['-m', 'sh', '-c', `umask 077; ${prelude} && exec ${line}`], { cwd: join(dir, 'work'), env });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const p = { child, log: () => out };
    procs.push(p);
    return p;
  };

  test('init, add-client, check, server, client, ping, show', async () => {
    const steps = readmeSteps();
    expect(steps.map((s) => s.split(' ').slice(0, 2).join(' '))).toEqual([
      'npm install',
      'umask 077',
      'tvpn init',
      'tvpn add-client',
      'tvpn add-client',
      'tvpn check',
      'tvpn server',
      'tvpn client',
      'ping -c',
      'tvpn show',
    ]);
    const [, , init, laptop, phone, check, server, client, ping, show] = steps.map((s) => s.replaceAll('vpn.example.com', pair.a.addr)) as [
      string, string, string, string, string, string, string, string, string, string,
    ];
    const work = join(dir, 'work');

    const made = sh(init);
    expect(made).toMatchObject({ code: 0, out: expect.stringMatching(/^wrote server\.yaml and server\.key \(mode 0600\); server public key \S{44}\nnext: /) });
    expect(statSync(join(work, 'server.key')).mode & 0o777).toBe(0o600);
    const added = sh(laptop);
    expect(added).toMatchObject({ code: 0, out: expect.stringContaining("added client 'laptop' (10.8.0.2) to server.yaml; wrote laptop.yaml") });
    expect(added.out).toContain('tvpn: note: no server runs with this config here: it applies the change when it starts');
    expect(sh(phone)).toMatchObject({ code: 0, out: expect.stringContaining("added client 'phone' (10.8.0.3)") });
    expect(readFileSync(join(work, 'phone.conf'), 'utf8')).toContain(`Endpoint = ${pair.a.addr}:51820`);
    expect(sh(check)).toEqual({ code: 0, out: 'server.yaml: ok (server tun0 10.8.0.1/24, 2 clients, pool 10.8.0.128-10.8.0.254)\n' });

    const s = daemon(pair.a, server, 'mount -t tmpfs tvstart /var/lib');
    await until('the server to listen', () => s.log().includes('listening on 0.0.0.0:51820'));
    const c = daemon(pair.b, client);
    await until('the client to apply its config', () => c.log().includes('config 1 applied: 10.8.0.2/24'));
    await pair.b.exec('sh', ['-c', ping]);

    const onServer = (await pair.a.exec('env', [`PATH=${env.PATH}`, 'sh', '-c', show])).stdout;
    expect(onServer).toMatch(/\(laptop\)\n {2}endpoint: 198\.18\.81\.2:\d+\n {2}address: 10\.8\.0\.2\n {2}allowed ips: 10\.8\.0\.2\/32\n/);
    const onClient = (await pair.b.exec('env', [`PATH=${env.PATH}`, 'sh', '-c', show])).stdout;
    expect(onClient).toContain(`(server)\n  endpoint: ${pair.a.addr}:51820\n  address: 10.8.0.1\n  routed into tun0: 10.8.0.0/24\n`);

    // Added outside the server's network namespace (its status socket is not reachable from
    // here, so add-client cannot reload it): SIGHUP applies it.
    expect(sh('tvpn add-client desktop -c server.yaml').code).toBe(0);
    s.child.kill('SIGHUP');
    await until('the server to reload', () => s.log().includes('client desktop added'));
  });

  test('a state_dir on a read-only mount is refused in one line, exit 2', async () => {
    for (const p of procs.splice(0)) await stopProc(p);
    const work = join(dir, 'work');
    execFileSync('sh', ['-c', "sed -i 's|^state_dir: .*|state_dir: state|' server.yaml"], { cwd: work });
    const s = daemon(pair.a, `tvpn server -c ${join(work, 'server.yaml')}`, `mount --bind -o ro ${work} ${work}`);
    const code = await new Promise((resolve) => s.child.once('exit', resolve));
    expect({ code, log: s.log() }).toEqual({
      code: 2,
      log:
        `tvpn: ${join(work, 'server.yaml')}: state_dir: cannot use ${join(work, 'state')}: read-only file system; ` +
        'set state_dir to a writable directory such as /var/lib/tvpn (in Docker, the volume mounted there)\n',
    });
  });
});
