/** `tvpn init`: a server config that add-client, check and the server take as it is. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { publicKeyOf, readKeyFile } from '../../src/config/keys.js';
import { loadServerConfig } from '../../src/config/server.js';
import { tvpn } from './support/cli.js';

let dir: string;
let F: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tvpn-init-'));
  F = join(dir, 'server.yaml');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('init', () => {
  it('writes a working config and a 0600 key; add-client then takes the endpoint from it', async () => {
    const r = await tvpn('init', '-c', F, '--endpoint', 'vpn.example.com:51820');
    const key = join(dir, 'server.key');
    expect(r.code).toBe(0);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const publicKey = publicKeyOf(readKeyFile(key, { private: true }));
    const s = loadServerConfig(F);
    expect(s).toMatchObject({
      interface: { name: 'tun0', address: { text: '10.8.0.1/24' } },
      listen: { host: '0.0.0.0', port: 51820 },
      endpoint: { host: 'vpn.example.com', port: 51820 },
      pool: { first: '10.8.0.128', last: '10.8.0.254' },
      stateDir: '/var/lib/tvpn',
      clients: [],
    });
    expect(publicKeyOf(s.privateKey)).toEqual(publicKey);
    expect(r.out).toMatch(new RegExp(`^wrote ${F} and ${key} \\(mode 0600\\); server public key \\S{44}\nnext: tvpn add-client NAME -c ${F}\n$`));

    const laptop = join(dir, 'laptop.yaml');
    const added = await tvpn('add-client', 'laptop', '-c', F, '--out', laptop, '--no-reload'); // never a daemon of this machine's
    expect(added.out).toBe(`added client 'laptop' (10.8.0.2) to ${F}; wrote ${laptop} (mode 0600: it holds the client's private key)\n`);
    expect(added.err).toBe(`tvpn: note: not applied to a running server: run 'tvpn reload -c ${F}' (or send the server SIGHUP) to apply it\n`);
    expect(loadClientConfig(laptop).server).toEqual({ host: 'vpn.example.com', port: 51820, publicKey, presharedKey: null, tcp: null, transport: 'auto', fleet: [] });
    expect(loadServerConfig(F).clients.map((c) => [c.name, c.address])).toEqual([['laptop', '10.8.0.2']]);
  });

  it('takes the common choices as flags, quoting what YAML needs quoted', async () => {
    const args = ['--address', 'fd00:8::1/64', '--listen', '[::]:4500', '--state-dir', 'state'];
    expect((await tvpn('init', '-c', F, ...args)).code).toBe(0);
    expect(readFileSync(F, 'utf8')).toContain('listen: "[::]:4500"\n');
    expect(loadServerConfig(F)).toMatchObject({ listen: { host: '::', port: 4500 }, stateDir: join(dir, 'state'), interface: { address: { text: 'fd00:8::1/64' } } });
    expect(loadServerConfig(F).endpoint).toBeUndefined();
  });

  it('never overwrites a config or a key, and names a wrong flag', async () => {
    writeFileSync(join(dir, 'server.key'), 'old');
    expect(await tvpn('init', '-c', F)).toEqual({
      code: 2,
      out: '',
      err: `tvpn: ${join(dir, 'server.key')} already exists; tvpn init never overwrites: remove it or pass -c with another path\n`,
    });
    expect(readFileSync(join(dir, 'server.key'), 'utf8')).toBe('old');
    const other = join(dir, 'other', 'server.yaml');
    expect((await tvpn('init', '-c', other, '--address', '10.8.0.1')).err).toBe("tvpn: --address: '10.8.0.1' needs a prefix length, e.g. '10.8.0.1/24'\n");
    expect((await tvpn('init', '-c', other, '--listen', '51820')).err).toBe("tvpn: --listen: '51820' is not host:port (e.g. 0.0.0.0:51820 or [::]:51820)\n");
  });
});
