import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x25519 } from '@noble/curves/ed25519.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tvpn } from './support/cli.js';
import { loadClientConfig, parseClientConfig } from '../../src/config/client.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { loadServerConfig } from '../../src/config/server.js';

const ROOT = join(import.meta.dirname, '../..');
const SERVER_KEY = generatePrivateKey();
const PEER = encodeKey(publicKeyOf(generatePrivateKey()));

let dir: string;
let F: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tvpn-cli-'));
  F = join(dir, 'server.yaml');
  writeKeyFile(join(dir, 'server.key'), SERVER_KEY);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A hand-written config: comments, aligned comments, blank lines between clients. */
const SERVER = `# My VPN.
interface:
  name: tun0                # the tunnel
  address: 10.8.0.1/24      # server address
private_key_file: server.key
status_socket: '@tvpn-cli-test-${process.pid}'
pool: 10.8.0.10-10.8.0.250  # dynamic
push:
  routes: [10.20.0.0/16]    # pushed

# Clients, one per device.
clients:
  - name: old               # the first one
    public_key: ${PEER}
    address: 10.8.0.2

  # a comment about nothing
`;

describe('check', () => {
  it('prints a one-line summary of a server config', async () => {
    writeFileSync(F, SERVER);
    expect(await tvpn('check', '-c', F)).toEqual({ code: 0, out: `${F}: ok (server tun0 10.8.0.1/24, 1 client, pool 10.8.0.10-10.8.0.250)\n`, err: '' });
  });

  it('warns when a static address is leased to another client in state_dir (the pool moved under it)', async () => {
    const holder = encodeKey(publicKeyOf(generatePrivateKey()));
    mkdirSync(join(dir, 'state'));
    writeFileSync(
      join(dir, 'state', 'leases.json'),
      JSON.stringify({ version: 1, leases: [{ key: holder, address: '10.8.0.2', name: 'phone', lastSeen: 1 }] }),
    );
    writeFileSync(F, SERVER + `state_dir: ${join(dir, 'state')}\n`);
    const r = await tvpn('check', '-c', F);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `warning: client old: address 10.8.0.2 is leased to phone (${join(dir, 'state', 'leases.json')}); ` +
        'a running server refuses this on reload while phone is connected, and a restart gives phone a new address\n' +
        `${F}: ok (server tun0 10.8.0.1/24, 1 client, pool 10.8.0.10-10.8.0.250)\n`,
    );
    writeFileSync(join(dir, 'state', 'leases.json'), JSON.stringify({ version: 1, leases: [{ key: PEER, address: '10.8.0.2', name: 'old', lastSeen: 1 }] }));
    expect((await tvpn('check', '-c', F)).out).toMatch(/^\S+: ok /); // its own lease
  });

  it('detects a client config, or takes --client/--server', async () => {
    const path = join(dir, 'c.yaml');
    writeFileSync(path, `server: { endpoint: '[fd00::1]:51820', public_key: ${PEER} }\nprivate_key_file: server.key\n`);
    const ok = { code: 0, out: `${path}: ok (client tun0, server [fd00::1]:51820)\n`, err: '' };
    expect(await tvpn('check', '-c', path)).toEqual(ok);
    expect(await tvpn('check', '--client', '-c', path)).toEqual(ok);
    const forced = await tvpn('check', '--server', '-c', path);
    expect(forced.code).toBe(2);
    expect(forced.err).toBe(`tvpn: ${path}: this is a client config (it has 'server'), not a server config; use it with 'tvpn client -c ${path}'\n`);
  });

  it('reports bad input as one line and exit code 2', async () => {
    writeFileSync(F, SERVER.replace('routes: [10.20', 'rutes: [10.20'));
    expect(await tvpn('check', '-c', F)).toEqual({ code: 2, out: '', err: `tvpn: ${F}:9: unknown key 'push.rutes' (did you mean 'routes'?)\n` });
  });

  it('accepts the global --log-level before or after the command', async () => {
    writeFileSync(F, SERVER);
    expect((await tvpn('--log-level', 'debug', 'check', '-c', F)).code).toBe(0);
    expect((await tvpn('check', '-c', F, '--log-level', 'warn')).code).toBe(0);
  });
});

