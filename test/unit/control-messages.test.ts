import { describe, expect, it } from 'vitest';
import { MAX_PUSH_DNS, MAX_PUSH_ROUTES } from '../../src/control/limits.js';
import { decodeMessage, encodeMessage, toReason } from '../../src/control/messages.js';
import { prng } from '../helpers/prng.js';
import { bytesFrom, snapshot, text } from './support/control.js';

describe('control messages', () => {
  const config = snapshot(3);
  const decodeObj = (o: unknown): ReturnType<typeof decodeMessage> => decodeMessage(text(JSON.stringify(o)));
  const rejects = (o: unknown, why: RegExp): void => {
    const r = decodeObj(o);
    expect(r).toHaveProperty('error');
    expect('error' in r ? r.error : '').toMatch(why);
  };

  it('round-trip', () => {
    const messages = [
      config,
      { type: 'hello', version: 1, accept: { routes: true, dns: false, redirectGateway: true }, name: 'laptop-1' },
      { type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: false } },
      { type: 'applied', serial: 7, ok: true },
      { type: 'applied', serial: 7, ok: false, reason: 'ip route: permission denied' },
      { type: 'refused', reason: 'address pool exhausted' },
      { type: 'bye' },
      { type: 'bye', reason: 'shutting down' },
    ] as const;
    for (const m of messages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('validates config addresses, routes and DNS', () => {
    rejects({ ...config, address: '10.8.0.2' }, /address.*prefix/);
    rejects({ ...config, address: '10.8.0.256/24' }, /address/);
    rejects({ ...config, gateway: '10.9.0.1' }, /gateway.*not inside/);
    rejects({ ...config, gateway: '10.8.0.2' }, /gateway: equals/);
    rejects({ ...config, gateway: 'fd00::1' }, /gateway/);
    rejects({ ...config, gateway: '10.8.0.1/32' }, /gateway.*without prefix/);
    rejects({ ...config, routes: ['10.0.0.0/33'] }, /routes\[0\]/);
    rejects({ ...config, routes: ['192.168.0.0/16', '300.1.1.0/24'] }, /routes\[1\]/);
    rejects({ ...config, routes: ['10.0.0.1/8'] }, /routes\[0\].*host bits/);
    rejects({ ...config, routes: ['10.0.0.0/8; reboot'] }, /routes\[0\]/);
    rejects({ ...config, dns: ['1.1.1.1/32'] }, /dns\[0\]/);
    rejects({ ...config, dns: ['dns.google'] }, /dns\[0\]/);
    expect(decodeObj({ ...config, address: 'fd00::2/64', gateway: 'fd00::1', routes: ['::/0'] })).not.toHaveProperty('error');
  });

  it('carries a dual-stack client its IPv6 address and gateway next to the IPv4 ones', () => {
    const dual = { ...config, address6: 'fd00:8::2/64', gateway6: 'fd00:8::1', routes: ['10.0.0.0/8', '2001:db8::/32'] };
    expect(decodeMessage(encodeMessage(dual))).toEqual(dual);
    rejects({ ...dual, gateway6: undefined }, /gateway6: must be a string/);
    rejects({ ...config, gateway6: 'fd00:8::1' }, /address6: must be a string/);
    rejects({ ...dual, address6: 'fd00:8::2' }, /address6.*prefix/);
    rejects({ ...dual, address6: '10.9.0.2/24', gateway6: '10.9.0.1' }, /address6: must be IPv6/);
    rejects({ ...dual, address: 'fd00:9::2/64', gateway: 'fd00:9::1' }, /address6: must be IPv6, next to an IPv4/);
    rejects({ ...dual, gateway6: 'fd00:9::1' }, /gateway6 .*not inside/);
    rejects({ ...dual, gateway6: 'fd00:8::2' }, /gateway6: equals the address6/);
    rejects({ ...dual, routes: [], mtu: 1000 }, /mtu.*1280/);
  });

  it("carries a fleet's servers (version 3), each a host:port and a WireGuard key", () => {
    const key = 'zo060cy2M+x7cMF4FKXHbs0CloUFDTRHRboFhw5YfVk=';
    const fleet = { ...config, servers: [{ endpoint: '198.18.121.1:51820', publicKey: key }, { endpoint: 'vpn2.example.com:51820', publicKey: key }] };
    expect(decodeMessage(encodeMessage(fleet))).toEqual(fleet);
    rejects({ ...config, servers: [] }, /servers: must be a list of 1\.\.16 servers/);
    rejects({ ...config, servers: Array.from({ length: 17 }, () => fleet.servers[0]) }, /servers: must be a list/);
    rejects({ ...config, servers: [{ endpoint: '198.18.121.1', publicKey: key }] }, /servers\[0\]\.endpoint: .*not host:port/);
    rejects({ ...config, servers: [{ endpoint: '198.18.121.1:1', publicKey: 'abc' }] }, /servers\[0\]\.publicKey: not a base64 WireGuard key/);
    rejects({ ...config, servers: [{ endpoint: '198.18.121.1:1', publicKey: key, weight: 1 }] }, /servers\[0\]\.weight: unknown field/);
  });

  it('validates ranges and types', () => {
    rejects({ ...config, mtu: 575 }, /mtu/);
    rejects({ ...config, mtu: 9001 }, /mtu/);
    rejects({ ...config, mtu: 1400.5 }, /mtu/);
    rejects({ ...config, mtu: 1000, routes: ['2001:db8::/32'] }, /mtu.*1280/);
    rejects({ ...config, mtu: '1400' }, /mtu/);
    rejects({ ...config, keepalive: 3601 }, /keepalive/);
    rejects({ ...config, keepalive: -1 }, /keepalive/);
    rejects({ ...config, serial: -1 }, /serial/);
    rejects({ ...config, redirectGateway: 'yes' }, /redirectGateway/);
    rejects({ ...config, routes: '10.0.0.0/8' }, /routes/);
    rejects({ ...config, routes: [42] }, /routes\[0\]/);
    rejects({ type: 'hello', version: 0, accept: { routes: true, dns: true, redirectGateway: true } }, /version/);
    rejects({ type: 'hello', version: 1, accept: { routes: 1, dns: true, redirectGateway: true } }, /routes/);
    rejects({ type: 'hello', version: 1, accept: [] }, /accept/);
    rejects({ type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: true }, name: 'a\u001b[2J' }, /name/);
    rejects({ type: 'applied', serial: 1, ok: false }, /reason/);
    rejects({ type: 'applied', serial: 1, ok: true, reason: 'x' }, /reason/);
    rejects({ type: 'refused', reason: '' }, /reason/);
    rejects({ type: 'refused', reason: 'evil\u001b]0;x\u0007' }, /reason/);
    rejects({ type: 'refused', reason: 'r'.repeat(257) }, /reason/);
  });

  it('makes any error text a reason the checks pass', () => {
    for (const text of ['', '\n', 'Error: RTNETLINK answers: File exists\n\u001b[1mx', 'r'.repeat(300), 'a\u2028b']) {
      const m = decodeMessage(encodeMessage({ type: 'applied', serial: 1, ok: false, reason: toReason(text) }));
      expect(m).toHaveProperty('reason');
    }
    expect(toReason(' ip: bad\nroute\t')).toBe('ip: bad route');
  });

  it('bounds list lengths', () => {
    const routes = Array.from({ length: MAX_PUSH_ROUTES + 1 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    rejects({ ...config, routes }, /routes/);
    expect(decodeObj({ ...config, routes: routes.slice(1) })).not.toHaveProperty('error');
    rejects({ ...config, dns: Array.from({ length: MAX_PUSH_DNS + 1 }, (_, i) => `10.0.0.${i}`) }, /dns/);
  });

  it('rejects unknown fields and types, non-objects and bad encodings', () => {
    rejects({ ...config, extra: 1 }, /extra: unknown field/);
    rejects({ type: 'bye', reason: 'x', more: true }, /more/);
    rejects({ type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: true, ipv6: true } }, /accept\.ipv6/);
    rejects({ type: 'reboot' }, /unknown message type/);
    rejects({}, /unknown message type/);
    rejects([config], /not a JSON object/);
    rejects(null, /not a JSON object/);
    rejects({ ...config, mtu: undefined }, /mtu: missing/);
    expect(decodeMessage(new Uint8Array([0x7b, 0xff, 0x7d]))).toEqual({ error: 'not UTF-8 JSON' });
    expect(decodeMessage(text('{"type":'))).toEqual({ error: 'not UTF-8 JSON' });
    expect(() => encodeMessage({ ...config, mtu: 100 })).toThrow(/invalid config message: mtu/);
  });

  it('never throws on random input', () => {
    const rand = prng(5);
    const valid = JSON.stringify(config);
    for (let i = 0; i < 3000; i++) {
      const chars = [...valid];
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) {
        chars[Math.floor(rand() * chars.length)] = String.fromCharCode(Math.floor(rand() * 128));
      }
      expect(() => decodeMessage(text(chars.join('')))).not.toThrow();
      expect(() => decodeMessage(bytesFrom(rand)(Math.floor(rand() * 64)))).not.toThrow();
    }
  });
});
