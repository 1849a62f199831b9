import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { addClient } from '../../src/cli/commands/add-client.js';
import { run } from '../../src/cli/main.js';
import { loadClientConfig } from '../../src/config/client.js';
import { ConfigError } from '../../src/config/errors.js';
import { decodeKey, encodeKey, publicKeyOf, readKeyFile, writeKeyFile } from '../../src/config/keys.js';
import { loadServerConfig, parseServerConfig, type ClientEntry } from '../../src/config/server.js';
import { stripWgQuick, wgQuickConfig } from '../../src/config/wgquick.js';

const SERVER_KEY = new Uint8Array(32).fill(7);
const CLIENT_KEY = new Uint8Array(32).fill(9);
const PSK = new Uint8Array(32).fill(1);
const SERVER_PUB = encodeKey(publicKeyOf(SERVER_KEY));
const CLIENT_PRIV = encodeKey(CLIENT_KEY);

/** A server config from its YAML body, the key inline (no file, so no mode check). */
const server = (yaml: string) => parseServerConfig(`private_key: ${encodeKey(SERVER_KEY)}\n${yaml}`, 'server.yaml');

describe('wgQuickConfig', () => {
  it('writes a redirect_gateway server as a full tunnel with DNS and the default keepalive', () => {
    const s = server('interface: { address: 10.8.0.1/24 }\npush: { redirect_gateway: true, dns: [1.1.1.1, 9.9.9.9], routes: [10.20.0.0/16] }\n');
    expect(wgQuickConfig({ server: s, privateKey: CLIENT_KEY, addresses: ['10.8.0.5'], presharedKey: null, endpoint: 'vpn.example.com:51820' })).toBe(
      `[Interface]
PrivateKey = ${CLIENT_PRIV}
Address = 10.8.0.5/24
DNS = 1.1.1.1, 9.9.9.9
MTU = 1420

[Peer]
PublicKey = ${SERVER_PUB}
Endpoint = vpn.example.com:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
`,
    );
  });

  it('writes a routes server as the VPN subnet plus its routes; no DNS line without push.dns, no keepalive when 0', () => {
    const s = server(
      'interface: { address: 172.16.4.1/22, mtu: 1400 }\npush: { routes: [10.20.0.0/16, 192.168.5.0/24], mtu: 1380, keepalive: 0 }\n',
    );
    expect(wgQuickConfig({ server: s, privateKey: CLIENT_KEY, addresses: ['172.16.4.9'], presharedKey: PSK, endpoint: '192.0.2.1:4500' })).toBe(
      `[Interface]
PrivateKey = ${CLIENT_PRIV}
Address = 172.16.4.9/22
MTU = 1380

[Peer]
PublicKey = ${SERVER_PUB}
PresharedKey = ${encodeKey(PSK)}
Endpoint = 192.0.2.1:4500
AllowedIPs = 172.16.4.0/22, 10.20.0.0/16, 192.168.5.0/24
`,
    );
  });

  it('handles an IPv6 server subnet', () => {
    const s = server("interface: { address: 'fd00:8::1/64' }\npush: { dns: ['fd00:8::53'], keepalive: 10 }\n");
    const text = wgQuickConfig({ server: s, privateKey: CLIENT_KEY, addresses: ['fd00:8::5'], presharedKey: null, endpoint: '[2001:db8::1]:51820' });
    expect(text).toContain('\nAddress = fd00:8::5/64\nDNS = fd00:8::53\nMTU = 1420\n');
    expect(text).toContain('\nEndpoint = [2001:db8::1]:51820\nAllowedIPs = fd00:8::/64\nPersistentKeepalive = 10\n');
  });
});

describe('wgQuickConfig, dual stack', () => {
  it('writes both addresses; AllowedIPs carry both subnets, or both default routes when redirecting', () => {
    const yaml = "interface: { address: [10.8.0.1/24, 'fd00:8::1/64'] }\n";
    const opts = { privateKey: CLIENT_KEY, addresses: ['10.8.0.5', 'fd00:8::5'], presharedKey: null, endpoint: '192.0.2.1:51820' };
    const routed = wgQuickConfig({ ...opts, server: server(`${yaml}push: { routes: [10.20.0.0/16, '2001:db8::/32'] }\n`) });
    expect(routed).toContain('\nAddress = 10.8.0.5/24, fd00:8::5/64\n');
    expect(routed).toContain('\nAllowedIPs = 10.8.0.0/24, fd00:8::/64, 10.20.0.0/16, 2001:db8::/32\n');
    const full = wgQuickConfig({ ...opts, server: server(`${yaml}push: { redirect_gateway: true }\n`) });
    expect(full).toContain('\nAllowedIPs = 0.0.0.0/0, ::/0\n');
  });
});

