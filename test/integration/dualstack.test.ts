/**
 * Dual stack end to end, real processes in two namespaces: a server with an IPv4 and an IPv6
 * tunnel address pushes a client one of each, and both families work through the tunnel both
 * ways; redirect_gateway sends IPv6 into the tunnel too. Then an IPv4-only server: the
 * client's IPv6, which reaches the "internet" (2001:db8::1, on the server's lo) over the
 * underlay without the tunnel, goes into the tunnel and no further instead of around it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Status } from '../../src/daemon/status.js';
import { createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, pings, startTvpn, stopProc, until, type Proc } from '../helpers/tvpn.js';

const INTERNET6 = '2001:db8::1';

describeRoot('dual stack', () => {
  let pair: NetnsPair;
  let dir: string;
  const procs: Proc[] = [];
  const [sk, ck] = [generatePrivateKey(), generatePrivateKey()];

  const serverYaml = (address: string): string =>
    `interface: { name: tun0, address: ${address} }\nlisten: 198.18.85.1:51820\nprivate_key_file: s.key\n` +
    `state_dir: ${join(dir, 'state')}\npush: { redirect_gateway: true, keepalive: 5 }\n` +
    `clients: [{ name: one, public_key: ${encodeKey(publicKeyOf(ck))} }]\n`;

  async function start(address: string): Promise<{ server: Proc; client: Proc }> {
    writeFileSync(join(dir, 'server.yaml'), serverYaml(address));
    const server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    procs.push(server);
    await until('server', () => server.log().includes('listening on'));
    const client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
    procs.push(client);
    await until('client configured', () => /config 1 applied: \S+( \S+)?,/.exec(client.log()));
    return { server, client };
  }

  const ping6 = async (from: NetnsPair['a'], to: string): Promise<boolean> =>
    from.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', to]).then(() => true, () => false);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-dual-'));
    writeKeyFile(join(dir, 's.key'), sk);
    writeKeyFile(join(dir, 'c.key'), ck);
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: 198.18.85.1:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\nprivate_key_file: c.key\n` +
        `accept: { routes: true, dns: false, redirect_gateway: true }\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvdual', index: 85 });
    // The client's IPv6 "internet" is the server namespace, over the underlay: what would leak.
    await pair.a.ip(['addr', 'add', `${INTERNET6}/128`, 'dev', 'lo']);
    await pair.b.ip(['-6', 'route', 'add', 'default', 'via', pair.a.addr6, 'dev', pair.b.ifname]);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a dual-stack server: both addresses pushed, ping and ping -6 through the tunnel both ways', async () => {
    const { server, client } = await start("[10.85.0.1/24, 'fd00:85::1/64']");
    await until('both addresses', () => client.log().includes('config 1 applied: 10.85.0.2/24 fd00:85::2/64'));
    const addrs = (await pair.b.ip(['addr', 'show', 'dev', 'tun0'])).stdout;
    expect(addrs).toMatch(/inet 10\.85\.0\.2\/24 /);
    expect(addrs).toMatch(/inet6 fd00:85::2\/64 /);
    expect(await pings(pair.b, '10.85.0.1')).toBe(true);
    expect(await ping6(pair.b, 'fd00:85::1')).toBe(true);
    expect(await pings(pair.a, '10.85.0.2')).toBe(true);
    expect(await ping6(pair.a, 'fd00:85::2')).toBe(true);

    // redirect_gateway: IPv6 goes through the tunnel too (sourced from the tunnel address); the underlay endpoint stays outside.
    expect((await pair.b.ip(['-6', 'route', 'get', INTERNET6])).stdout).toMatch(/ dev tun0 .*src fd00:85::2 /);
    expect((await pair.b.ip(['route', 'get', '192.0.2.1'])).stdout).toMatch(/ dev tun0 /);
    expect((await pair.b.ip(['route', 'get', '198.18.85.1'])).stdout).toMatch(/ dev veth-b /);
    expect(await ping6(pair.b, INTERNET6)).toBe(true);

    const show = JSON.parse((await pair.a.exec(process.execPath, [BIN, 'show', '--json'])).stdout) as Status;
    expect([show.address, show.address6]).toEqual(['10.85.0.1/24', 'fd00:85::1/64']);
    expect(show.peers[0]).toMatchObject({ address: '10.85.0.2', address6: 'fd00:85::2' });
    const text = (await pair.b.exec(process.execPath, [BIN, 'show'])).stdout;
    expect(text).toContain('  address: 10.85.0.2/24, fd00:85::2/64\n');

    for (const p of [client, server]) expect(await stopProc(p)).toBe(0);
    expect((await pair.b.ip(['-6', 'route', 'show'])).stdout).not.toMatch(/tun0|::\/1|8000::\/1/);
  }, 60_000);

  test('an IPv4-only server: the client\'s IPv6 goes into the tunnel and no further, not around it', async () => {
    expect(await ping6(pair.b, INTERNET6)).toBe(true); // without the tunnel it is reachable: a leak to avoid
    const { server } = await start('10.85.0.1/24');
    expect((await pair.b.ip(['-6', 'route', 'get', INTERNET6])).stdout).toMatch(/ dev tun0 /);
    expect(await pings(pair.b, '10.85.0.1')).toBe(true);
    expect(await ping6(pair.b, INTERNET6)).toBe(false);
    const show = JSON.parse((await pair.a.exec(process.execPath, [BIN, 'show', '--json'])).stdout) as Status;
    expect(show.address6).toBeUndefined();
    // The first server's IPv6 lease (leases.json) has no pool now.
    expect(server.log()).toContain('dropped lease of fd00:85::2 to one: outside the pool');
  }, 60_000);
});
