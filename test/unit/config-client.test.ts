import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import { loadClientConfig, parseClientConfig } from '../../src/config/client.js';
import { defaultWorkers } from '../../src/config/fields.js';
import { encodeKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { CHEAD, clientError, dir, error, example, priv, pub, useConfigDir } from './support/config.js';

useConfigDir();

describe('client config', () => {
  it('resolves defaults', () => {
    expect(parseClientConfig(CHEAD, join(dir, 'client.yaml'))).toEqual({
      file: join(dir, 'client.yaml'),
      interface: { name: 'tun0', address: null, mtu: null },
      server: { host: 'vpn.example.com', port: 51820, publicKey: publicKeyOf(priv(1)), presharedKey: null, tcp: null, transport: 'auto', fleet: [] },
      privateKey: priv(2),
      accept: { routes: true, dns: true, redirectGateway: true },
      routes: [],
      keepalive: 25,
      logLevel: 'info',
      logFormat: 'text',
      workers: defaultWorkers(availableParallelism()),
      statusSocket: '\0tvpn-tun0',
      warnings: [],
      metrics: null,
    });
  });

  it('reads control_socket as status_socket, with a warning', () => {
    const c = parseClientConfig(`${CHEAD}control_socket: '@c'\n`, join(dir, 'client.yaml'));
    expect([c.statusSocket, c.warnings.length]).toEqual(['\0c', 1]);
  });

  it('reads every setting', () => {
    writeKeyFile(join(dir, 'x.psk'), priv(8));
    const c = parseClientConfig(
      [
        'interface: { name: wg1, address: 10.8.0.2/24, mtu: 1400 }',
        `server: { endpoint: '[fd00::1]:4500', public_key: ${pub(1)}, preshared_key_file: x.psk }`,
        `private_key: ${encodeKey(priv(2))}`,
        'accept: { routes: false, dns: false, redirect_gateway: false }',
        'routes: [10.8.0.0/24, 192.168.0.0/16]',
        'keepalive: 0',
        'log_level: warn',
        'workers: 3',
        "status_socket: '@c'",
      ].join('\n'),
      join(dir, 'client.yaml'),
    );
    expect(c.interface).toEqual({ name: 'wg1', address: { ip: '10.8.0.2', prefix: 24, text: '10.8.0.2/24' }, mtu: 1400 });
    expect(c.server).toEqual({ host: 'fd00::1', port: 4500, publicKey: publicKeyOf(priv(1)), presharedKey: priv(8), tcp: null, transport: 'auto', fleet: [] });
    expect(c.privateKey).toEqual(priv(2));
    expect(c.accept).toEqual({ routes: false, dns: false, redirectGateway: false });
    expect([c.routes, c.keepalive, c.logLevel, c.workers, c.statusSocket]).toEqual([['10.8.0.0/24', '192.168.0.0/16'], 0, 'warn', 3, '\0c']);
  });

  it.each([
    ['192.0.2.7:1', '192.0.2.7', 1],
    ['Vpn-1.example.COM:65535', 'Vpn-1.example.COM', 65535],
    ["'[2001:db8:0::1]:51820'", '2001:db8::1', 51820],
  ])('accepts endpoint %s', (endpoint, host, port) => {
    const c = parseClientConfig(`server: { endpoint: ${endpoint}, public_key: ${pub(1)} }\nprivate_key_file: client.key\n`, join(dir, 'c.yaml'));
    expect([c.server.host, c.server.port]).toEqual([host, port]);
  });

  it.each([
    [
      "server: { endpoint: '<server-host>:51820', public_key: X }",
      "DIR/client.yaml:1: server.endpoint: '<server-host>' is a placeholder; replace it with the server's DNS name or public IP address",
    ],
    ['server: { endpoint: vpn.example.com, public_key: X }', "DIR/client.yaml:1: server.endpoint: 'vpn.example.com' is not host:port (e.g. vpn.example.com:51820)"],
    ['server: { endpoint: vpn.example.com:0, public_key: X }', "DIR/client.yaml:1: server.endpoint: port 0 in 'vpn.example.com:0' is out of range (1-65535)"],
    [
      "server: { endpoint: 'bad_host!:5', public_key: X }",
      "DIR/client.yaml:1: server.endpoint: 'bad_host!' in 'bad_host!:5' is not a DNS name or IP address (e.g. vpn.example.com:51820)",
    ],
    ['server: { endpoint: 999.1.1.1:5, public_key: X }', "DIR/client.yaml:1: server.endpoint: '999.1.1.1' is not an IPv4 or IPv6 address"],
    ["server: { endpoint: '[10.0.0.1]:5', public_key: X }", "DIR/client.yaml:1: server.endpoint: '[10.0.0.1]': brackets are for IPv6 addresses; write 10.0.0.1:5"],
    ['server: { endpoint: vpn.example.com:1 }', "DIR/client.yaml:1: server: missing 'public_key' (the server's public key; 'tvpn pubkey < server.key' prints it)"],
    [
      'server: { public_key: X }',
      "DIR/client.yaml:1: server: missing 'endpoint' (the server's host:port, e.g. vpn.example.com:51820)",
    ],
    [
      `server: { endpoint: vpn.example.com:1, public_key: '<server public key>' }\nprivate_key_file: client.key`,
      "DIR/client.yaml:1: server.public_key: '<server public key>' is a placeholder; derive it with 'tvpn pubkey < private.key'",
    ],
    ['colour: blue', "DIR/client.yaml:1: unknown key 'colour' (expected one of: interface, server, private_key_file, private_key, accept, routes, keepalive, log_level, log_format, workers, status_socket, metrics, control_socket)"],
    // A server config, a near miss of 'server' and a wg-quick profile are named as such.
    ['listen: 0.0.0.0:1', "DIR/client.yaml: this is a server config (it has 'listen'), not a client config; use it with 'tvpn server -c DIR/client.yaml'"],
    [`sever: { endpoint: vpn.example.com:1, public_key: ${pub(1)} }`, "DIR/client.yaml:1: unknown key 'sever' (did you mean 'server'?)"],
    [
      '[Interface]\nPrivateKey = x\n\n[Peer]\nEndpoint = vpn.example.com:51820',
      "DIR/client.yaml: this is a wg-quick file (a WireGuard app profile), not a tvpn config; import it into a WireGuard app or run 'wg-quick up DIR/client.yaml'; 'tvpn client' needs the YAML config 'tvpn add-client' writes without --wg-quick",
    ],
    ['keepalive: 25', "DIR/client.yaml: missing 'server' (the server to connect to, e.g. server: { endpoint: vpn.example.com:51820, public_key: ... })"],
  ])('rejects %j', (text, expected) => {
    expect(clientError(text)).toBe(expected);
  });

  it.each([
    ['accept: { routes: no }', "DIR/client.yaml:5: accept.routes: expected true or false, got 'no'"],
    ['accept: { dsn: true }', "DIR/client.yaml:5: unknown key 'accept.dsn' (did you mean 'dns'?)"],
    ['keepalive: -1', 'DIR/client.yaml:5: keepalive: -1 is out of range (0-65535)'],
    ['routes: [10.8.0.1/24]', "DIR/client.yaml:5: routes[0]: '10.8.0.1/24' has host bits set; write the network, '10.8.0.0/24'"],
    ['interface: { address: 10.8.0.2 }', "DIR/client.yaml:5: interface.address: '10.8.0.2' needs a prefix length, e.g. '10.8.0.2/24'"],
    [`private_key: ${encodeKey(priv(2))}`, "DIR/client.yaml:5: private_key: give either 'private_key' or 'private_key_file', not both"],
  ])('rejects %j', (body, expected) => {
    expect(clientError(`${CHEAD}${body}\n`)).toBe(expected);
  });

  it('requires a private key', () => {
    expect(clientError(CHEAD.replace('private_key_file: client.key\n', ''))).toBe(
      "DIR/client.yaml: missing 'private_key_file' (or 'private_key'); make a key with 'umask 077; tvpn genkey > client.key'",
    );
  });
});

describe('example configs', () => {
  it('configs/client.yaml parses once its placeholder is filled in', () => {
    const path = join(dir, 'client.yaml');
    writeFileSync(path, example('client.yaml'));
    expect(error(() => loadClientConfig(path))).toBe(
      "DIR/client.yaml:19: server.public_key: '<server's public key>' is a placeholder; derive it with 'tvpn pubkey < private.key'",
    );
    writeFileSync(path, example('client.yaml').replace("<server's public key>", pub(1)));
    const c = loadClientConfig(path);
    expect(c.server).toMatchObject({ host: 'vpn.example.com', port: 51820 });
    expect(c.routes).toEqual(['10.8.0.0/24']);
  });
});
