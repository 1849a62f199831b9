/** Endpoint entries: encoding, canonical form, byte layout, copying, and host:port text. */
import { describe, expect, it } from 'vitest';
import { copyEndpoint, decodeEndpoint, ENDPOINT_SIZE, encodeEndpoint, endpointEquals, endpointFamily } from '../../src/io/endpoint.js';
import { formatEndpoint, parseEndpoint } from '../../src/net/endpoint.js';
import { entry } from '../helpers/endpoint.js';

describe('endpoint entries', () => {
  const roundTrip = (ip: string): string | undefined => {
    const e = entry({ ip, port: 51820 });
    return decodeEndpoint(e, 0)?.ip;
  };

  it('encode and decode IPv4 and IPv6 in canonical form', () => {
    expect(roundTrip('192.0.2.1')).toBe('192.0.2.1');
    expect(roundTrip('2001:db8::1')).toBe('2001:db8::1');
    expect(roundTrip('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(roundTrip('::')).toBe('::');
    expect(roundTrip('::1')).toBe('::1');
    expect(roundTrip('1::')).toBe('1::');
    expect(roundTrip('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(roundTrip('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2:3:4:5:6');
    expect(roundTrip('2001:db8::1:0:0:0')).toBe('2001:db8:0:0:1::');
    expect(roundTrip('64:ff9b::192.0.2.1')).toBe('64:ff9b::c000:201');
  });

  it('store IPv4-mapped IPv6 addresses as IPv4, so both spellings compare equal', () => {
    const a = entry({ ip: '::ffff:192.0.2.1', port: 1 });
    const b = entry({ ip: '192.0.2.1', port: 1 });
    expect(endpointFamily(a, 0)).toBe(4);
    expect(endpointEquals(a, 0, b, 0)).toBe(true);
    expect(endpointEquals(a, 0, entry({ ip: '192.0.2.1', port: 2 }), 0)).toBe(false);
  });

  it('have the documented byte layout', () => {
    expect([...entry({ ip: '10.1.2.3', port: 0x1234 })]).toEqual([4, 0, 0x12, 0x34, 10, 1, 2, 3, ...new Array<number>(12).fill(0)]);
    expect([...entry({ ip: 'fe80::1', port: 1 })]).toEqual([6, 0, 0, 1, 0xfe, 0x80, ...new Array<number>(13).fill(0), 1]);
  });

  it('copy, index and reject bad input', () => {
    const arr = new Uint8Array(3 * ENDPOINT_SIZE);
    encodeEndpoint({ ip: '2001:db8::2', port: 443 }, arr, 2);
    copyEndpoint(arr, 2, arr, 0);
    expect(decodeEndpoint(arr, 0)).toEqual({ ip: '2001:db8::2', port: 443 });
    expect(decodeEndpoint(arr, 1)).toBeNull();
    expect(() => encodeEndpoint({ ip: 'example.com', port: 1 }, arr, 0)).toThrow(/not an IP address/);
    expect(() => encodeEndpoint({ ip: '1.2.3', port: 1 }, arr, 0)).toThrow(/not an IP address/);
    expect(() => encodeEndpoint({ ip: 'fe80::1%eth0', port: 1 }, arr, 0)).toThrow(/scoped/);
    expect(() => encodeEndpoint({ ip: '1.2.3.4', port: 65536 }, arr, 0)).toThrow(/port/);
    expect(() => encodeEndpoint({ ip: '1.2.3.4', port: 1 }, arr, 3)).toThrow(RangeError);
  });

  it('parse and format host:port text', () => {
    expect(parseEndpoint('192.0.2.1:51820')).toEqual({ ip: '192.0.2.1', port: 51820 });
    expect(parseEndpoint('[2001:db8::1]:51820')).toEqual({ ip: '2001:db8::1', port: 51820 });
    expect(formatEndpoint({ ip: '2001:db8::1', port: 5 })).toBe('[2001:db8::1]:5');
    expect(() => parseEndpoint('2001:db8::1:51820')).toThrow(/not an IP:port/);
    expect(() => parseEndpoint('host:1')).toThrow(/not an IP:port/);
  });
});
