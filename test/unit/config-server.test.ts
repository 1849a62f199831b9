import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultWorkers } from '../../src/config/fields.js';
import { encodeKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { defaultStatusSocket, describeStatusSocket } from '../../src/config/load.js';
import { loadServerConfig, parseServerConfig } from '../../src/config/server.js';
import { F, HEAD, LAPTOP, NOT_A_KEY, PUB2, PUB3, PUB4, SERVER_KEY, dir, error, example, priv, pub, serverError, useConfigDir } from './support/config.js';

useConfigDir();

describe('server config', () => {
  it('resolves defaults', () => {
    const c = parseServerConfig(HEAD, F);
    expect(c).toEqual({
      file: F,
      interface: { name: 'tun0', address: { ip: '10.8.0.1', prefix: 24, text: '10.8.0.1/24' }, address6: null, mtu: 1420 },
      listen: { host: '0.0.0.0', port: 51820 },
      tcp: null,
      privateKey: SERVER_KEY,
      pool: { first: '10.8.0.2', last: '10.8.0.254' },
      pool6: null,
      poolExplicit: false,
      stateDir: '/var/lib/tvpn',
      clientToClient: false,
      logLevel: 'info',
      logFormat: 'text',
      workers: defaultWorkers(availableParallelism()),
      statusSocket: '\0tvpn-tun0',
      warnings: [],
      underLoad: false,
      push: { routes: [], redirectGateway: false, dns: [], mtu: 1420, keepalive: 25 },
      clients: [],
      metrics: null,
      fleet: null,
    });
  });

  it('reads every setting', () => {
    const c = parseServerConfig(
      [
        'interface: { name: vpn0, address: 10.8.0.1/24, mtu: 1380 }',
        "listen: '[::]:443'",
        `private_key: ${encodeKey(SERVER_KEY)}`,
        'pool: 10.8.0.100-10.8.0.200',
        'state_dir: /srv/tvpn',
        'client_to_client: true',
        'log_level: debug',
        'log_format: json',
        'status_socket: /run/tvpn.sock',
        'under_load: true',
        'push: { routes: [10.20.0.0/16, 192.168.0.0/16], redirect_gateway: true, dns: [10.8.0.1, "fd00:0:0::53"], mtu: 1300, keepalive: 0 }',
        'clients:',
        `  - { name: laptop, public_key: ${PUB2}, preshared_key: ${encodeKey(priv(9))}, address: 10.8.0.2, routes: [192.168.50.0/24] }`,
        `  - { name: phone, public_key: ${PUB3} }`,
        `  - { name: router, public_key: ${PUB4}, address: 10.8.0.3, stock: true, disabled: true, expires: 2026-12-31 }`,
      ].join('\n'),
      F,
    );
    expect(c.interface).toEqual({ name: 'vpn0', address: { ip: '10.8.0.1', prefix: 24, text: '10.8.0.1/24' }, address6: null, mtu: 1380 });
    expect(c.listen).toEqual({ host: '::', port: 443 });
    expect(c.privateKey).toEqual(SERVER_KEY);
    expect(c.pool).toEqual({ first: '10.8.0.100', last: '10.8.0.200' });
    expect([c.stateDir, c.clientToClient, c.logLevel, c.logFormat, c.statusSocket, c.underLoad]).toEqual(['/srv/tvpn', true, 'debug', 'json', '/run/tvpn.sock', true]);
    expect(c.push).toEqual({ routes: ['10.20.0.0/16', '192.168.0.0/16'], redirectGateway: true, dns: ['10.8.0.1', 'fd00::53'], mtu: 1300, keepalive: 0 });
    expect(c.clients).toEqual([
      { name: 'laptop', publicKey: publicKeyOf(priv(2)), presharedKey: priv(9), address: '10.8.0.2', address6: null, routes: ['192.168.50.0/24'], stock: false, disabled: false, expires: null },
      { name: 'phone', publicKey: publicKeyOf(priv(3)), presharedKey: null, address: null, address6: null, routes: [], stock: false, disabled: false, expires: null },
      { name: 'router', publicKey: publicKeyOf(priv(4)), presharedKey: null, address: '10.8.0.3', address6: null, routes: [], stock: true, disabled: true, expires: Date.UTC(2026, 11, 31) },
    ]);
  });

  it.each([
    ['2026-12-31', '2026-12-31T00:00:00.000Z'],
    ['2026-12-31T18:30:00Z', '2026-12-31T18:30:00.000Z'],
    ["'2026-12-31 18:30+02:00'", '2026-12-31T16:30:00.000Z'],
    ['2026-06-01T08:00:00.250-05:00', '2026-06-01T13:00:00.250Z'],
  ])('reads expires: %s', (text, iso) => {
    const [entry] = parseServerConfig(`${HEAD}clients:\n  - { name: a, public_key: ${PUB2}, expires: ${text} }\n`, F).clients;
    expect(new Date(entry!.expires!).toISOString()).toBe(iso);
  });

  it('fits the default pool around static addresses, taking the longest free run', () => {
    const c = parseServerConfig(`${HEAD}${LAPTOP}  - { name: b, public_key: ${PUB3}, address: 10.8.0.200 }\n`, F);
    expect(c.pool).toEqual({ first: '10.8.0.3', last: '10.8.0.199' });
  });

  it('works with IPv6', () => {
    const c = parseServerConfig(
      `interface: { address: 'fd00:8::1/64' }\nprivate_key_file: server.key\nlisten: '[::]:51820'\nclients: [{ name: a, public_key: ${PUB2}, address: 'fd00:8:0:0::2' }]\n`,
      F,
    );
    expect(c.interface.address).toEqual({ ip: 'fd00:8::1', prefix: 64, text: 'fd00:8::1/64' });
    expect(c.pool).toEqual({ first: 'fd00:8::3', last: 'fd00:8::ffff:ffff:ffff:ffff' });
    expect(c.clients[0]!.address).toBe('fd00:8::2');
  });

  it('resolves relative paths against the config file directory', () => {
    mkdirSync(join(dir, 'keys'));
    writeKeyFile(join(dir, 'keys', 'server.key'), SERVER_KEY);
    writeKeyFile(join(dir, 'keys', 'laptop.psk'), priv(7));
    const c = parseServerConfig(
      [
        'interface: { address: 10.8.0.1/24 }',
        'private_key_file: keys/server.key',
        'state_dir: state',
        'status_socket: run/ctl.sock',
        `clients: [{ name: laptop, public_key: ${PUB2}, preshared_key_file: keys/laptop.psk }]`,
      ].join('\n'),
      F,
    );
    expect(c.privateKey).toEqual(SERVER_KEY);
    expect(c.clients[0]!.presharedKey).toEqual(priv(7));
    expect(c.stateDir).toBe(join(dir, 'state'));
    expect(c.statusSocket).toBe(join(dir, 'run', 'ctl.sock'));
  });

  it("takes '@name' as an abstract status socket", () => {
    expect(parseServerConfig(`${HEAD}status_socket: '@tvpn-test'\n`, F).statusSocket).toBe('\0tvpn-test');
    expect(defaultStatusSocket('tun3')).toBe('\0tvpn-tun3');
    expect(describeStatusSocket('\0tvpn-tun3')).toBe('@tvpn-tun3');
  });

  it('reads control_socket, the old name of status_socket, with a warning naming the new key', () => {
    const c = parseServerConfig(`${HEAD}control_socket: '@old'\n`, F);
    expect(c.statusSocket).toBe('\0old');
    expect(c.warnings.map((w) => w.replaceAll(dir, 'DIR'))).toEqual(["DIR/server.yaml:3: control_socket: deprecated key, rename it to 'status_socket'"]);
    expect(error(() => parseServerConfig(`${HEAD}status_socket: '@new'\ncontrol_socket: '@old'\n`, F))).toBe(
      "DIR/server.yaml:4: control_socket: remove it: it is the old name of 'status_socket', which is set too",
    );
  });

  it('treats a key with an empty value as absent', () => {
    expect(parseServerConfig(`${HEAD}pool:\nclients:\npush:\n  routes:\n`, F).pool.first).toBe('10.8.0.2');
  });

  it.each([
    // Unknown keys, with a suggestion when one is close.
    ['privat_key: x', "DIR/server.yaml:3: unknown key 'privat_key' (did you mean 'private_key'?)"],
    ['Listen: 0.0.0.0:1', "DIR/server.yaml:3: unknown key 'Listen' (did you mean 'listen'?)"],
    ['push:\n  rutes: [10.0.0.0/8]', "DIR/server.yaml:4: unknown key 'push.rutes' (did you mean 'routes'?)"],
    ['clients:\n  - nmae: laptop', "DIR/server.yaml:4: unknown key 'clients[0].nmae' (did you mean 'name'?)"],
    [
      'colour: blue',
      "DIR/server.yaml:3: unknown key 'colour' (expected one of: interface, listen, endpoint, private_key_file, private_key, pool, state_dir, client_to_client, log_level, log_format, workers, status_socket, under_load, tcp, push, clients, metrics, fleet, control_socket)",
    ],
    // Wrong types.
    ['client_to_client: yes', "DIR/server.yaml:3: client_to_client: expected true or false, got 'yes'"],
    ['under_load: 1', 'DIR/server.yaml:3: under_load: expected true or false, got the number 1'],
    ['push:\n  dns: 10.8.0.1', "DIR/server.yaml:4: push.dns: expected a list, got '10.8.0.1'; write [10.8.0.1]"],
    ['push: [1]', 'DIR/server.yaml:3: push: expected a mapping of routes, redirect_gateway, dns, mtu, keepalive, got a list'],
    ['push:\n  keepalive: 2.5', 'DIR/server.yaml:4: push.keepalive: expected a whole number 0-65535, got the number 2.5'],
    ['push:\n  keepalive: 70000', 'DIR/server.yaml:4: push.keepalive: 70000 is out of range (0-65535)'],
    // What the control channel cannot push.
    ['push:\n  keepalive: 3601', 'DIR/server.yaml:4: push.keepalive: 3601 is above 3600, the longest keepalive the control channel can push'],
    ['push:\n  mtu: 9500', 'DIR/server.yaml:4: push.mtu: 9500 is above 9000, the largest MTU the control channel can push'],
    ['clients:\n  - name: 42', 'DIR/server.yaml:4: clients[0].name: expected a string, got the number 42'],
    ['clients: laptop', "DIR/server.yaml:3: clients: expected a list, got 'laptop'; write [laptop]"],
    ['log_level: verbose', "DIR/server.yaml:3: log_level: expected one of error, warn, info, debug, got 'verbose'"],
    ['log_format: xml', "DIR/server.yaml:3: log_format: expected one of text, json, got 'xml'"],
    ['state_dir: [a]', 'DIR/server.yaml:3: state_dir: expected a string, got a list'],
    // Bad prefixes and addresses.
    ['push:\n  routes: [10.20.0.0/33]', "DIR/server.yaml:4: push.routes[0]: bad CIDR '10.20.0.0/33': prefix length must be 0-32"],
    ['push:\n  routes: [10.20.0/16]', "DIR/server.yaml:4: push.routes[0]: '10.20.0' is not an IPv4 or IPv6 address"],
    ['push:\n  routes: [10.20.0.5/16]', "DIR/server.yaml:4: push.routes[0]: '10.20.0.5/16' has host bits set; write the network, '10.20.0.0/16'"],
    [
      'push:\n  routes: [10.20.0.0/16, 10.20.0.0/16]',
      'DIR/server.yaml:4: push.routes[1]: 10.20.0.0/16 is already listed at push.routes[0] (line 4); remove one',
    ],
    // What a config message cannot carry is refused here, not when the server pushes it.
    [
      `push:\n  routes: [${Array.from({ length: 1025 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(', ')}]`,
      'DIR/server.yaml:4: push.routes: 1025 entries, but a push carries at most 1024',
    ],
    [`push:\n  dns: [${Array.from({ length: 9 }, (_, i) => `10.8.0.${i + 1}`).join(', ')}]`, 'DIR/server.yaml:4: push.dns: 9 entries, but a push carries at most 8'],
    [
      "push:\n  mtu: 1000\n  routes: ['2001:db8::/32']",
      'DIR/server.yaml:4: push.mtu: the pushed MTU 1000 is too small for the pushed IPv6 routes (IPv6 needs 1280); set push.mtu',
    ],
    ['push:\n  dns: [10.8.0]', "DIR/server.yaml:4: push.dns[0]: '10.8.0' is not an IPv4 or IPv6 address"],
    ['push:\n  dns: [10.8.0.1/32]', "DIR/server.yaml:4: push.dns[0]: '10.8.0.1/32' is a prefix, not an address (drop the '/32')"],
    // Ports and listen addresses.
    ['listen: 0.0.0.0:70000', "DIR/server.yaml:3: listen: port 70000 in '0.0.0.0:70000' is out of range (1-65535)"],
    ['listen: 0.0.0.0:0', "DIR/server.yaml:3: listen: port 0 in '0.0.0.0:0' is out of range (1-65535)"],
    ['listen: 0.0.0.0:http', "DIR/server.yaml:3: listen: 'http' in '0.0.0.0:http' is not a port number"],
    [
      'listen: vpn.example.com:51820',
      "DIR/server.yaml:3: listen: 'vpn.example.com' in 'vpn.example.com:51820' is not an IP address (e.g. 0.0.0.0:51820 or [::]:51820)",
    ],
    [
      'listen: ::1:51820',
      "DIR/server.yaml:3: listen: '::1:51820' is not host:port (e.g. 0.0.0.0:51820 or [::]:51820); put an IPv6 address in brackets, e.g. [2001:db8::1]:51820",
    ],
    ['listen: [::]:51820', "DIR/server.yaml:3: YAML syntax error: Unexpected scalar at node end; quote IPv6 endpoints, e.g. '[::]:51820'"],
    ['listen: 51820', "DIR/server.yaml:3: listen: expected host:port, got the number 51820; write 0.0.0.0:51820 (or '[::]:51820' for IPv6, quoted)"],
    ['endpoint: vpn.example.com', "DIR/server.yaml:3: endpoint: 'vpn.example.com' is not host:port (e.g. vpn.example.com:51820)"],
    // Pools.
    ['pool: 10.9.0.10-10.9.0.20', "DIR/server.yaml:3: pool: 10.9.0.10-10.9.0.20 is not inside the VPN subnet's host addresses 10.8.0.1-10.8.0.254; pick a range within them"],
    ['pool: 10.8.0.0-10.8.0.20', "DIR/server.yaml:3: pool: 10.8.0.0-10.8.0.20 is not inside the VPN subnet's host addresses 10.8.0.1-10.8.0.254; pick a range within them"],
    ['pool: 10.8.0.1-10.8.0.20', "DIR/server.yaml:3: pool: 10.8.0.1-10.8.0.20 contains the server's own address 10.8.0.1; start the pool after it or end it before it"],
    ['pool: 10.8.0.20-10.8.0.10', "DIR/server.yaml:3: pool: '10.8.0.20-10.8.0.10' ends before it starts; write the lower address first"],
    ['pool: fd00::2-fd00::9', 'DIR/server.yaml:3: pool: fd00::2-fd00::9 is IPv6 but the VPN subnet 10.8.0.0/24 is IPv4'],
    ['pool: 10.8.0.10', "DIR/server.yaml:3: pool: '10.8.0.10' is not a range; write it as first-last, e.g. 10.8.0.10-10.8.0.250"],
    // Clients.
    [
      `${LAPTOP}  - name: laptop\n    public_key: ${PUB3}`,
      "DIR/server.yaml:7: clients[1].name: 'laptop' is already the name of clients[0].name (line 4); client names must be unique",
    ],
    [
      `${LAPTOP}  - name: phone\n    public_key: ${PUB2}`,
      "DIR/server.yaml:8: clients[1].public_key: client 'phone' has the same key as client 'laptop' (clients[0].public_key (line 5)); each client needs its own key pair",
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${pub(1)}`,
      "DIR/server.yaml:5: clients[0].public_key: this is the server's own public key; each client needs its own key pair",
    ],
    [
      `${LAPTOP}  - name: phone\n    public_key: ${PUB3}\n    address: 10.8.0.2`,
      "DIR/server.yaml:9: clients[1].address: 10.8.0.2 is already the address of clients[0] 'laptop' (line 6); give each client its own",
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.9.0.2`,
      'DIR/server.yaml:6: clients[0].address: 10.9.0.2 is outside the VPN subnet 10.8.0.0/24 (hosts 10.8.0.1-10.8.0.254); pick an address inside it',
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.8.0.255`,
      'DIR/server.yaml:6: clients[0].address: 10.8.0.255 is outside the VPN subnet 10.8.0.0/24 (hosts 10.8.0.1-10.8.0.254); pick an address inside it',
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.8.0.1`,
      "DIR/server.yaml:6: clients[0].address: 10.8.0.1 is the server's own address (interface.address); pick another",
    ],
    [
      `pool: 10.8.0.10-10.8.0.250\nclients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.8.0.50`,
      'DIR/server.yaml:7: clients[0].address: 10.8.0.50 is inside the pool 10.8.0.10-10.8.0.250, which the server hands out dynamically; pick an address outside it or shrink the pool',
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.8.0.2/32`,
      "DIR/server.yaml:6: clients[0].address: '10.8.0.2/32' is a prefix, not an address (drop the '/32')",
    ],
    [
      `clients:\n  - name: router\n    public_key: ${PUB2}\n    stock: true`,
      "DIR/server.yaml:4: clients[0]: a stock WireGuard client has no control channel to receive a pool address; give it a static 'address'",
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    routes: [10.8.0.0/25]`,
      'DIR/server.yaml:6: clients[0].routes[0]: 10.8.0.0/25 overlaps the VPN subnet 10.8.0.0/24; routes are for networks behind the client',
    ],
    [
      `${LAPTOP}    routes: [192.168.50.0/24]\n  - name: phone\n    public_key: ${PUB3}\n    routes: [192.168.50.0/24]`,
      'DIR/server.yaml:10: clients[1].routes[0]: 192.168.50.0/24 is already behind clients[0].routes[0] (line 7); a subnet can sit behind only one client',
    ],
    ['clients:\n  - name: a b\n    public_key: x', "DIR/server.yaml:4: clients[0].name: 'a b' is not a valid client name (up to 64 letters, digits, '_', '.', '@', '-'; starting with a letter or digit)"],
    ['clients:\n  - public_key: x', "DIR/server.yaml:4: clients[0]: missing 'name' (a unique name such as 'laptop')"],
    ['clients:\n  - name: laptop', "DIR/server.yaml:4: clients[0]: missing 'public_key' (the client's public key; derive it with 'tvpn pubkey < client.key')"],
    // Keys.
    [
      "clients:\n  - name: laptop\n    public_key: <laptop's public key>",
      "DIR/server.yaml:5: clients[0].public_key: '<laptop's public key>' is a placeholder; derive it with 'tvpn pubkey < private.key'",
    ],
    [
      'clients:\n  - name: laptop\n    public_key: abc=',
      `DIR/server.yaml:5: clients[0].public_key: ${NOT_A_KEY} derive it with 'tvpn pubkey < private.key')`,
    ],
    [
      `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    preshared_key_file: laptop.psk`,
      "DIR/server.yaml:6: clients[0].preshared_key_file: DIR/laptop.psk: no such file; create it with 'umask 077; tvpn genpsk > DIR/laptop.psk'",
    ],
    [`private_key: ${encodeKey(SERVER_KEY)}`, "DIR/server.yaml:3: private_key: give either 'private_key' or 'private_key_file', not both"],
    [`clients:\n  - { name: a, public_key: ${PUB2}, disabled: yes }`, "DIR/server.yaml:4: clients[0].disabled: expected true or false, got 'yes'"],
    [
      `clients:\n  - { name: a, public_key: ${PUB2}, expires: 2026-02-30 }`,
      "DIR/server.yaml:4: clients[0].expires: '2026-02-30' is not an ISO 8601 date or date-time; write e.g. 2026-12-31 or 2026-12-31T18:00:00Z",
    ],
    [
      `clients:\n  - { name: a, public_key: ${PUB2}, expires: 2026-12-31T18:00 }`,
      "DIR/server.yaml:4: clients[0].expires: '2026-12-31T18:00' has no time zone; add Z (UTC) or an offset such as +02:00",
    ],
    // YAML itself.
    ['listen: 0.0.0.0:1\nlisten: 0.0.0.0:2', 'DIR/server.yaml:4: YAML syntax error: Map keys must be unique; remove one of them'],
    ['push: [1', 'DIR/server.yaml:4: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]'],
  ])('rejects %j', (body, expected) => {
    expect(serverError(`${HEAD}${body}\n`)).toBe(expected);
  });

  it.each([
    ['', 'DIR/server.yaml: the file is empty; see configs/ in the tvpn package for a commented example'],
    ['- a', 'DIR/server.yaml: expected a mapping of interface, listen, endpoint, private_key_file, private_key, pool, state_dir, client_to_client, log_level, log_format, workers, status_socket, under_load, tcp, push, clients, metrics, fleet, control_socket, got a list'],
    ['private_key_file: server.key', "DIR/server.yaml: missing 'interface' (e.g. interface: { name: tun0, address: 10.8.0.1/24 })"],
    [
      'interface: { name: tun0 }\nprivate_key_file: server.key',
      "DIR/server.yaml:1: interface: missing 'address' (the server's tunnel address with the VPN subnet's prefix, e.g. 10.8.0.1/24, or one of each family: [10.8.0.1/24, fd00:8::1/64])",
    ],
    ['interface: { address: 10.8.0.1/24 }', "DIR/server.yaml: missing 'private_key_file' (or 'private_key'); make a key with 'umask 077; tvpn genkey > server.key'"],
    ['interface: { address: 10.8.0.1/24 }\nprivate_key: abc', `DIR/server.yaml:2: private_key: ${NOT_A_KEY} make one with 'tvpn genkey')`],
    ['interface: { address: 10.8.0.1/24 }\nprivate_key: <base64>', "DIR/server.yaml:2: private_key: '<base64>' is a placeholder; make one with 'tvpn genkey'"],
    [
      'interface: { address: 10.8.0.1/24 }\nprivate_key_file: keys/nope.key',
      "DIR/server.yaml:2: private_key_file: DIR/keys/nope.key: no such file; create it with 'umask 077; tvpn genkey > DIR/keys/nope.key'",
    ],
    // The config's own directory: not "chmod 600" on it.
    ['interface: { address: 10.8.0.1/24 }\nprivate_key_file: .', 'DIR/server.yaml:2: private_key_file: DIR: is a directory, not a key file; name the key file itself'],
    [
      `server: { endpoint: vpn.example.com:51820, public_key: ${PUB2} }\nprivate_key_file: client.key`,
      "DIR/server.yaml: this is a client config (it has 'server'), not a server config; use it with 'tvpn client -c DIR/server.yaml'",
    ],
    [
      '[Interface]\nAddress = 10.8.0.2/24\n',
      "DIR/server.yaml: this is a wg-quick file (a WireGuard app profile), not a tvpn config; import it into a WireGuard app or run 'wg-quick up DIR/server.yaml'; 'tvpn server' needs the YAML config",
    ],
    ['interface: { address: 10.8.0.300/24 }', "DIR/server.yaml:1: interface.address: '10.8.0.300' is not an IPv4 or IPv6 address"],
    ['interface: { address: 10.8.0.1 }', "DIR/server.yaml:1: interface.address: '10.8.0.1' needs a prefix length, e.g. '10.8.0.1/24'"],
    ['interface: { address: 10.8.0.0/24 }', "DIR/server.yaml:1: interface.address: 10.8.0.0/24 is the subnet's network address; use a host address such as 10.8.0.1/24"],
    ['interface: { address: 10.8.0.255/24 }', "DIR/server.yaml:1: interface.address: 10.8.0.255/24 is the subnet's broadcast address; use a host address such as 10.8.0.1/24"],
    ['interface: { address: 10.8.0.1/24, mtu: big }', "DIR/server.yaml:1: interface.mtu: expected a whole number 576-65535, got 'big'"],
    ['interface: { address: 10.8.0.1/24, mtu: 100 }', 'DIR/server.yaml:1: interface.mtu: 100 is out of range (576-65535)'],
    ["interface: { address: 'fd00::1/64', mtu: 1000 }", 'DIR/server.yaml:1: interface.mtu: 1000 is too small for IPv6, which needs at least 1280'],
    ['interface: { name: a-very-long-name0, address: 10.8.0.1/24 }', "DIR/server.yaml:1: interface.name: 'a-very-long-name0' is not a valid interface name (1-15 letters, digits, '_', '.', '-')"],
    ['interface: tun0', 'DIR/server.yaml:1: interface: expected a mapping of name, address, mtu, got \'tun0\''],
    [
      `interface: { address: 10.8.0.1/30 }\nprivate_key_file: server.key\nclients: [{ name: a, public_key: ${PUB2}, address: 10.8.0.2 }]`,
      'DIR/server.yaml: the VPN subnet 10.8.0.0/30 has no address left for a pool of dynamic ones; use a larger subnet such as /24',
    ],
    [
      `interface: { address: 10.8.0.1/24, mtu: 9500 }\nprivate_key_file: server.key`,
      'DIR/server.yaml: push.mtu defaults to 9500, but 9500 is above 9000, the largest MTU the control channel can push; set push.mtu',
    ],
    [
      `${HEAD}status_socket: ${'x'.repeat(120)}`,
      "DIR/server.yaml:3: status_socket: socket path is longer than 107 bytes; use a shorter path or an abstract name like '@tvpn-tun0'",
    ],
  ])('rejects the whole config %j', (text, expected) => {
    expect(serverError(text)).toBe(expected);
  });

  describe('files', () => {
    it('refuses a group- or world-readable private key file', () => {
      chmodSync(join(dir, 'server.key'), 0o640);
      expect(serverError(HEAD)).toBe(
        "DIR/server.yaml:2: private_key_file: DIR/server.key: secret key is accessible by group or others (mode 0640); run 'chmod 600 DIR/server.key'",
      );
    });

    it('refuses an inline secret key in a config file others can read', () => {
      writeFileSync(F, `interface: { address: 10.8.0.1/24 }\nprivate_key: ${encodeKey(SERVER_KEY)}\n`, { mode: 0o644 });
      chmodSync(F, 0o644);
      expect(error(() => loadServerConfig(F))).toBe(
        "DIR/server.yaml:2: private_key: a secret key inline needs a private config file, but DIR/server.yaml is accessible by group or others (mode 0644); run 'chmod 600 DIR/server.yaml' or move the key to private_key_file",
      );
      chmodSync(F, 0o600);
      expect(loadServerConfig(F).privateKey).toEqual(SERVER_KEY);
    });

    it('names a missing config file by its resolved path', () => {
      expect(error(() => loadServerConfig(join(dir, 'nope.yaml')))).toBe('cannot read config DIR/nope.yaml: no such file');
    });
  });
});

describe('example configs', () => {
  it('configs/server.yaml parses once its placeholders are filled in', () => {
    writeKeyFile(join(dir, 'laptop.psk'), priv(9));
    const text = example('server.yaml')
      .replace("<laptop's public key>", PUB2)
      .replace("<phone's public key>", PUB3)
      .replace("<router's public key>", PUB4);
    writeFileSync(F, text);
    const c = loadServerConfig(F);
    expect(c.interface).toEqual({ name: 'tun0', address: { ip: '10.8.0.1', prefix: 24, text: '10.8.0.1/24' }, address6: null, mtu: 1420 });
    expect(c.pool).toEqual({ first: '10.8.0.10', last: '10.8.0.250' });
    expect(c.push).toEqual({ routes: ['10.20.0.0/16'], redirectGateway: false, dns: ['10.8.0.1'], mtu: 1420, keepalive: 25 });
    expect(c.clients.map((x) => [x.name, x.address, x.stock, x.presharedKey !== null])).toEqual([
      ['laptop', '10.8.0.2', false, true],
      ['phone', null, false, false],
      ['router', '10.8.0.3', true, false],
    ]);
  });

  it('configs/server.yaml names its first placeholder', () => {
    writeFileSync(F, example('server.yaml'));
    expect(error(() => loadServerConfig(F))).toBe(
      "DIR/server.yaml:60: clients[0].public_key: '<laptop's public key>' is a placeholder; derive it with 'tvpn pubkey < private.key'",
    );
  });
});

describe('workers', () => {
  it('defaults to the cores less two, 1 to 4', () => {
    expect([1, 2, 3, 4, 6, 64].map(defaultWorkers)).toEqual([1, 1, 1, 2, 4, 4]);
  });

  it('takes 1..64 and refuses the rest with the range', () => {
    expect(parseServerConfig(`${HEAD}workers: 2\n`, F).workers).toBe(2);
    expect(serverError(`${HEAD}workers: 0\n`)).toMatch(/^DIR\/server\.yaml:\d+: workers: .*1.*64/);
    expect(serverError(`${HEAD}workers: auto\n`)).toMatch(/^DIR\/server\.yaml:\d+: workers: /);
  });
});
