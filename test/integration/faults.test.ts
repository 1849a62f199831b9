/**
 * What tvpn guarantees under faults, with real processes in two namespaces (198.18.71.0/24):
 * a client with a wrong server key says so within 20 s; a server whose control channel gave
 * up during an underlay outage (its clock driven past the ~31 s with TVPN_TEST_HOOKS) brings
 * the config of a reload made meanwhile once the link is back; `ip link del tun0` under the
 * server is one clear line and exit 1, however many packets keep arriving; a damaged
 * leases.json loses no lease.
 * Needs the compiled CLI (npx tsc -p tsconfig.build.json) and root.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { request, type PeerStatus, type Status } from '../../src/daemon/status.js';
import { createNetnsPair, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, addrOf, pings, startTvpn, stopProc, until, type Proc } from '../helpers/tvpn.js';
import { sleep } from '../helpers/wait.js';

describeRoot('faults', () => {
  let pair: NetnsPair;
  let dir: string;
  let server: Proc;
  let client: Proc;
  const procs: Proc[] = [];
  const [sk, ck] = [generatePrivateKey(), generatePrivateKey()];
  const serverYaml = (keepalive: number): string =>
    `interface: { name: tun0, address: 10.71.0.1/24 }\nlisten: 198.18.71.1:51820\nprivate_key_file: s.key\nstate_dir: ${join(dir, 'state')}\n` +
    `status_socket: server.sock\npush: { routes: [10.72.0.0/16], keepalive: ${keepalive} }\n` +
    `clients:\n  - { name: one, public_key: ${encodeKey(publicKeyOf(ck))} }\n`;
  const clientYaml = (itf: string, serverKey: string): string =>
    `interface: { name: ${itf} }\nserver: { endpoint: 198.18.71.1:51820, public_key: ${serverKey} }\nprivate_key_file: c.key\n` +
    `status_socket: ${itf}.sock\naccept: { routes: true, dns: false, redirect_gateway: false }\n`;
  /** `tvpn ROLE -c FILE` in ns, stopped after the tests; resolves once its log shows `ready`. */
  const start = async (ns: Netns, role: string, file: string, ready: string, env?: NodeJS.ProcessEnv): Promise<Proc> => {
    const p = startTvpn(ns, [role, '-c', join(dir, file)], env);
    procs.push(p);
    await until(`${role} ${file}: ${ready}`, () => p.log().includes(ready), 25_000);
    return p;
  };
  const peerOf = async (sock: string): Promise<PeerStatus> => (await request<Status>(join(dir, sock), 'show')).peers[0]!;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-fault-'));
    writeKeyFile(join(dir, 's.key'), sk);
    writeKeyFile(join(dir, 'c.key'), ck);
    writeFileSync(join(dir, 'server.yaml'), serverYaml(5));
    writeFileSync(join(dir, 'client.yaml'), clientYaml('tun0', encodeKey(publicKeyOf(sk))));
    writeFileSync(join(dir, 'wrong.yaml'), clientYaml('tun1', encodeKey(publicKeyOf(generatePrivateKey()))));
    pair = await createNetnsPair({ prefix: 'tvfault', index: 71, ipv6: false });
    server = await start(pair.a, 'server', 'server.yaml', 'listening on', { TVPN_TEST_HOOKS: '1' });
    client = await start(pair.b, 'client', 'client.yaml', 'config 1 applied');
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => stopProc(p))); // also when a test failed half-way
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a client with a wrong server key warns within 20 s and show says connecting', async () => {
    const wrong = await start(pair.b, 'client', 'wrong.yaml', 'no handshake with the server at 198.18.71.1:51820 after 20 s');
    expect(wrong.log()).toMatch(/wrong server\.public_key, server down, or UDP blocked on the path/);
    expect((await peerOf('tun1.sock')).channel).toBe('connecting');
    const shown = await pair.b.exec(process.execPath, [BIN, 'show', '-c', join(dir, 'wrong.yaml')]);
    expect(shown.stdout).toContain('control: connecting (no handshake completed yet)');
    expect(await stopProc(wrong)).toBe(0);
  }, 40_000);

  test('underlay down, the server channel fails, SIGHUP, underlay up: the client gets config 2', async () => {
    await pair.b.ip(['link', 'set', 'veth-b', 'down']);
    writeFileSync(join(dir, 'server.yaml'), serverYaml(6));
    server.child.kill('SIGHUP');
    await until('the reload', () => server.log().includes('reloaded'));
    // Past the channel's retransmissions (1+2+4+8+8+8 s), one backoff at a time.
    for (let i = 0; i < 8 && !server.log().includes('control channel to one failed'); i++) {
      await request(join(dir, 'server.sock'), 'advance-clock 10000');
      await sleep(100);
    }
    expect(server.log()).toContain('control channel to one failed');
    expect(await peerOf('server.sock')).toMatchObject({ channel: 'failed', configSerial: 1 });
    await pair.b.ip(['link', 'set', 'veth-b', 'up']);
    await until('config 2 applied', () => client.log().includes('config 2 applied'), 20_000);
    await until('the server to know', () => server.log().includes('one applied config 2'));
    await until('the recovery', () => /control channel to one recovered after \d+ s/.test(server.log()));
    expect(await peerOf('server.sock')).toMatchObject({ channel: 'ok', configSerial: 2 });
  }, 60_000);

  test('ip link del tun0 under the server: one clear line, exit 1 after cleanup, no per-packet log', async () => {
    const before = server.log().split('\n').length;
    const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
    const flood = pair.b.exec('ping', ['-c', '300', '-i', '0.01', '-W', '1', '10.71.0.1']).catch(() => undefined);
    await sleep(200);
    await pair.a.ip(['link', 'del', 'tun0']);
    const code = await Promise.race([exited, sleep(15_000).then(() => 'still running')]);
    await flood;
    const lines = server.log().split('\n').slice(before - 1).filter((l) => l.trim() !== '');
    expect(code).toBe(1);
    expect(server.log()).not.toContain('internal error');
    expect(lines.join('\n')).toMatch(/error tun0 stopped: .*: exiting; the supervisor restarts tvpn/);
    expect(lines.length).toBeLessThan(6);
    // The stop path ran: leases flushed though the tun was gone.
    expect(existsSync(join(dir, 'state', 'leases.json'))).toBe(true);
    expect(readFileSync(join(dir, 'state', 'leases.json'), 'utf8')).toContain('10.71.0.2');
  }, 40_000);

  test('a damaged leases.json: the server restarts from its backup and the client comes back with its address', async () => {
    // The state a server left after giving `one` 10.71.0.7 (not the lowest free address, so a
    // server that lost its leases would hand out another), then leases.json is cut short.
    const leases = JSON.stringify({ version: 1, leases: [{ key: encodeKey(publicKeyOf(ck)), address: '10.71.0.7', name: 'one', lastSeen: Date.now() }] });
    writeFileSync(join(dir, 'state', 'leases.json.bak'), leases);
    writeFileSync(join(dir, 'state', 'leases.json'), leases.slice(0, 40));
    server = await start(pair.a, 'server', 'server.yaml', 'listening on');
    expect(server.log()).toMatch(/lease file .*leases\.json is corrupt .*; moved to .*leases\.json\.corrupt-\d+/);
    expect(server.log()).toMatch(/restored 1 lease\(s\) from .*leases\.json\.bak/);
    await until('the client at its address', async () => (await addrOf(pair.b, 'tun0')) === '10.71.0.7/24', 30_000);
    expect(await pings(pair.b, '10.71.0.1')).toBe(true);
  }, 45_000);
});
