/**
 * The node-relay row's process: tvpn's own I/O and AEAD with no protocol. Packets go tun ->
 * seal -> UDP -> open -> tun through the same addon calls, batches, offloads and event loop as
 * the data path (tun offload, UDP GRO and GSO), under one fixed key, with no routing, counters,
 * replay window or timers. Its RTT is the floor of a data path in Node; tvpn's minus it is what
 * its protocol code costs.
 *
 *   node relayd.js LISTEN_IP PORT PEER_IP PEER_PORT   (prints "relaying" once the tun and socket are open)
 */
import { SLOT_HEADER } from '../../src/crypto/aead.js';
import { dataPathAead } from '../../src/daemon/aead.js';
import { createBatch, slotSizeFor } from '../../src/io/batch.js';
import { ENDPOINT_SIZE, encodeEndpoint } from '../../src/io/endpoint.js';
import { Tun } from '../../src/io/tun.js';
import { UdpSocket } from '../../src/io/udp.js';
import { TUNNEL_MTU } from './common.js';

const [listenIp, port, peerIp, peerPort] = process.argv.slice(2);
if (!listenIp || !port || !peerIp || !peerPort) throw new Error('usage: relayd LISTEN_IP PORT PEER_IP PEER_PORT');

const KEY = new Uint8Array(32).fill(0x42); // both ends; a benchmark's, not a secret
const tun = Tun.open({ name: 'tun0' });
const udp = UdpSocket.open({ address: listenIp, port: Number(port), gro: true });
const aead = dataPathAead();
const slot = slotSizeFor(TUNNEL_MTU);
const out = createBatch(64, slot);
const inb = createBatch(64, slot);
const peer = new Uint8Array(ENDPOINT_SIZE);
encodeEndpoint({ ip: peerIp, port: Number(peerPort) }, peer, 0);
const AT_SLOT_HEADER = { offset: SLOT_HEADER } as const;

tun.onReadable(() => {
  const n = tun.readBatch(out, AT_SLOT_HEADER);
  if (n === 0) return;
  aead.sealSlots(KEY, out.buf, slot, 0, n, out.lens);
  for (let i = 0; i < n; i++) {
    out.lens[i] = SLOT_HEADER + out.lens[i]!;
    out.addrs.set(peer, i * ENDPOINT_SIZE);
  }
  udp.sendBatch(out, { count: n });
});

udp.onReadable(() => {
  const n = udp.recvBatch(inb);
  if (n === 0) return;
  for (let i = 0; i < n; i++) inb.lens[i] = inb.lens[i]! - SLOT_HEADER;
  if (aead.openSlots(KEY, inb.buf, slot, 0, n, inb.lens) > 0) tun.writeBatch(inb, { count: n, offset: SLOT_HEADER });
});

process.on('SIGTERM', () => {
  tun.close();
  udp.close();
  process.exit(0);
});
process.stdout.write('relaying\n');
