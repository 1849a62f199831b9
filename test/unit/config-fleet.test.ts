/** The `fleet` section of server.yaml: what it reads, and a one-line error for each mistake. */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/config/server.js';
import { writeKeyFile } from '../../src/config/keys.js';
import { tvpn } from './support/cli.js';
import { parseClientConfig } from '../../src/config/client.js';
import { CHEAD, F, HEAD, LAPTOP, PUB2, PUB3, clientError, dir, example, priv, serverError, useConfigDir } from './support/config.js';

useConfigDir();

const FLEET = 'fleet:\n  name: vpn1\n  endpoint: vpn1.example.com:51820\n'; // lines 3-5 after HEAD

describe('fleet config', () => {
  it('is off without the section', () => {
    expect(parseServerConfig(HEAD, F).fleet).toBeNull();
  });

  it('reads the defaults and every setting', () => {
    expect(parseServerConfig(`${HEAD}${FLEET}  etcd: { endpoints: ['http://10.0.0.1:2379', 'http://[fd00::1]:2379/'] }\n`, F).fleet).toEqual({
      name: 'vpn1',
      endpoint: { host: 'vpn1.example.com', port: 51820 },
      etcd: { endpoints: ['http://10.0.0.1:2379', 'http://[fd00::1]:2379'], caFile: null, certFile: null, keyFile: null },
      prefix: '/tvpn/',
      ttl: 5,
    });
    for (const f of ['ca.pem', 'me.pem', 'me-key.pem']) writeFileSync(join(dir, f), 'PEM', { mode: 0o600 });
    const c = parseServerConfig(
      `${HEAD}${FLEET}  prefix: /corp/vpn\n  ttl: 3\n  etcd:\n    endpoints: [https://etcd1:2379, https://etcd2:2379]\n    ca_file: ca.pem\n    cert_file: me.pem\n    key_file: me-key.pem\n`,
      F,
    ).fleet!;
    expect([c.prefix, c.ttl, c.etcd]).toEqual([
      '/corp/vpn/',
      3,
      { endpoints: ['https://etcd1:2379', 'https://etcd2:2379'], caFile: join(dir, 'ca.pem'), certFile: join(dir, 'me.pem'), keyFile: join(dir, 'me-key.pem') },
    ]);
  });

  it.each([
    ['fleet: { name: vpn1 }', "DIR/server.yaml:3: fleet: missing 'endpoint' (host:port at which clients and the other servers reach this one)"],
    [`${FLEET}`, "DIR/server.yaml:4: fleet: missing 'etcd' (e.g. etcd: { endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379] })"],
    [`${FLEET}  etcd: { endpoints: [] }`, 'DIR/server.yaml:6: fleet.etcd.endpoints: no etcd endpoints; list the members of the cluster, e.g. [https://10.0.0.1:2379]'],
    [`${FLEET}  etcd: { endpoints: [10.0.0.1:2379] }`, "DIR/server.yaml:6: fleet.etcd.endpoints[0]: '10.0.0.1:2379' is not an etcd endpoint; write http(s)://host:port, e.g. https://10.0.0.1:2379"],
    [`${FLEET}  etcd: { endpoints: [http://a:2379, https://b:2379] }`, 'DIR/server.yaml:6: fleet.etcd.endpoints: mixes http:// and https:// endpoints; use https:// for all members (or http:// for all, without TLS)'],
    [`${FLEET}  etcd: { endpoints: [https://a:2379], cert_file: server.key }`, 'DIR/server.yaml:6: fleet.etcd: give cert_file and key_file together (the client certificate and its key)'],
    [`${FLEET}  etcd: { endpoints: [https://a:2379], ca_file: ca.pem }`, 'DIR/server.yaml:6: fleet.etcd.ca_file: cannot read DIR/ca.pem: ENOENT'],
    [`${FLEET}  etcd: { endpoints: [http://a:2379], ca_file: server.key }`, 'DIR/server.yaml:6: fleet.etcd: ca_file, cert_file and key_file are for TLS: write the endpoints as https://host:port'],
    [`${FLEET}  etcd: { endpoints: [http://a:2379] }\n  ttl: 1`, 'DIR/server.yaml:7: fleet.ttl: 1 is out of range (2-60)'],
    [`${FLEET}  etcd: { endpoints: [http://a:2379] }\n  colour: red`, "DIR/server.yaml:7: unknown key 'fleet.colour' (expected one of: name, endpoint, etcd, prefix, ttl)"],
    [`${FLEET}  etcd: { endpoints: [http://a:2379] }\n${LAPTOP}`, "DIR/server.yaml:8: clients: with 'fleet' the clients live in etcd: remove this list and add them with 'tvpn add-client NAME -c DIR/server.yaml'"],
  ])('rejects %j', (body, expected) => {
    expect(serverError(`${HEAD}${body}\n`)).toBe(expected);
  });

  it("loads the docker-compose example's servers", () => {
    for (const n of [1, 2]) {
      writeKeyFile(join(dir, `server${n}.key`), priv(n + 10));
      const c = parseServerConfig(example(`fleet/server${n}.yaml`), F);
      expect([c.interface.address.text, c.fleet?.name, c.fleet?.endpoint, c.fleet?.etcd.endpoints.length]).toEqual([`10.8.0.${n}/24`, `server${n}`, { host: `198.18.110.${n + 1}`, port: 51820 }, 3]);
    }
  });

  it("tvpn check says where a fleet's clients are", async () => {
    writeFileSync(F, `${HEAD}${FLEET}  etcd: { endpoints: [http://a:2379] }\n`);
    expect(await tvpn('check', '-c', F)).toEqual({ code: 0, out: `${F}: ok (server tun0 10.8.0.1/24, fleet vpn1, clients in etcd under /tvpn/, pool 10.8.0.2-10.8.0.254)\n`, err: '' });
  });

  it('refuses a dual-stack fleet server', () => {
    const text = `${HEAD.replace('10.8.0.1/24', "[10.8.0.1/24, 'fd00::1/64']")}${FLEET}  etcd: { endpoints: [http://a:2379] }\n`;
    expect(serverError(text)).toBe('DIR/server.yaml:4: fleet: a fleet leases addresses of one family: give interface.address one address (IPv4 or IPv6)');
  });

  it('refuses a TLS key file others can read', () => {
    writeFileSync(join(dir, 'me.pem'), 'PEM');
    writeFileSync(join(dir, 'me-key.pem'), 'PEM');
    chmodSync(join(dir, 'me-key.pem'), 0o644);
    expect(serverError(`${HEAD}${FLEET}  etcd: { endpoints: [https://a:2379], cert_file: me.pem, key_file: me-key.pem }\n`)).toBe(
      "DIR/server.yaml:6: fleet.etcd.key_file: DIR/me-key.pem holds a private key but is accessible by group or others (mode 0644); run 'chmod 600 DIR/me-key.pem'",
    );
  });

  it("a client config's server.fleet: the other servers to try when its own does not answer", () => {
    const fleet = `  fleet:\n    - { endpoint: '198.18.121.2:51820', public_key: ${PUB2} }\n    - { endpoint: 'vpn3.example.com:51820', public_key: ${PUB3} }\n`;
    const text = CHEAD.replace('private_key_file', `${fleet}private_key_file`);
    expect(parseClientConfig(text, join(dir, 'client.yaml')).server.fleet).toEqual([
      { endpoint: '198.18.121.2:51820', publicKey: PUB2 },
      { endpoint: 'vpn3.example.com:51820', publicKey: PUB3 },
    ]);
    expect(parseClientConfig(CHEAD, join(dir, 'client.yaml')).server.fleet).toEqual([]);
    expect(clientError(CHEAD.replace('private_key_file', `  fleet:\n    - { endpoint: '198.18.121.2:1' }\nprivate_key_file`))).toBe(
      "DIR/client.yaml:5: server.fleet[0]: missing 'public_key' (its public key)",
    );
    const many = Array.from({ length: 16 }, () => `    - { endpoint: 'a:1', public_key: ${PUB2} }\n`).join('');
    expect(clientError(CHEAD.replace('private_key_file', `  fleet:\n${many}private_key_file`))).toBe('DIR/client.yaml:5: server.fleet: at most 15 other servers (a fleet config lists 16)');
  });
});
