import { describe, expect, it } from 'vitest';
import { hasHostBits, hostPrefix, networkOf, parseCidr, parseInterfaceAddress, parseRoute, prefixContains, splitCidr } from '../../src/net/cidr.js';
import { endpointAddress, endpointOf, formatEndpoint, parseEndpoint, parseHostPort } from '../../src/net/endpoint.js';
import { formatIp, ipFamily, parseIp, unmapIp } from '../../src/net/ip.js';
import { formatRange, ipOf, ipText, parseRange, prefixRange } from '../../src/net/range.js';

const canonical = (s: string): string => formatIp(parseIp(s));

describe('ip', () => {
  it.each([
    ['10.8.0.1', '10.8.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['FD00:0:0::1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal zero runs
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
  ])('%s prints as %s', (text, out) => {
    expect(canonical(text)).toBe(out);
  });

  it('treats IPv4-mapped IPv6 as IPv6 written in mixed notation, however it was written', () => {
    for (const text of ['::ffff:1.2.3.4', '::FFFF:102:304', '0:0:0:0:0:ffff:1.2.3.4']) {
      const ip = parseIp(text);
      expect(ip.length).toBe(16);
      expect(formatIp(ip)).toBe('::ffff:1.2.3.4');
      expect(formatIp(unmapIp(ip))).toBe('1.2.3.4');
    }
    expect(ipFamily('::ffff:1.2.3.4')).toBe(6);
    // Not mapped: IPv4-compatible (deprecated) and NAT64 addresses stay as they are.
    expect(canonical('::1.2.3.4')).toBe('::102:304');
    expect(canonical('64:ff9b::1.2.3.4')).toBe('64:ff9b::102:304');
    expect(unmapIp(parseIp('::102:304')).length).toBe(16);
  });

  it.each([
    ['10.8.0', "'10.8.0' is not an IPv4 or IPv6 address"],
    ['10.8.0.01', "'10.8.0.01' is not an IPv4 or IPv6 address"],
    ['256.0.0.1', "'256.0.0.1' is not an IPv4 or IPv6 address"],
    ['::ffff:1.2.3', "'::ffff:1.2.3' is not an IPv4 or IPv6 address"],
    ['::ffff:1.2.3.4:5', "'::ffff:1.2.3.4:5' is not an IPv4 or IPv6 address"],
    ['fe80::1%eth0', "'fe80::1%eth0' is not an IPv4 or IPv6 address"],
    ['example.com', "'example.com' is not an IPv4 or IPv6 address"],
    ['', "'' is not an IPv4 or IPv6 address"],
    ['10.8.0.1/32', "'10.8.0.1/32' is a prefix, not an address (drop the '/32')"],
  ])('rejects %j', (text, message) => {
    expect(() => parseIp(text)).toThrow(new Error(message));
    if (!text.includes('/')) expect(ipFamily(text)).toBe(0);
  });

  it('refuses to print a byte string that is no address', () => {
    expect(() => formatIp(new Uint8Array(5))).toThrow(/4 or 16 bytes, not 5/);
  });
});

describe('cidr', () => {
  it('keeps host bits in splitCidr and zeroes them in parseCidr', () => {
    expect(splitCidr('10.8.0.5/24')).toEqual({ ip: parseIp('10.8.0.5'), bits: 24 });
    expect(parseCidr('10.8.0.5/24')).toEqual({ ip: parseIp('10.8.0.0'), bits: 24 });
    expect(hasHostBits(splitCidr('10.8.0.5/24'))).toBe(true);
    expect(hasHostBits(splitCidr('10.8.0.0/24'))).toBe(false);
    expect(networkOf('::ffff:10.8.0.5/120')).toBe('::ffff:10.8.0.0/120');
    expect([hostPrefix('10.8.0.2'), hostPrefix('FD00::2'), hostPrefix('::ffff:10.8.0.2')]).toEqual(['10.8.0.2/32', 'fd00::2/128', '::ffff:10.8.0.2/128']);
  });

  it('tests membership within one family', () => {
    const net = parseCidr('10.8.0.0/24');
    expect(prefixContains(net, parseIp('10.8.0.200'))).toBe(true);
    expect(prefixContains(net, parseIp('10.8.1.1'))).toBe(false);
    expect(prefixContains(net, parseIp('::ffff:10.8.0.1'))).toBe(false);
    expect(prefixContains(parseCidr('::ffff:0:0/96'), parseIp('::ffff:10.8.0.1'))).toBe(true);
  });

  it('parses interface addresses and routes into canonical text', () => {
    expect(parseInterfaceAddress('FD00:0::1/64')).toEqual({ ip: 'fd00::1', prefix: 64, text: 'fd00::1/64' });
    expect(parseInterfaceAddress('::ffff:10.8.0.1/120').text).toBe('::ffff:10.8.0.1/120');
    expect(parseRoute('::FFFF:a08:0/120')).toBe('::ffff:10.8.0.0/120');
    expect(parseRoute('10.1.2.3')).toBe('10.1.2.3/32');
    expect(() => parseRoute('10.8.0.5/24')).toThrow("'10.8.0.5/24' has host bits set; write the network, '10.8.0.0/24'");
    expect(() => parseInterfaceAddress('10.8.0.1')).toThrow("'10.8.0.1' needs a prefix length, e.g. '10.8.0.1/24'");
  });
});

describe('range', () => {
  it('round-trips addresses through numbers', () => {
    for (const t of ['10.8.0.1', 'fd00::1', '::ffff:1.2.3.4', '::']) expect(ipText(ipOf(t))).toBe(t);
    expect(formatRange(prefixRange(ipOf('::ffff:10.0.0.7'), 126))).toBe('::ffff:10.0.0.4-::ffff:10.0.0.7');
  });

  it('parses pools first-last', () => {
    expect(formatRange(parseRange('10.8.0.10 - 10.8.0.250'))).toBe('10.8.0.10-10.8.0.250');
    expect(() => parseRange('10.8.0.10-::ffff:10.8.0.20')).toThrow("'10.8.0.10-::ffff:10.8.0.20' mixes IPv4 and IPv6");
    expect(() => parseRange('10.8.0.10')).toThrow(/is not a range; write it as first-last/);
  });
});

describe('endpoint', () => {
  it('formats and parses host:port', () => {
    expect(formatEndpoint({ ip: 'fd00::1', port: 5 })).toBe('[fd00::1]:5');
    expect(formatEndpoint({ ip: '10.0.0.1', port: 5 })).toBe('10.0.0.1:5');
    expect(parseHostPort('[FD00::1]:443', { ipOnly: true })).toEqual({ host: 'fd00::1', port: 443 });
    expect(parseHostPort('vpn.example.com:443', { ipOnly: false })).toEqual({ host: 'vpn.example.com', port: 443 });
    expect(() => parseHostPort('vpn.example.com:443', { ipOnly: true })).toThrow(
      "'vpn.example.com' in 'vpn.example.com:443' is not an IP address (e.g. 0.0.0.0:51820 or [::]:51820)",
    );
  });

  it('names an IPv4 peer reached through a mapped address as IPv4', () => {
    expect(parseEndpoint('[::ffff:192.0.2.1]:51820')).toEqual({ ip: '192.0.2.1', port: 51820 });
    expect(endpointOf('::FFFF:c000:201', 1)).toEqual({ ip: '192.0.2.1', port: 1 });
    expect(endpointAddress({ ip: '::ffff:192.0.2.1', port: 1 })).toEqual(Uint8Array.of(192, 0, 2, 1));
    expect(endpointOf('2001:DB8::1', 1)).toEqual({ ip: '2001:db8::1', port: 1 });
  });

  it('rejects bad endpoints with the reason', () => {
    expect(() => parseEndpoint('host:1')).toThrow(
      new TypeError("not an IP:port endpoint: 'host' in 'host:1' is not an IP address (e.g. 0.0.0.0:51820 or [::]:51820)"),
    );
    expect(() => parseEndpoint('2001:db8::1:51820')).toThrow(/not an IP:port endpoint: .*put an IPv6 address in brackets/);
    expect(() => parseEndpoint('10.0.0.1:0')).toThrow(/port 0 in '10.0.0.1:0' is out of range \(1-65535\)/);
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', [10, 0, 0, 0], 8],
    ['10.1.2.3/8', [10, 0, 0, 0], 8], // host bits masked off
    ['192.168.77.200/20', [192, 168, 64, 0], 20],
    ['255.255.255.255/0', [0, 0, 0, 0], 0],
    ['1.2.3.4/32', [1, 2, 3, 4], 32],
    ['1.2.3.4', [1, 2, 3, 4], 32], // bare address: host prefix
  ])('parses IPv4 %s', (s, bytes, bits) => {
    expect(parseCidr(s)).toEqual({ ip: Uint8Array.from(bytes), bits });
  });

  const v6 = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
  it.each([
    ['::/0', '00000000000000000000000000000000', 0],
    ['::1/128', '00000000000000000000000000000001', 128],
    ['::1', '00000000000000000000000000000001', 128],
    ['fd00::/64', 'fd000000000000000000000000000000', 64],
    ['FD00:AB::1/64', 'fd0000ab000000000000000000000000', 64],
    ['2001:db8::ff/127', '20010db80000000000000000000000fe', 127],
    ['1:2:3:4:5:6:7:8/128', '00010002000300040005000600070008', 128],
    ['1:2:3:4:5:6:7::/128', '00010002000300040005000600070000', 128],
    ['::2:3:4:5:6:7:8/128', '00000002000300040005000600070008', 128],
    ['::ffff:10.1.2.3/128', '00000000000000000000ffff0a010203', 128],
    ['64:ff9b::192.0.2.33/96', '0064ff9b000000000000000000000000', 96],
    ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/33', '20010db8800000000000000000000000', 33],
  ])('parses IPv6 %s', (s, hex, bits) => {
    expect(parseCidr(s)).toEqual({ ip: v6(hex), bits });
  });

  it.each([
    ['10.0.0.0/33', "bad CIDR '10.0.0.0/33': prefix length must be 0-32"],
    ['fd00::/129', "bad CIDR 'fd00::/129': prefix length must be 0-128"],
    ['10.0.0.0/', "bad CIDR '10.0.0.0/': prefix length must be 0-32"],
    ['10.0.0.0/-1', "bad CIDR '10.0.0.0/-1': prefix length must be 0-32"],
    ['10.0.0.0/8/8', "bad CIDR '10.0.0.0/8/8': prefix length must be 0-32"],
    ['10.0.0.0/ 8', "bad CIDR '10.0.0.0/ 8': prefix length must be 0-32"],
    ['10.0.0.0/0x8', "bad CIDR '10.0.0.0/0x8': prefix length must be 0-32"],
    ['', "bad CIDR '': '' is not an IPv4 or IPv6 address"],
    ['/8', "bad CIDR '/8': '' is not an IPv4 or IPv6 address"],
    ['10.0.0/8', "bad CIDR '10.0.0/8': '10.0.0' is not an IPv4 or IPv6 address"],
    ['10.0.0.256/8', "bad CIDR '10.0.0.256/8': '10.0.0.256' is not an IPv4 or IPv6 address"],
    ['10.0.0.01/32', "bad CIDR '10.0.0.01/32': '10.0.0.01' is not an IPv4 or IPv6 address"],
    ['10.0.0.-1/32', "bad CIDR '10.0.0.-1/32': '10.0.0.-1' is not an IPv4 or IPv6 address"],
    [' 10.0.0.1/32', "bad CIDR ' 10.0.0.1/32': ' 10.0.0.1' is not an IPv4 or IPv6 address"],
    ['example.com/32', "bad CIDR 'example.com/32': 'example.com' is not an IPv4 or IPv6 address"],
    ['1::2::3/64', "bad CIDR '1::2::3/64': '1::2::3' is not an IPv4 or IPv6 address"],
    [':::/0', "bad CIDR ':::/0': ':::' is not an IPv4 or IPv6 address"],
    [':1::/16', "bad CIDR ':1::/16': ':1::' is not an IPv4 or IPv6 address"],
    ['1:2:3:4:5:6:7/128', "bad CIDR '1:2:3:4:5:6:7/128': '1:2:3:4:5:6:7' is not an IPv4 or IPv6 address"],
    ['1:2:3:4:5:6:7:8:9/128', "bad CIDR '1:2:3:4:5:6:7:8:9/128': '1:2:3:4:5:6:7:8:9' is not an IPv4 or IPv6 address"],
    ['1:2:3:4:5:6:7:8::/128', "bad CIDR '1:2:3:4:5:6:7:8::/128': '1:2:3:4:5:6:7:8::' is not an IPv4 or IPv6 address"],
    ['fd00::12345/64', "bad CIDR 'fd00::12345/64': 'fd00::12345' is not an IPv4 or IPv6 address"],
    ['fd00::g/64', "bad CIDR 'fd00::g/64': 'fd00::g' is not an IPv4 or IPv6 address"],
    ['1.2.3.4::/64', "bad CIDR '1.2.3.4::/64': '1.2.3.4::' is not an IPv4 or IPv6 address"],
    ['::1.2.3/96', "bad CIDR '::1.2.3/96': '::1.2.3' is not an IPv4 or IPv6 address"],
    ['fe80::1%eth0/64', "bad CIDR 'fe80::1%eth0/64': 'fe80::1%eth0' is not an IPv4 or IPv6 address"],
  ])('rejects %j', (s, message) => {
    expect(() => parseCidr(s)).toThrow(new Error(message));
  });
});
