/**
 * Local access to a real daemon's status socket (issue 12.5): `tvpn show` as an unprivileged
 * uid is refused in one line with exit code 1, root's and CAP_NET_ADMIN's work, and 1,000 idle connections from
 * an unprivileged helper neither hold the daemon's descriptors nor delay root's answer.
 *
 *   server ns (a) ── veth 198.18.51.0/24 ── client ns (b)
 *
 * Needs root, setpriv and the compiled CLI (npx tsc -p tsconfig.build.json).
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Status } from '../../src/daemon/status.js';
import { createNetnsPair, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { tempCopyForAnyUser } from '../helpers/copy.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, startProc, startTvpnUntil, stopProc, until, type Proc } from '../helpers/tvpn.js';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const IDLE = 1000;

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Runs a command in ns to its end: exit code and output. */
async function run(ns: Netns, cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = ns.spawn(cmd, args);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, ...out };
}

describeRoot('who may use the status socket', () => {
  let pair: NetnsPair;
  let dir: string;
  let copy: string;
  let server: Proc;
  let client: Proc;
  const keys = { server: generatePrivateKey(), client: generatePrivateKey() };

  beforeAll(async () => {
    ({ dir, copy } = tempCopyForAnyUser('tvpn-local-', ['test/integration/fixtures/idle-connections.mjs']));

    writeKeyFile(join(dir, 'server.key'), keys.server);
    writeKeyFile(join(dir, 'client.key'), keys.client);
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: 10.8.0.1/24 }\nlisten: 0.0.0.0:51820\nprivate_key_file: server.key\npool: 10.8.0.10-10.8.0.20\n` +
        `state_dir: ${join(dir, 'state')}\nclients:\n  - { name: one, public_key: ${encodeKey(publicKeyOf(keys.client))} }\n`,
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: 198.18.51.1:51820, public_key: ${encodeKey(publicKeyOf(keys.server))} }\nprivate_key_file: client.key\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvlocal', index: 51, ipv6: false });
    server = await startTvpnUntil(pair.a, ['server', '-c', join(dir, 'server.yaml')], 'listening on');
    client = await startTvpnUntil(pair.b, ['client', '-c', join(dir, 'client.yaml')], 'config 1 applied');
  }, 60_000);

  afterAll(async () => {
    await Promise.all([client, server].filter(Boolean).map((d) => stopProc(d)));
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('tvpn show as nobody (also in a user namespace of its own) is refused in one line with exit code 1; with CAP_NET_ADMIN or as root it answers', async () => {
    const nobody = await run(pair.a, 'setpriv', [...NOBODY, process.execPath, join(copy, 'bin/tvpn'), 'show']);
    expect(nobody.stderr).toBe("tvpn: permission denied: tvpn show needs root, the daemon's user (uid 0) or CAP_NET_ADMIN\n");
    expect(nobody.code).toBe(1);
    expect(nobody.stdout).toBe('');
    // A user namespace of its own gives nobody a full CapEff there, which must not count.
    const userns = await run(pair.a, 'setpriv', [...NOBODY, 'unshare', '--user', '--map-root-user', process.execPath, join(copy, 'bin/tvpn'), 'show']);
    expect([userns.code, userns.stderr]).toEqual([1, nobody.stderr]);
    const netAdmin = await run(pair.a, 'setpriv', [...NOBODY, '--inh-caps=+net_admin', '--ambient-caps=+net_admin', process.execPath, join(copy, 'bin/tvpn'), 'show']);
    expect(netAdmin.code).toBe(0);
    expect(netAdmin.stdout).toContain(encodeKey(publicKeyOf(keys.client)));
    const root = await run(pair.a, process.execPath, [BIN, 'show', '--json']);
    expect(root.code).toBe(0);
    const one = (JSON.parse(root.stdout) as Status).peers.find((p) => p.name === 'one')!;
    expect(one.publicKey).toBe(encodeKey(publicKeyOf(keys.client)));
    expect(one.endpoint).toMatch(/^198\.18\.51\.2:\d+$/);
  });

  test(`${IDLE} idle connections from nobody hold no descriptors for long and do not delay root's show`, async () => {
    const pid = server.child.pid!;
    const base = { fds: fds(pid), rss: rssMb(pid) };
    const helper = startProc(pair.a, 'setpriv', [...NOBODY, process.execPath, join(copy, 'test/integration/fixtures/idle-connections.mjs'), '@tvpn-tun0', String(IDLE)]);
    try {
      const opened = await until('the helper to connect', () => helper.log().split('\n').find((l) => l.includes('connected')));
      expect(JSON.parse(opened)).toEqual({ connected: IDLE, failed: 0 });
      const during = fds(pid);
      const t0 = Date.now();
      const show = await run(pair.a, process.execPath, [BIN, 'show']);
      const showMs = Date.now() - t0;
      expect(show.code).toBe(0);
      expect(showMs).toBeLessThan(1000);
      // Refused connections wait at most 2 s for their request, 32 at a time.
      await until('the daemon to close them all', () => helper.log().includes('{"open":0,'), 5000);
      const after = { fds: fds(pid), rss: rssMb(pid) };
      process.stdout.write(`${JSON.stringify({ base, during, showMs, after })}\n`);
      expect(during - base.fds).toBeLessThanOrEqual(2 * 32);
      expect(after.fds).toBe(base.fds);
      expect(after.rss - base.rss).toBeLessThan(10);
    } finally {
      helper.child.stdin?.end();
      await stopProc(helper);
    }
  }, 60_000);
});