describe('a config in the wrong place', () => {
  it('names a server config given to the client and a client config given to the server', async () => {
    writeFileSync(F, SERVER);
    const client = join(dir, 'laptop.yaml');
    writeFileSync(client, `server: { endpoint: vpn.example.com:51820, public_key: ${PEER} }\nprivate_key_file: server.key\n`);
    expect(await tvpn('client', '-c', F)).toEqual({
      code: 2,
      out: '',
      err: `tvpn: ${F}: this is a server config (it has 'pool'), not a client config; use it with 'tvpn server -c ${F}'\n`,
    });
    expect((await tvpn('server', '-c', client)).err).toBe(
      `tvpn: ${client}: this is a client config (it has 'server'), not a server config; use it with 'tvpn client -c ${client}'\n`,
    );
  });

  it("reads a near miss of 'server' as a client config's typo", async () => {
    const client = join(dir, 'client.yaml');
    writeFileSync(client, `private_key_file: server.key\nsever: { endpoint: vpn.example.com:51820, public_key: ${PEER} }\n`);
    expect((await tvpn('check', '-c', client)).err).toBe(`tvpn: ${client}:2: unknown key 'sever' (did you mean 'server'?)\n`);
  });

  it('names a wg-quick profile', async () => {
    writeFileSync(F, SERVER);
    const phone = join(dir, 'phone.conf');
    expect((await tvpn('add-client', 'phone', '-c', F, '--wg-quick', '--out', phone, '--endpoint', 'vpn.example.com:51820')).code).toBe(0);
    expect(await tvpn('check', '-c', phone)).toEqual({
      code: 2,
      out: '',
      err:
        `tvpn: ${phone}: this is a wg-quick file (a WireGuard app profile), not a tvpn config; import it into a WireGuard app ` +
        `or run 'wg-quick up ${phone}'; 'tvpn client' needs the YAML config 'tvpn add-client' writes without --wg-quick\n`,
    });
  });
});