describe('stripWgQuick', () => {
  it('drops the wg-quick-only [Interface] keys, whatever their case, and keeps everything else', () => {
    const text = `# phone
[Interface]
PrivateKey = ${CLIENT_PRIV}
Address = 10.8.0.5/24, fd00::5/64
dns=1.1.1.1
MTU = 1420
Table = off
PreUp = true
PostUp = iptables -A FORWARD -i %i -j ACCEPT # with a comment
PreDown = true
PostDown = true
SaveConfig = false
ListenPort = 51821

[Peer]
PublicKey = ${SERVER_PUB}
AllowedIPs = 0.0.0.0/0
`;
    expect(stripWgQuick(text)).toBe(`# phone
[Interface]
PrivateKey = ${CLIENT_PRIV}
ListenPort = 51821

[Peer]
PublicKey = ${SERVER_PUB}
AllowedIPs = 0.0.0.0/0
`);
  });
});

describe('add-client --wg-quick / --psk', () => {
  let dir: string;
  let F: string;
  const conf = (): string => join(dir, 'phone.conf');
  const SERVER = 'interface: { address: 10.8.0.1/24 }\nprivate_key_file: server.key\npush: { redirect_gateway: true, dns: [10.8.0.1] }\nclients: []\n';

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-wgquick-'));
    F = join(dir, 'server.yaml');
    writeKeyFile(join(dir, 'server.key'), SERVER_KEY);
    writeFileSync(F, SERVER);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The new client's server entry, checked to be a stock client with a static address. */
  function entryOf(name: string): ClientEntry {
    const entry = loadServerConfig(F).clients.find((c) => c.name === name);
    expect(entry).toMatchObject({ name, stock: true, address: expect.stringMatching(/^10\.8\.0\.\d+$/) });
    return entry!;
  }

  it('adds a stock entry with a psk file and writes the matching wg-quick config', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const args = ['add-client', 'phone', '-c', F, '--wg-quick', '--psk', '--out', conf(), '--endpoint', '192.0.2.1:51820', '--no-reload'];
      expect(await run(['node', 'tvpn', ...args])).toBe(0);
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
    expect(out.join('')).toBe(`added client 'phone' (10.8.0.254) to ${F}; wrote ${conf()} (mode 0600: it holds the client's private key)\n`);

    const entry = entryOf('phone');
    expect(readFileSync(F, 'utf8')).toContain('\n  - name: phone\n');
    expect(readFileSync(F, 'utf8')).toMatch(/\n {4}preshared_key_file: phone\.psk\n {4}address: 10\.8\.0\.254\n {4}stock: true\n$/);
    expect(statSync(join(dir, 'phone.psk')).mode & 0o777).toBe(0o600);
    expect(entry.presharedKey).toEqual(readKeyFile(join(dir, 'phone.psk'), { private: true, kind: 'preshared' }));

    expect(statSync(conf()).mode & 0o777).toBe(0o600);
    const text = readFileSync(conf(), 'utf8');
    const privateKey = decodeKey(/^PrivateKey = (.*)$/m.exec(text)![1]!, 'PrivateKey');
    expect(publicKeyOf(privateKey)).toEqual(entry.publicKey);
    const s = loadServerConfig(F);
    expect(text).toBe(wgQuickConfig({ server: s, privateKey, addresses: ['10.8.0.254'], presharedKey: entry.presharedKey, endpoint: '192.0.2.1:51820' }));
    expect(text).toContain(`\nPresharedKey = ${encodeKey(entry.presharedKey!)}\n`);
  });

  it('without --psk: no psk anywhere; a placeholder endpoint when the server listens on every address', () => {
    const result = addClient({ name: 'phone', config: F, out: conf(), wgQuick: true });
    expect(result.notes).toContain(`set Endpoint in ${conf()} to the server's public address (or pass --endpoint HOST:PORT)`);
    expect(entryOf('phone')).toMatchObject({ address: result.addresses[0], presharedKey: null });
    expect(existsSync(join(dir, 'phone.psk'))).toBe(false);
    const text = readFileSync(conf(), 'utf8');
    expect(text).not.toContain('PresharedKey');
    expect(text).toContain('\nEndpoint = <server-host>:51820\n');
  });

  it('--psk in tvpn mode: the psk file for the server, the key inline in the 0600 client.yaml', () => {
    const yaml = join(dir, 'laptop.yaml');
    addClient({ name: 'laptop', config: F, out: yaml, psk: true, endpoint: 'vpn.example.com:51820' });
    const entry = loadServerConfig(F).clients.find((c) => c.name === 'laptop')!;
    expect(entry).toMatchObject({ stock: false, address: '10.8.0.254' });
    expect(entry.presharedKey).toEqual(readKeyFile(join(dir, 'laptop.psk'), { private: true, kind: 'preshared' }));
    expect(statSync(yaml).mode & 0o777).toBe(0o600);
    const client = loadClientConfig(yaml);
    expect(client.server.presharedKey).toEqual(entry.presharedKey);
    expect(publicKeyOf(client.privateKey)).toEqual(entry.publicKey);
  });

  it('on a dual-stack server: a static address of each family, both in the wg-quick config', () => {
    writeFileSync(F, SERVER.replace('address: 10.8.0.1/24 }', "address: [10.8.0.1/24, 'fd00:8::1/64'] }\npool: 10.8.0.10-10.8.0.250"));
    const result = addClient({ name: 'phone', config: F, out: conf(), wgQuick: true, address: '10.8.0.9' });
    // IPv4 as asked; IPv6 from the top of the default pool, which shrinks (written as a list of both pools).
    expect(result.addresses).toEqual(['10.8.0.9', 'fd00:8::ffff:ffff:ffff:ffff']);
    expect(result.notes).toContain('no free address outside the pool, so took fd00:8::ffff:ffff:ffff:ffff from its top; the pool is now [10.8.0.10-10.8.0.250, fd00:8::2-fd00:8::ffff:ffff:ffff:fffe]');
    expect(entryOf('phone')).toMatchObject({ address: '10.8.0.9', address6: 'fd00:8::ffff:ffff:ffff:ffff' });
    expect(readFileSync(F, 'utf8')).toContain('\npool: [ 10.8.0.10-10.8.0.250, fd00:8::2-fd00:8::ffff:ffff:ffff:fffe ]\n');
    expect(readFileSync(F, 'utf8')).toContain('\n    address: [ 10.8.0.9, fd00:8::ffff:ffff:ffff:ffff ]\n');
    expect(readFileSync(conf(), 'utf8')).toContain('\nAddress = 10.8.0.9/24, fd00:8::ffff:ffff:ffff:ffff/64\n');
    expect(() => addClient({ name: 'tab', config: F, out: join(dir, 'tab.conf'), wgQuick: true, address: '10.8.0.7,10.8.0.8' })).toThrow(
      '--address: give one address, or one IPv4 and one IPv6 address separated by a comma',
    );
  });

  it('refuses to overwrite the .conf or a psk file, leaving everything as it was', () => {
    writeFileSync(conf(), 'precious');
    expect(() => addClient({ name: 'phone', config: F, out: conf(), wgQuick: true, psk: true })).toThrow(
      new ConfigError(`cannot write ${conf()}: already exists; remove it or pass --out with another path`),
    );
    expect(readFileSync(conf(), 'utf8')).toBe('precious');
    expect(existsSync(join(dir, 'phone.psk'))).toBe(false); // written for validation, then removed
    expect(readFileSync(F, 'utf8')).toBe(SERVER);

    const psk = join(dir, 'tablet.psk');
    writeFileSync(psk, 'precious');
    expect(() => addClient({ name: 'tablet', config: F, out: join(dir, 'tablet.conf'), wgQuick: true, psk: true })).toThrow(
      `${psk}: cannot write key: already exists`,
    );
    expect(readFileSync(psk, 'utf8')).toBe('precious');
    expect(existsSync(join(dir, 'tablet.conf'))).toBe(false);
    expect(readFileSync(F, 'utf8')).toBe(SERVER);
  });

  it("wg (wireguard-tools) parses the stripped config and derives the entry's public key", (ctx) => {
    const wg = (args: string[], input?: string) => spawnSync('wg', args, { input, encoding: 'utf8' });
    if (wg(['--version']).error !== undefined) ctx.skip('wg (wireguard-tools) is not installed; install it to check the output against wg');
    addClient({ name: 'phone', config: F, out: conf(), wgQuick: true, psk: true, endpoint: '192.0.2.1:51820' });
    const text = readFileSync(conf(), 'utf8');
    const stripped = join(dir, 'stripped.conf');
    writeFileSync(stripped, stripWgQuick(text), { mode: 0o600 });
    // No such interface, so setconf fails, but only after parsing the whole file.
    const set = wg(['setconf', 'tvpn-wgq-none', stripped]);
    expect(set.stderr).toMatch(/^Unable to modify interface: /);
    const pub = wg(['pubkey'], `${/^PrivateKey = (.*)$/m.exec(text)![1]}\n`);
    expect(pub.stdout).toBe(`${encodeKey(entryOf('phone').publicKey)}\n`);
  });
});
