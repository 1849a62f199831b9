/**
 * Pushed settings the main VPN test does not exercise: redirect-gateway (OpenVPN's def1
 * halves, with a host route keeping the server's endpoint outside the tunnel, all undone on
 * exit) and an exhausted address pool (the server refuses, the client says why).
 * Real processes in two namespaces; both clients run in the client namespace (tun0, tun1).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { startTvpn, stopProc, until, type Proc } from '../helpers/tvpn.js';

describeRoot('pushed redirect-gateway and an exhausted pool', () => {
  let pair: NetnsPair;
  let dir: string;
  const procs: Proc[] = [];
  const [sk, k1, k2] = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey()];
  let one: Proc;
  let two: Proc;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-push-'));
    for (const [name, key] of [['s.key', sk], ['1.key', k1], ['2.key', k2]] as const) writeKeyFile(join(dir, name), key);
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: 10.9.0.1/24 }\nlisten: 198.18.33.1:51820\nprivate_key_file: s.key\npool: 10.9.0.10-10.9.0.10\n` +
        `state_dir: ${join(dir, 'state')}\npush: { redirect_gateway: true, keepalive: 5 }\nclients:\n` +
        `  - { name: one, public_key: ${encodeKey(publicKeyOf(k1))} }\n  - { name: two, public_key: ${encodeKey(publicKeyOf(k2))} }\n`,
    );
    const client = (itf: string, key: string): string =>
      `interface: { name: ${itf} }\nserver: { endpoint: 198.18.33.1:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\nprivate_key_file: ${key}\n` +
      `accept: { routes: true, dns: false, redirect_gateway: true }\n`;
    writeFileSync(join(dir, 'one.yaml'), client('tun0', '1.key'));
    writeFileSync(join(dir, 'two.yaml'), client('tun1', '2.key'));
    pair = await createNetnsPair({ prefix: 'tvpush', index: 33, ipv6: false });
    const server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    procs.push(server);
    await until('server', () => server.log().includes('listening on'));
    one = startTvpn(pair.b, ['client', '-c', join(dir, 'one.yaml')]);
    procs.push(one);
    await until('client one configured', () => one.log().includes('config 1 applied'));
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('redirect-gateway: def1 halves via tun0, the server endpoint kept on the underlay', async () => {
    const routes = (await pair.b.ip(['route', 'show'])).stdout;
    expect(routes).toMatch(/^0\.0\.0\.0\/1 dev tun0/m);
    expect(routes).toMatch(/^128\.0\.0\.0\/1 dev tun0/m);
    expect(routes).toMatch(/^198\.18\.33\.1 dev veth-b/m);
    // The tunnel still works: its own packets do not loop into it.
    await pair.b.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', '10.9.0.1']);
    expect((await pair.b.ip(['route', 'get', '192.0.2.1'])).stdout).toMatch(/dev tun0/);
  });

  test('an exhausted pool: the server refuses with a clear line, the client prints the reason', async () => {
    two = startTvpn(pair.b, ['client', '-c', join(dir, 'two.yaml')]);
    procs.push(two);
    await until('refusal', () => two.log().includes('server refused this client: address pool exhausted'));
    expect(two.log()).not.toMatch(/config \d+ applied/);
    expect((await pair.b.ip(['-4', 'addr', 'show', 'dev', 'tun1'])).stdout).not.toMatch(/inet /);
    expect(await stopProc(two)).toBe(0);
  });

  test('on exit the client removes the redirect and the host route', async () => {
    expect(await stopProc(one)).toBe(0);
    const routes = (await pair.b.ip(['route', 'show'])).stdout;
    expect(routes).not.toMatch(/tun0|0\.0\.0\.0\/1|128\.0\.0\.0\/1/);
    expect(routes).not.toMatch(/^198\.18\.33\.1 /m);
    expect(routes).toMatch(/^198\.18\.33\.0\/24 dev veth-b/m);
  });
});
