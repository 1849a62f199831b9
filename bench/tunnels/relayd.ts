/**
 * The node-relay row's process: tvpn's own I/O and AEAD with no protocol. Packets go tun ->
 * seal -> UDP -> open -> tun through the data path's addon calls, slot size, offloads (tun TSO,
 * UDP GRO and GSO), turns of two batches and backpressure (tun reading pauses while the socket
 * is full), under one fixed key, with no routing, padding, counters, replay window or timers.
 * Its RTT and throughput are the floor and ceiling of a data path in Node; tvpn's minus them
 * is what its protocol code costs.
 *
 *   node relayd.js LISTEN_IP PORT PEER_IP PEER_PORT   (prints "relaying" once the tun and socket are open)
 */
import { SLOT_HEADER } from '../../src/crypto/aead.js';
import { dataPathAead } from '../../src/daemon/aead.js';
import { BATCHES_PER_TURN, slotSize } from '../../src/daemon/datapath.js';
import { createBatch } from '../../src/io/batch.js';
import { ENDPOINT_SIZE, encodeEndpoint } from '../../src/io/endpoint.js';
import { Tun } from '../../src/io/tun.js';
import { UdpSocket } from '../../src/io/udp.js';
import { TUNNEL_MTU } from './common.js';

const [listenIp, port, peerIp, peerPort] = process.argv.slice(2);
if (!listenIp || !port || !peerIp || !peerPort) throw new Error('usage: relayd LISTEN_IP PORT PEER_IP PEER_PORT');

// Both ends' key; the slot header is never written, so every packet is sealed under nonce 0:
// a benchmark's shortcut, never a protocol's.
const KEY = new Uint8Array(32).fill(0x42);
const tun = Tun.open({ name: 'tun0' });
const udp = UdpSocket.open({ address: listenIp, port: Number(port), gro: true });
const aead = dataPathAead();
const slot = slotSize(TUNNEL_MTU);
const out = createBatch(64, slot);
const inb = createBatch(64, slot);
const refused = new Uint8Array(out.slots);
const peer = new Uint8Array(ENDPOINT_SIZE);
encodeEndpoint({ ip: peerIp, port: Number(peerPort) }, peer, 0);
const AT_SLOT_HEADER = { offset: SLOT_HEADER } as const;

/** Sends slots [first, end); when the socket is full, pauses tun reading until it takes the rest. */
function send(first: number, end: number): boolean {
  const sent = udp.sendBatch(out, { first, count: end - first });
  if (first + sent === end) return true;
  tun.onReadable(null);
  udp.onWritable(() => {
    if (send(first + sent, end)) tun.onReadable(onTun);
  });
  return false;
}

function onTun(): void {
  for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
    const n = tun.readBatch(out, AT_SLOT_HEADER);
    if (n === 0) return;
    // A slot the read refused (lens -1) is sealed empty and skipped by the send.
    for (let i = 0; i < n; i++) {
      refused[i] = out.lens[i]! < 0 ? 1 : 0;
      if (refused[i]) out.lens[i] = 0;
    }
    aead.sealSlots(KEY, out.buf, slot, 0, n, out.lens);
    for (let i = 0; i < n; i++) {
      out.lens[i] = refused[i] ? -1 : SLOT_HEADER + out.lens[i]!;
      out.addrs.set(peer, i * ENDPOINT_SIZE);
    }
    if (!send(0, n) || n < out.slots) return;
  }
}

function onUdp(): void {
  for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
    const n = udp.recvBatch(inb);
    if (n === 0) return;
    for (let i = 0; i < n; i++) inb.lens[i] = Math.max(inb.lens[i]! - SLOT_HEADER, 0); // an undersized one fails to open
    if (aead.openSlots(KEY, inb.buf, slot, 0, n, inb.lens) > 0) tun.writeBatch(inb, { count: n, offset: SLOT_HEADER });
    if (n < inb.slots) return;
  }
}

tun.onReadable(onTun);
udp.onReadable(onUdp);
process.on('SIGTERM', () => {
  tun.close();
  udp.close();
  process.exit(0);
});
process.stdout.write('relaying\n');
