import { describe, expect, it } from 'vitest';
import { RateLimiter, sourceKey } from '../../src/wireguard/ratelimiter.js';

function ip4(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

/** Full (uncompressed) IPv6 form only: 8 groups of hex. */
function ip6(s: string): Uint8Array {
  const groups = s.split(':');
  expect(groups).toHaveLength(8);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

const COST_MS = 1000 / 20;

describe('RateLimiter', () => {
  it('follows the wireguard-go test sequence for every source, with a frozen clock between steps', () => {
    const ips = [
      ip4('127.0.0.1'),
      ip4('192.168.1.1'),
      ip4('172.167.2.3'),
      ip4('97.231.252.215'),
      ip4('248.97.91.167'),
      ip4('188.208.233.47'),
      ip4('104.2.183.179'),
      ip4('72.129.46.120'),
      ip6('2001:0db8:0a0b:12f0:0000:0000:0000:0001'),
      ip6('f5c2:818f:c052:655a:9860:b136:6894:25f0'),
      ip6('b2d7:15ab:48a7:b07c:a541:f144:a9fe:54fc'),
      ip6('a47b:786e:1671:a22b:d6f9:4ab0:abc7:c918'),
      ip6('ea1e:d155:7f7a:98fb:2bf5:9483:80f6:5445'),
      ip6('3f0e:54a2:f5b4:cd19:a21d:58e1:3746:84c4'),
    ];
    const steps: Array<{ waitMs: number; allowed: boolean; text: string }> = [
      ...Array.from({ length: 5 }, () => ({ waitMs: 0, allowed: true, text: 'initial burst' })),
      { waitMs: 0, allowed: false, text: 'after burst' },
      { waitMs: COST_MS, allowed: true, text: 'filling tokens for single packet' },
      { waitMs: 0, allowed: false, text: 'not having refilled enough' },
      { waitMs: 2 * COST_MS, allowed: true, text: 'filling tokens for two packet burst' },
      { waitMs: 0, allowed: true, text: 'second packet in 2 packet burst' },
      { waitMs: 0, allowed: false, text: 'packet following 2 packet burst' },
    ];
    const rl = new RateLimiter();
    let now = 1_000_000;
    steps.forEach((step, i) => {
      now += step.waitMs;
      for (const ip of ips) {
        expect({ i, text: step.text, ip: [...ip], allowed: rl.allow(sourceKey(ip), now) }).toEqual({
          i,
          text: step.text,
          ip: [...ip],
          allowed: step.allowed,
        });
      }
    });
    expect(rl.size).toBe(ips.length);
  });

  it('refills at packetsPerSecond and caps the bucket at the burst', () => {
    const rl = new RateLimiter();
    const ip = ip4('10.0.0.1');
    let now = 0;
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(ip), now)).toBe(true);
    expect(rl.allow(sourceKey(ip), now)).toBe(false);
    // Sustained 20/s: one packet every 50 ms passes, a second one in between does not.
    for (let i = 0; i < 40; i++) {
      now += COST_MS;
      expect(rl.allow(sourceKey(ip), now)).toBe(true);
      expect(rl.allow(sourceKey(ip), now)).toBe(false);
    }
    // Part of a token's worth of time is not enough, but the partial credit is kept.
    now += 30;
    expect(rl.allow(sourceKey(ip), now)).toBe(false);
    now += 19.5;
    expect(rl.allow(sourceKey(ip), now)).toBe(false);
    now += 0.5;
    expect(rl.allow(sourceKey(ip), now)).toBe(true);
    // A long pause (but under the GC time) refills only up to the burst.
    now += 900;
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(ip), now)).toBe(true);
    expect(rl.allow(sourceKey(ip), now)).toBe(false);
  });

  it('honours custom rate and burst', () => {
    const rl = new RateLimiter({ packetsPerSecond: 2, burst: 2 });
    const ip = ip4('10.0.0.1');
    expect([rl.allow(sourceKey(ip), 0), rl.allow(sourceKey(ip), 0), rl.allow(sourceKey(ip), 0)]).toEqual([true, true, false]);
    expect(rl.allow(sourceKey(ip), 499)).toBe(false);
    expect(rl.allow(sourceKey(ip), 500)).toBe(true);
  });

  it('keeps separate buckets per IPv4 address', () => {
    const rl = new RateLimiter();
    const a = ip4('10.0.0.1');
    const b = ip4('10.0.0.2');
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(a), 0)).toBe(true);
    expect(rl.allow(sourceKey(a), 0)).toBe(false);
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(b), 0)).toBe(true);
    expect(rl.allow(sourceKey(b), 0)).toBe(false);
    expect(rl.size).toBe(2);
  });

  it('groups IPv6 sources by /64', () => {
    const rl = new RateLimiter();
    const hosts = [
      ip6('2001:0db8:0000:0001:0000:0000:0000:0001'),
      ip6('2001:0db8:0000:0001:ffff:ffff:ffff:ffff'),
      ip6('2001:0db8:0000:0001:1234:5678:9abc:def0'),
    ];
    // Five packets spread over three addresses of one /64 exhaust the shared bucket.
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(hosts[i % 3]!), 0)).toBe(true);
    for (const h of hosts) expect(rl.allow(sourceKey(h), 0)).toBe(false);
    expect(rl.size).toBe(1);
    // The neighbouring /64 has its own bucket.
    expect(rl.allow(sourceKey(ip6('2001:0db8:0000:0002:0000:0000:0000:0001')), 0)).toBe(true);
    expect(rl.size).toBe(2);
  });

  it('keys IPv4-mapped IPv6 sources as their IPv4 address, not as one shared /64', () => {
    const rl = new RateLimiter();
    const mappedA = ip6('0000:0000:0000:0000:0000:ffff:0a00:0001'); // ::ffff:10.0.0.1
    const mappedB = ip6('0000:0000:0000:0000:0000:ffff:0a00:0002');
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(mappedA), 0)).toBe(true);
    expect(rl.allow(sourceKey(mappedA), 0)).toBe(false);
    expect(rl.allow(sourceKey(ip4('10.0.0.1')), 0)).toBe(false); // same source
    expect(rl.allow(sourceKey(mappedB), 0)).toBe(true);
    expect(rl.size).toBe(2);
  });

  it('gc removes entries idle for more than a second, and a collected source starts afresh', () => {
    const rl = new RateLimiter();
    const a = ip4('10.0.0.1');
    const b = ip4('10.0.0.2');
    for (let i = 0; i < 6; i++) rl.allow(sourceKey(a), 0);
    rl.allow(sourceKey(b), 500);
    rl.gc(1000); // a idle exactly 1 s: kept
    expect(rl.size).toBe(2);
    rl.gc(1000.5);
    expect(rl.size).toBe(1);
    rl.gc(1501);
    expect(rl.size).toBe(0);
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(a), 1501)).toBe(true);
    expect(rl.allow(sourceKey(a), 1501)).toBe(false);
  });

  it('collects idle entries lazily from allow() without an explicit gc()', () => {
    const rl = new RateLimiter();
    for (let i = 0; i < 100; i++) rl.allow(sourceKey(ip4(`10.0.${i}.1`)), 0);
    expect(rl.size).toBe(100);
    rl.allow(sourceKey(ip4('10.1.0.1')), 5000);
    expect(rl.size).toBe(1);
  });

  it('refuses new sources when the table is full, while known sources keep their buckets', () => {
    const rl = new RateLimiter({ maxEntries: 3 });
    for (let i = 1; i <= 3; i++) expect(rl.allow(sourceKey(ip4(`10.0.0.${i}`)), 0)).toBe(true);
    expect(rl.allow(sourceKey(ip4('10.0.0.4')), 0)).toBe(false);
    expect(rl.size).toBe(3);
    expect(rl.allow(sourceKey(ip4('10.0.0.1')), 0)).toBe(true);
    // Once the old entries go idle they are collected and newcomers get in.
    expect(rl.allow(sourceKey(ip4('10.0.0.4')), 1001)).toBe(true);
    expect(rl.size).toBe(1);
  });

  it('with allowWhenFull, a source the full table cannot track passes (and is not tracked), known sources keep their limits', () => {
    const rl = new RateLimiter({ maxEntries: 2, burst: 1, allowWhenFull: true });
    expect(rl.allow(sourceKey(ip4('10.0.0.1')), 0)).toBe(true);
    expect(rl.allow(sourceKey(ip4('10.0.0.2')), 0)).toBe(true);
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(ip4('10.0.0.3')), 0)).toBe(true);
    expect(rl.size).toBe(2);
    expect(rl.allow(sourceKey(ip4('10.0.0.1')), 0)).toBe(false); // its bucket is empty
  });

  it('is bounded at 65,536 entries by default', () => {
    const rl = new RateLimiter();
    const ip = new Uint8Array(4);
    const v = new DataView(ip.buffer);
    let allowed = 0;
    for (let i = 0; i < 1 << 16; i++) {
      v.setUint32(0, 0x0a000000 + i);
      if (rl.allow(sourceKey(ip.slice()), 0)) allowed++;
    }
    expect(allowed).toBe(1 << 16);
    v.setUint32(0, 0x0b000000);
    expect(rl.allow(sourceKey(ip.slice()), 0)).toBe(false);
    expect(rl.size).toBe(1 << 16);
  });

  it('a repeated key is the same source', () => {
    const rl = new RateLimiter();
    const ip = ip4('10.0.0.1');
    for (let i = 0; i < 5; i++) expect(rl.allow(sourceKey(ip), 0)).toBe(true);
    expect(rl.allow(sourceKey(ip), 0)).toBe(false);
    expect(rl.allow(sourceKey(ip4('10.0.0.1')), 0)).toBe(false); // the same bucket by value, from another array
    expect(rl.size).toBe(1);
  });

  it('does not drain a bucket when the clock steps back', () => {
    const rl = new RateLimiter();
    const ip = ip4('10.0.0.1');
    for (let i = 0; i < 4; i++) rl.allow(sourceKey(ip), 10_000);
    expect(rl.allow(sourceKey(ip), 9_000)).toBe(true);
    expect(rl.allow(sourceKey(ip), 9_000)).toBe(false);
  });

  it('rejects addresses that are neither 4 nor 16 bytes', () => {
    expect(() => sourceKey(new Uint8Array(5))).toThrow(/4 or 16 bytes/);
  });
});
