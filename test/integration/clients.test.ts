/**
 * Client management against real processes in two namespaces: list-clients asks the running
 * server, remove-client edits server.yaml and makes the server reload it, which cuts the
 * connected client off; SIGHUP reloads as well; once the server stops, list-clients reads what it left in state_dir.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ClientList } from '../../src/cli/commands/list-clients.js';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, pings, startTvpn, stopProc, until, type Proc } from '../helpers/tvpn.js';

describeRoot('remove-client and list-clients against a running server', () => {
  let pair: NetnsPair;
  let dir: string;
  let server: Proc;
  let laptop: Proc;
  const [sk, lk] = [generatePrivateKey(), generatePrivateKey()];
  const serverYaml = (): string => join(dir, 'server.yaml');
  /** `tvpn ARGS` in the server's namespace, where its status socket is. */
  const tvpn = async (...args: string[]): Promise<string> => (await pair.a.exec(process.execPath, [BIN, ...args])).stdout;
  const list = async (): Promise<ClientList> => JSON.parse(await tvpn('list-clients', '-c', serverYaml(), '--json')) as ClientList;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-clients-'));
    writeKeyFile(join(dir, 's.key'), sk);
    writeKeyFile(join(dir, 'laptop.key'), lk);
    writeFileSync(
      serverYaml(),
      `interface: { name: tun0, address: 10.82.0.1/24 }\nlisten: 198.18.82.1:51820\nprivate_key_file: s.key\nstate_dir: state\n` +
        `push: { keepalive: 2 }\nclients:\n  # the one to remove\n  - name: laptop\n    public_key: ${encodeKey(publicKeyOf(lk))}\n` +
        `  - { name: phone, public_key: ${encodeKey(publicKeyOf(generatePrivateKey()))}, address: 10.82.0.9, stock: true, disabled: true }\n`,
    );
    writeFileSync(
      join(dir, 'laptop.yaml'),
      `server: { endpoint: 198.18.82.1:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\nprivate_key_file: laptop.key\naccept: { dns: false }\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvclients', index: 82, ipv6: false });
    server = startTvpn(pair.a, ['server', '-c', serverYaml()]);
    await until('server', () => server.log().includes('listening on'));
    laptop = startTvpn(pair.b, ['client', '-c', join(dir, 'laptop.yaml')]);
    await until('laptop configured', () => laptop.log().includes('config 1 applied'));
  }, 60_000);

  afterAll(async () => {
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('list-clients reports the running server: lease, access, handshake, traffic', async () => {
    expect(await pings(pair.b, '10.82.0.1')).toBe(true);
    const { running, clients } = await list();
    expect(running).toBe(true);
    expect(clients.map((c) => [c.name, c.address, c.leased, c.access])).toEqual([
      ['laptop', '10.82.0.10', true, 'active'],
      ['phone', '10.82.0.9', false, 'disabled'],
    ]);
    expect(clients[0]!.latestHandshake).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(clients[0]!.rxBytes).toBeGreaterThan(0);
    expect(clients[0]!.endpoint).toMatch(/^198\.18\.82\.2:\d+$/);
    expect(await tvpn('list-clients', '-c', serverYaml())).toMatch(/^laptop +10\.82\.0\.10 \(lease\) +active +\d+ seconds ago/m);
  });

  test('remove-client reloads the server, which cuts the laptop off at once', async () => {
    const out = await tvpn('remove-client', 'laptop', '-c', serverYaml());
    expect(out).toContain(`reloaded ${serverYaml()}: 1 client(s)\n  client laptop removed\n`);
    expect(readFileSync(serverYaml(), 'utf8')).not.toMatch(/laptop/);
    await until('the laptop told', () => laptop.log().includes('server said bye (access removed)'));
    expect(await pings(pair.b, '10.82.0.1', 2)).toBe(false);
    expect(server.log()).toMatch(/client laptop removed/);
    expect((await list()).clients.map((c) => c.name)).toEqual(['phone']);
  });

  test('SIGHUP reloads too: the phone enabled', async () => {
    writeFileSync(serverYaml(), readFileSync(serverYaml(), 'utf8').replace(', disabled: true', ''));
    server.child.kill('SIGHUP');
    await until('the reload', () => server.log().includes('client phone enabled'));
    expect((await list()).clients).toMatchObject([{ name: 'phone', access: 'active' }]);
  });

  test('with the server stopped, list-clients reads the config and state_dir', async () => {
    expect(await stopProc(laptop)).toBe(0);
    expect(await stopProc(server)).toBe(0);
    const stopped = await list();
    expect(stopped.running).toBe(false);
    expect(stopped.clients).toMatchObject([{ name: 'phone', address: '10.82.0.9', access: 'active', rxBytes: null }]);
  });
});
