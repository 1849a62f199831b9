import { describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/config/server.js';
import { F, HEAD, PUB2, PUB3, serverError, useConfigDir } from './support/config.js';

useConfigDir();

describe('server config, dual stack', () => {
  const DUAL = "interface: { address: ['fd00:8::1/64', 10.8.0.1/24] }\nprivate_key_file: server.key\n";

  it('takes an address of each family (either order; IPv4 first), with a default pool per family', () => {
    const c = parseServerConfig(`${DUAL}clients:\n  - { name: a, public_key: ${PUB2}, address: ['fd00:8::2', 10.8.0.2] }\n  - { name: b, public_key: ${PUB3}, address: 10.8.0.3 }\n`, F);
    expect(c.interface).toMatchObject({ address: { text: '10.8.0.1/24' }, address6: { text: 'fd00:8::1/64' } });
    expect([c.pool, c.pool6]).toEqual([{ first: '10.8.0.4', last: '10.8.0.254' }, { first: 'fd00:8::3', last: 'fd00:8::ffff:ffff:ffff:ffff' }]);
    expect(c.clients.map((e) => [e.address, e.address6])).toEqual([['10.8.0.2', 'fd00:8::2'], ['10.8.0.3', null]]);
    expect(c.push.mtu).toBe(1420);
  });

  it('takes a pool per family, one or both given', () => {
    const both = parseServerConfig(`${DUAL}pool: [10.8.0.10-10.8.0.250, 'fd00:8::10-fd00:8::ffff']\n`, F);
    expect([both.pool, both.pool6, both.poolExplicit]).toEqual([{ first: '10.8.0.10', last: '10.8.0.250' }, { first: 'fd00:8::10', last: 'fd00:8::ffff' }, true]);
    const one = parseServerConfig(`${DUAL}pool: 'fd00:8::10-fd00:8::ffff'\n`, F);
    expect([one.pool, one.pool6]).toEqual([{ first: '10.8.0.2', last: '10.8.0.254' }, { first: 'fd00:8::10', last: 'fd00:8::ffff' }]);
  });

  it('keeps single-address configs as they were', () => {
    const c = parseServerConfig(`${HEAD}pool: [10.8.0.10-10.8.0.250]\n`, F);
    expect([c.interface.address6, c.pool, c.pool6]).toEqual([null, { first: '10.8.0.10', last: '10.8.0.250' }, null]);
  });

  it.each([
    ["interface: { address: [10.8.0.1/24, 10.9.0.1/24] }", "DIR/server.yaml:1: interface.address[1]: a second IPv4 address; give at most one IPv4 and one IPv6"],
    ["interface: { address: [] }", 'DIR/server.yaml:1: interface.address: expected one address, or two: one IPv4 and one IPv6'],
    ["interface: { address: [10.8.0.1/24, 'fd00:8::1/64', 'fd00:9::1/64'] }", 'DIR/server.yaml:1: interface.address: expected one address, or two: one IPv4 and one IPv6'],
    [`${DUAL}pool: [10.8.0.10-10.8.0.20, 10.8.0.30-10.8.0.40]`, 'DIR/server.yaml:3: pool[1]: a second IPv4 pool; give at most one IPv4 and one IPv6'],
    [`${DUAL}pool: 'fd00:9::10-fd00:9::20'`, 'DIR/server.yaml:3: pool: fd00:9::10-fd00:9::20 is not inside the VPN subnet\'s host addresses fd00:8::1-fd00:8::ffff:ffff:ffff:ffff; pick a range within them'],
    [`${HEAD}pool: [10.8.0.10-10.8.0.20, 'fd00:8::10-fd00:8::20']`, 'DIR/server.yaml:3: pool[1]: fd00:8::10-fd00:8::20 is IPv6 but the VPN subnet 10.8.0.0/24 is IPv4'],
    [`${HEAD}clients: [{ name: a, public_key: ${PUB2}, address: [10.8.0.2, 'fd00:8::2'] }]`, "DIR/server.yaml:3: clients[0].address[1]: fd00:8::2 is IPv6, but the server has no IPv6 tunnel address (interface.address)"],
    [`${DUAL}clients: [{ name: a, public_key: ${PUB2}, address: ['fd00:9::2'] }]`, 'DIR/server.yaml:3: clients[0].address[0]: fd00:9::2 is outside the VPN subnet fd00:8::/64 (hosts fd00:8::1-fd00:8::ffff:ffff:ffff:ffff); pick an address inside it'],
    [`${DUAL}clients: [{ name: a, public_key: ${PUB2}, address: 10.8.0.2, stock: true }]`, "DIR/server.yaml:3: clients[0]: a stock WireGuard client has no control channel to receive a pool address; give it a static IPv6 'address' too: address: [<IPv4>, <IPv6>]"],
    [`${DUAL}push: { mtu: 1000 }`, 'DIR/server.yaml:3: push.mtu: 1000 is too small for IPv6, which needs at least 1280'],
  ])('rejects %j in one line', (text, expected) => {
    expect(serverError(text.startsWith('interface: { address: [') && !text.includes('private_key') ? `${text}\nprivate_key_file: server.key` : text)).toBe(expected);
  });
});