describe('demo', () => {
  it("says up front that it needs iproute2's ip", async () => {
    const path = process.env.PATH;
    process.env.PATH = dir;
    try {
      expect(await tvpn('demo')).toEqual({
        code: 1,
        out: '',
        err: "tvpn: tvpn demo needs the 'ip' command to make network namespaces (on Debian: apt-get install iproute2)\n",
      });
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('usage errors', () => {
  it.each([
    [['check'], "tvpn: required option '-c, --config <file>' not specified (see 'tvpn check --help')\n"],
    [['check', '-c', 'x', '--bogus'], "tvpn: unknown option '--bogus' (see 'tvpn check --help')\n"],
    [['check', '-c', 'x', '--client', '--server'], "tvpn: option '--server' cannot be used with option '--client' (see 'tvpn check --help')\n"],
    [['chek'], "tvpn: unknown command 'chek' (Did you mean check?)\n"],
    [['add-client', 'a', 'b', '-c', 'x'], "tvpn: too many arguments for 'add-client'. Expected 1 argument but got 2. (see 'tvpn add-client --help')\n"],
    [
      ['--log-level', 'loud', 'genkey'],
      "tvpn: option '--log-level <level>' argument 'loud' is invalid. Allowed choices are error, warn, info, debug. (see 'tvpn --help')\n",
    ],
  ])('%j', async (args, err) => {
    expect(await tvpn(...args)).toEqual({ code: 2, out: '', err });
  });

  it('prints help with exit code 0', async () => {
    const help = await tvpn('--help');
    expect(help.code).toBe(0);
    for (const command of ['genkey', 'pubkey', 'genpsk', 'check', 'add-client']) expect(help.out).toContain(command);
  });
});

describe('add-client', () => {
  const out = (): string => join(dir, 'laptop.yaml');

  it('adds the client, keeping the server config byte for byte, and writes a working client config', async () => {
    writeFileSync(F, SERVER, { mode: 0o640 });
    chmodSync(F, 0o640);
    const r = await tvpn('add-client', 'laptop', '-c', F, '--out', out(), '--endpoint', 'vpn.example.com:51820');
    expect(r).toEqual({
      code: 0,
      out: `added client 'laptop' (10.8.0.3) to ${F}; wrote ${out()} (mode 0600: it holds the client's private key)\n`,
      err: 'tvpn: note: no server runs with this config here: it applies the change when it starts\n',
    });

    const text = readFileSync(F, 'utf8');
    const [entry] = loadServerConfig(F).clients.filter((c) => c.name === 'laptop');
    expect(entry).toMatchObject({ address: '10.8.0.3', presharedKey: null, routes: [], stock: false });
    // Only the entry is new, after the last client and before the comment that trails the list.
    expect(text).toBe(SERVER.replace('10.8.0.2\n', `10.8.0.2\n  - name: laptop\n    public_key: ${encodeKey(entry!.publicKey)}\n    address: 10.8.0.3\n`));
    expect(statSync(F).mode & 0o777).toBe(0o640);

    expect(statSync(out()).mode & 0o777).toBe(0o600);
    const client = loadClientConfig(out());
    expect(client.server).toEqual({ host: 'vpn.example.com', port: 51820, publicKey: publicKeyOf(SERVER_KEY), presharedKey: null, tcp: null, transport: 'auto', fleet: [] });
    expect(publicKeyOf(client.privateKey)).toEqual(entry!.publicKey);
    expect(readFileSync(out(), 'utf8')).toMatch(/^# tvpn client config for 'laptop', made by 'tvpn add-client' from server\.yaml\./);
  });

  it('refuses a duplicate name, a taken or pooled --address, and an existing output file', async () => {
    writeFileSync(F, SERVER);
    const refuse = async (args: string[], err: string): Promise<void> => {
      expect(await tvpn('add-client', ...args, '-c', F, '--out', out())).toEqual({ code: 2, out: '', err: `tvpn: ${err}\n` });
      expect(readFileSync(F, 'utf8')).toBe(SERVER);
    };
    await refuse(['old'], `${F}: a client named 'old' already exists; pick another name or remove the old entry first`);
    await refuse(['new', '--address', '10.8.0.2'], "--address: 10.8.0.2 is already the address of client 'old'; give each client its own");
    await refuse(
      ['new', '--address', '10.8.0.50'],
      '--address: 10.8.0.50 is inside the pool 10.8.0.10-10.8.0.250, which the server hands out dynamically; pick an address outside it or shrink the pool',
    );
    await refuse(['new', '--address', '10.8.0'], "--address: '10.8.0' is not an IPv4 or IPv6 address");
    await refuse(['new', '--endpoint', 'vpn.example.com'], "--endpoint: 'vpn.example.com' is not host:port (e.g. vpn.example.com:51820)");
    await refuse(['a b'], "client name: 'a b' is not a valid client name (up to 64 letters, digits, '_', '.', '@', '-'; starting with a letter or digit)");
    writeFileSync(out(), 'precious');
    await refuse(['new'], `cannot write ${out()}: already exists; remove it or pass --out with another path`);
    expect(readFileSync(out(), 'utf8')).toBe('precious');
  });

  it('takes --address when it is free and outside the pool, following blank lines between entries', async () => {
    const spaced = SERVER.replace('10.8.0.2\n', `10.8.0.2\n\n  - name: other\n    public_key: ${encodeKey(publicKeyOf(generatePrivateKey()))}\n`);
    writeFileSync(F, spaced);
    expect((await tvpn('add-client', 'laptop', '-c', F, '--out', out(), '--address', '10.8.0.251')).code).toBe(0);
    const entry = loadServerConfig(F).clients.at(-1)!;
    expect(entry).toMatchObject({ name: 'laptop', address: '10.8.0.251' });
    const added = `\n  - name: laptop\n    public_key: ${encodeKey(entry.publicKey)}\n    address: 10.8.0.251\n`;
    expect(readFileSync(F, 'utf8')).toBe(spaced.replace('\n\n  # a comment', `\n${added}\n  # a comment`));
  });

  it('with no room outside the pool, takes the top of the pool and narrows it', async () => {
    writeFileSync(F, `# header\ninterface: { address: 10.8.0.1/24 }   # aligned\nprivate_key_file: server.key\nclients:\n- name: old\n  public_key: ${PEER}\n`);
    const r = await tvpn('add-client', 'laptop', '-c', F, '--out', out(), '--endpoint', '192.0.2.1:51820');
    expect(r.code).toBe(0);
    expect(r.err).toContain('tvpn: note: no free address outside the pool, so took 10.8.0.254 from its top; the pool is now 10.8.0.2-10.8.0.253\n');
    const c = loadServerConfig(F);
    expect(c.pool).toEqual({ first: '10.8.0.2', last: '10.8.0.253' });
    expect(c.clients.map((x) => [x.name, x.address])).toEqual([
      ['old', null],
      ['laptop', '10.8.0.254'],
    ]);
    expect(readFileSync(F, 'utf8')).toMatch(
      /^# header\ninterface: \{ address: 10\.8\.0\.1\/24 \}   # aligned\nprivate_key_file: server\.key\n# dynamic addresses; narrowed by 'tvpn add-client' to make room for static ones\npool: 10\.8\.0\.2-10\.8\.0\.253\nclients:\n- name: old\n/,
    );
    // The next one comes from the pool's top again, rewriting the pool in place.
    expect((await tvpn('add-client', 'phone', '-c', F, '--out', join(dir, 'phone.yaml'))).code).toBe(0);
    expect(loadServerConfig(F).pool).toEqual({ first: '10.8.0.2', last: '10.8.0.252' });
  });

  it('refuses when the subnet is full', async () => {
    writeFileSync(F, 'interface: { address: 10.8.0.1/30 }\nprivate_key_file: server.key\n');
    expect(await tvpn('add-client', 'laptop', '-c', F, '--out', out())).toEqual({
      code: 2,
      out: '',
      err: `tvpn: ${F}: no free IPv4 address for a client in the subnet 10.8.0.0/30; use a larger subnet\n`,
    });
  });

  it('leaves a placeholder endpoint when the server listens on every address', async () => {
    writeFileSync(F, 'interface: { address: 10.8.0.1/24 }\nprivate_key_file: server.key\nlisten: 0.0.0.0:4500\nclients: []\n');
    const r = await tvpn('add-client', 'laptop', '-c', F, '--out', out());
    expect(r.err).toContain(`tvpn: note: set server.endpoint in ${out()} to the server's public address (or pass --endpoint HOST:PORT)\n`);
    expect(readFileSync(out(), 'utf8')).toContain("endpoint: <server-host>:4500 # replace <server-host> with the server's DNS name or public IP address\n");
    expect(await tvpn('check', '-c', out())).toEqual({
      code: 2,
      out: '',
      err: `tvpn: ${out()}:6: server.endpoint: '<server-host>' is a placeholder; replace it with the server's DNS name or public IP address\n`,
    });
    expect(loadServerConfig(F).clients.map((c) => c.name)).toEqual(['laptop']); // `clients: []` became a block list
  });

  it("uses the server's listen address when it is a specific one, quoting IPv6 for YAML", async () => {
    writeFileSync(F, "interface: { address: 'fd00::1/64' }\nprivate_key_file: server.key\nlisten: '[fd00:1::5]:51820'\n");
    expect((await tvpn('add-client', 'laptop', '-c', F, '--out', out())).code).toBe(0);
    const client = parseClientConfig(readFileSync(out(), 'utf8'), out());
    expect([client.server.host, client.server.port]).toEqual(['fd00:1::5', 51820]);
    expect(loadServerConfig(F).clients[0]!.address).toBe('fd00::ffff:ffff:ffff:ffff');
  });
});

/** The real executable: bin/tvpn on the compiled dist/, as users run it. */
describe('bin/tvpn', () => {
  const bin = join(ROOT, 'bin/tvpn');
  const exec = (args: string[], input?: string) => spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, input, encoding: 'utf8' });

  beforeAll(() => {
    // tsc emits even if unrelated files in the tree fail to typecheck; what matters is the CLI's output.
    spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT });
    expect(existsSync(join(ROOT, 'dist/src/cli/main.js'))).toBe(true);
  });

  it('genkey | pubkey matches @noble/curves', () => {
    for (let i = 0; i < 3; i++) {
      const priv = exec(['genkey']);
      expect(priv.status).toBe(0);
      expect(priv.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
      const pub = exec(['pubkey'], priv.stdout);
      expect(pub.status).toBe(0);
      expect(pub.stdout).toBe(`${encodeKey(x25519.getPublicKey(decodeKey(priv.stdout, 'genkey')))}\n`);
    }
  });

  it('genkey warns when its output file is readable by others, like wg genkey', () => {
    const path = join(dir, 'exposed.key');
    const fd = openSync(path, 'w', 0o644);
    const r = spawnSync(process.execPath, [bin, 'genkey'], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    closeSync(fd);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("tvpn: warning: writing a secret key to a file others can read; run 'umask 077' first (tvpn refuses such key files)\n");
    expect(decodeKey(readFileSync(path, 'utf8'), path).length).toBe(32);
  });

  it('genpsk prints a 32-byte key', () => {
    const psk = exec(['genpsk']);
    expect(psk.status).toBe(0);
    expect(decodeKey(psk.stdout, 'genpsk').length).toBe(32);
  });

  it('pubkey rejects a malformed key with one line and exit code 2', () => {
    const r = exec(['pubkey'], 'not a key\n');
    expect([r.status, r.stdout, r.stderr]).toEqual([
      2,
      '',
      "tvpn: the private key on stdin: not a WireGuard key (expected 44 characters of base64 for 32 bytes; make one with 'tvpn genkey')\n",
    ]);
  });

  it('check on the example config names what to do first', () => {
    const r = exec(['check', '-c', 'configs/server.yaml']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `tvpn: configs/server.yaml:26: private_key_file: ${ROOT}/configs/server.key: no such file; create it with 'umask 077; tvpn genkey > ${ROOT}/configs/server.key'\n`,
    );
  });

  it('exits 2 on usage errors', () => {
    const r = exec(['frobnicate']);
    expect([r.status, r.stderr]).toEqual([2, "tvpn: unknown command 'frobnicate' (see 'tvpn --help')\n"]);
  });
});
