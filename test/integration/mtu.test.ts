/**
 * Jumbo tunnels (issue 12, part 3): a server with `interface.mtu: 9000` pushes that MTU and
 * 500 routes to a default client, over a 9100-byte underlay (the outer datagrams fit) and
 * over a 1500-byte one (the kernel must fragment them, the push's frames and GSO runs included).
 *
 *   server ns (a) ── veth 198.18.61.0/24, MTU 9100 ── client ns (b)
 *   server ns (a) ── veth 198.18.62.0/24, MTU 1500 ── client ns (b)
 *
 * Needs the compiled CLI (dist/), root, ping and tcpdump.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { cleanupStale, createNetnsPair, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { startProc, startTvpn, stopProc, tcpTransfer, until, type Proc } from '../helpers/tvpn.js';

const TRANSFER = 20 * 1024 * 1024;
const ROUTES4 = Array.from({ length: 250 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
const ROUTES6 = Array.from({ length: 250 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/48`);

/** `ping -M do`: the inner packet may not be fragmented, so it must cross the tun whole. */
const bigPings = (ns: Netns, to: string): Promise<boolean> =>
  ns.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-s', '8000', '-M', 'do', to]).then(
    () => true,
    () => false,
  );

/** Routes on dev that came from the push (the tun's own subnet and IPv6 link routes aside). */
async function pushedRoutes(ns: Netns, dev: string): Promise<number> {
  let n = 0;
  for (const family of ['-4', '-6']) {
    const { stdout } = await ns.ip([family, 'route', 'show', 'dev', dev]);
    n += stdout.split('\n').filter((l) => /^(10\.1\d\d\.|2001:db8:)/.test(l)).length;
  }
  return n;
}

describeRoot('a 9000-byte tunnel MTU pushed with 500 routes', () => {
  beforeAll(async () => {
    await cleanupStale('tvmtu');
  });

  for (const underlay of [9100, 1500]) {
    const index = underlay === 9100 ? 61 : 62;
    const tunnel = `10.${index}.0`;

    describe(`over a ${underlay}-byte underlay`, () => {
      let pair: NetnsPair;
      let dir: string;
      const procs: Proc[] = [];
      let client: Proc;
      const [sk, ck] = [generatePrivateKey(), generatePrivateKey()];

      beforeAll(async () => {
        dir = mkdtempSync(join(tmpdir(), 'tvpn-mtu-'));
        writeKeyFile(join(dir, 's.key'), sk);
        writeKeyFile(join(dir, 'c.key'), ck);
        const routes = [...ROUTES4, ...ROUTES6].map((r) => `'${r}'`).join(', ');
        writeFileSync(
          join(dir, 'server.yaml'),
          `interface: { name: tun0, address: ${tunnel}.1/24, mtu: 9000 }\nlisten: 198.18.${index}.1:51820\nprivate_key_file: s.key\n` +
            `pool: ${tunnel}.10-${tunnel}.20\nstate_dir: ${join(dir, 'state')}\npush: { routes: [${routes}], keepalive: 5 }\n` +
            `clients:\n  - { name: one, public_key: ${encodeKey(publicKeyOf(ck))} }\n`,
        );
        writeFileSync(
          join(dir, 'client.yaml'),
          `interface: { name: tun0 }\nserver: { endpoint: 198.18.${index}.1:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\n` +
            `private_key_file: c.key\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
        );
        pair = await createNetnsPair({ prefix: 'tvmtu', index, ipv6: false });
        for (const e of [pair.a, pair.b]) await e.ip(['link', 'set', e.ifname, 'mtu', String(underlay)]);
        const server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
        procs.push(server);
        await until('server up', () => server.log().includes('listening on'));
        client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
        procs.push(client);
      }, 30_000);

      afterAll(async () => {
        for (const p of procs) await stopProc(p);
        await pair?.cleanup();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      test('the push with 500 IPv4 and IPv6 routes is applied: tun0 gets MTU 9000 and every route', async () => {
        await until('config applied', () => client.log().includes('config 1 applied'), 40_000);
        expect(client.log()).toMatch(/config 1 applied: 10\.\d+\.0\.10\/24, mtu 9000, 500 route\(s\)/);
        const { stdout } = await pair.b.ip(['-j', 'link', 'show', 'tun0']);
        expect((JSON.parse(stdout) as { mtu: number }[])[0]!.mtu).toBe(9000);
        expect(await pushedRoutes(pair.b, 'tun0')).toBe(500);
      }, 45_000);

      test('8000-byte pings cross the tunnel whole, both ways', async () => {
        expect(await bigPings(pair.b, `${tunnel}.1`)).toBe(true);
        expect(await bigPings(pair.a, `${tunnel}.10`)).toBe(true);
      }, 30_000);

      if (underlay > 9000) {
        test('outer datagrams that fit this hop carry no DF: a smaller link further on may fragment them', async () => {
          const capture = startProc(pair.a, 'tcpdump', ['-i', pair.a.ifname, '-n', '-v', '-c', '4', 'udp port 51820 and greater 8000']);
          procs.push(capture);
          await until('tcpdump listening', () => capture.log().includes('listening on'));
          expect(await bigPings(pair.b, `${tunnel}.1`)).toBe(true);
          await until('4 jumbo datagrams captured', () => capture.log().includes('4 packets captured'), 5000);
          expect(capture.log()).toMatch(/proto UDP/);
          expect(capture.log()).not.toMatch(/\[DF\]/);
        }, 30_000);
      }

      test('TCP with 9000-byte packets: runs of datagrams beyond the underlay MTU go out fragmented, intact', async () => {
        const { sent, received } = await tcpTransfer({ to: pair.a, host: `${tunnel}.1`, port: 5201, from: pair.b, bytes: TRANSFER });
        expect(received).toEqual(sent);
        expect(received.bytes).toBe(TRANSFER);
      }, 60_000);
    });
  }
});
