/**
 * TSO on tun reads, with real tun devices: two namespaces whose tuns this process joins
 * (what it reads from one it writes into the other: a tunnel without the crypto). A TCP
 * transfer from a to b must arrive intact (sha256) while a's reader is handed super-packets
 * and cuts them; with small read batches, read once per readiness event, the rest of a
 * super-packet waits in the addon and must still come out; with offload off (what an older
 * kernel gets) the same transfer reads plain packets. A lone super-packet bigger than the
 * read batch shows that the rest comes out with no more traffic to wake the reader.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createBatch, type PacketBatch } from '../../src/io/batch.js';
import { addAddress, configureLink } from '../../src/io/netconf.js';
import { Tun } from '../../src/io/tun.js';
import { cleanupStale, createNetns, deleteNetns, type Netns } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { flow, packets } from '../helpers/tcpflow.js';
import { tcpTransfer } from '../helpers/tvpn.js';
import { waitFor } from '../helpers/wait.js';

const SLOT = 2048;
const AT = { offset: 16 } as const; // where the data path reads and writes tun packets

/** Copies what `from` reads into `to`: every batch until the device is drained, or one batch per event. */
function pump(from: Tun, to: Tun, b: PacketBatch, drain: boolean): void {
  from.onReadable(() => {
    let n;
    do {
      n = from.readBatch(b, AT);
      if (n > 0) to.writeBatch(b, { ...AT, count: n });
    } while (drain && n === b.slots);
  });
}

describeRoot('TSO on tun reads through real tun devices', () => {
  let a: Netns;
  let b: Netns;
  let round = 0;

  beforeAll(async () => {
    await cleanupStale('tvtso');
    a = await createNetns('tvtso', '-a');
    b = await createNetns('tvtso', '-b');
  });

  afterAll(async () => {
    if (a && b) await deleteNetns(a, b);
  });

  test.each([
    { host: '198.18.86.2', offload: true, slots: 64, drain: true },
    { host: 'fd86::2', offload: true, slots: 64, drain: true },
    { host: '198.18.86.2', offload: true, slots: 8, drain: false },
    { host: '198.18.86.2', offload: false, slots: 64, drain: true },
  ])('a TCP transfer to $host (offload $offload, $slots-slot reads) arrives intact', async ({ host, offload, slots, drain }) => {
    const name = `tvtso${round++}`;
    const ta = a.run(() => Tun.open({ name, offload }));
    const tb = b.run(() => Tun.open({ name, offload }));
    try {
      for (const [ns, tun, k] of [[a, ta, 1], [b, tb, 2]] as const) {
        await addAddress(tun.name, `198.18.86.${k}/24`, { netns: ns.name });
        await addAddress(tun.name, `fd86::${k}/64`, { netns: ns.name });
        await configureLink(tun.name, { mtu: 1420, up: true }, { netns: ns.name });
      }
      pump(ta, tb, createBatch(slots, SLOT), drain);
      pump(tb, ta, createBatch(64, SLOT), true);
      const { sent, received } = await tcpTransfer({ from: a, to: b, host, port: 5201, bytes: 8 << 20 });
      expect(received).toEqual(sent);
      expect(sent.bytes).toBe(8 << 20);
      if (offload) {
        expect(ta.offload).not.toBe('none');
        expect(ta.stats.readSuperPackets).toBeGreaterThan(0);
      } else {
        expect([ta.offload, ta.stats.readSuperPackets]).toEqual(['none', 0]);
      }
      expect(ta.stats.readOversized + tb.stats.writeDropped).toBe(0);
    } finally {
      ta.close();
      tb.close();
    }
  });

  // pause: reading stops after each batch and resumes 10 ms later, as the data path does while the UDP socket is full.
  test.each([false, true])('a lone super-packet bigger than the read batch comes out whole, one batch per readiness event (pause: %s)', async (pause) => {
    const tun = a.run(() => Tun.open({ name: `tvtso-fw${Number(pause)}` }));
    try {
      // Nothing else on the device (router solicitations, redirects) may wake the reader.
      const quiet = [`net.ipv6.conf.${tun.name}.disable_ipv6=1`, 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${tun.name}.send_redirects=0`];
      await a.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', ...quiet]);
      await configureLink(tun.name, { mtu: 1420, up: true }, { netns: a.name });
      await a.ip(['route', 'add', '198.19.1.0/24', 'dev', tun.name]);
      // Written as one coalesced packet, forwarded back out of the tun as one super-packet.
      const segs = flow(11, { lastSize: 100 });
      const out = createBatch(11, SLOT);
      packets(segs).forEach((p, i) => {
        out.buf.set(p, i * SLOT + AT.offset);
        out.lens[i] = p.length;
      });
      const got: Uint8Array[] = [];
      const small = createBatch(4, SLOT);
      const onReadable = (): void => {
        const n = tun.readBatch(small, AT);
        for (let i = 0; i < n; i++) got.push(small.buf.slice(i * SLOT + AT.offset, i * SLOT + AT.offset + small.lens[i]!));
        if (!pause) return;
        tun.onReadable(null);
        setTimeout(() => tun.closed || tun.onReadable(onReadable), 10);
      };
      tun.onReadable(onReadable);
      expect(tun.writeBatch(out, { ...AT, count: 11 })).toBe(11);
      await waitFor('all 11 segments', () => got.length >= 11, 2000);
      expect(got).toEqual(packets(segs.map((s) => ({ ...s, ttl: 63 }))));
      expect(tun.stats.readSuperPackets).toBe(1);
    } finally {
      tun.close();
    }
  });
});
