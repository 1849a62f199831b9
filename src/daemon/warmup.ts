/**
 * JIT warm-up at start. V8 runs new code in its interpreter and optimises a function only
 * after it has run many times: measured through a fresh tunnel, the first hundred pings of an
 * idle tunnel took 0.4-0.6 ms longer than those after (1.04 ms added RTT falling to 0.43 ms
 * over 120 pings). So before the daemon's own traffic flows, two throwaway Devices, with keys
 * of their own and nothing on any network, do a handshake and pass packets both ways through
 * the same code the data path runs: the batch encrypt and decrypt, routing, replay, timers and
 * the AEAD backend. The first real packets then run optimised code.
 */
import type { BatchAead } from '../crypto/aead.js';
import { SLOT_HEADER } from '../crypto/aead.js';
import { createBatch, type PacketBatch } from '../io/batch.js';
import type { Endpoint } from '../net/endpoint.js';
import { Device, type DeviceOutput } from '../wireguard/device.js';
import type { Peer } from '../wireguard/peer.js';
import { randomBytes } from 'node:crypto';

/** Round trips; about 20 ms of CPU on the project's 2-core VM. */
const ROUNDS = 3000;
const SLOT = 2048;

/** Collects what a device sends outside a batch (handshake messages, keepalives). */
class Outbox implements DeviceOutput {
  readonly sent: Uint8Array[] = [];
  sendDatagram(data: Uint8Array): void {
    this.sent.push(data.slice());
  }
  deliverControl(): void {}
  event(): void {}
}

interface End {
  readonly device: Device;
  readonly out: Outbox;
  readonly endpoint: Endpoint;
  readonly ip: number[];
}

function end(aead: BatchAead, host: number): End {
  const out = new Outbox();
  const device = new Device({ privateKey: new Uint8Array(randomBytes(32)), output: out, aead });
  return { device, out, endpoint: { ip: `198.18.255.${host}`, port: 51820 }, ip: [10, 255, 255, host] };
}

/** An ICMP-echo-sized IPv4 packet (84 bytes) from one end's tunnel address to the other's, in slot i. */
function writePacket(b: PacketBatch<Peer>, i: number, from: End, to: End): void {
  const p = i * b.slotSize + SLOT_HEADER;
  b.buf.fill(0, p, p + 84);
  b.buf.set([0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1], p);
  b.buf.set(from.ip, p + 12);
  b.buf.set(to.ip, p + 16);
  b.lens[i] = 84;
}

/** Sends `count` packets from one end to the other through encryptBatch and decryptBatch. */
function pass(b: PacketBatch<Peer>, count: number, from: End, to: End, now: number): void {
  for (let i = 0; i < count; i++) writePacket(b, i, from, to);
  from.device.encryptBatch(b, count, now);
  to.device.decryptBatch(b, count, () => from.endpoint, now);
}

/** Runs the data path's code on throwaway devices; returns the milliseconds it took. */
export function warmUp(aead: BatchAead): number {
  const t0 = performance.now();
  const a = end(aead, 1);
  const z = end(aead, 2);
  const toZ = a.device.addPeer({ publicKey: z.device.publicKey, endpoint: z.endpoint, allowedIps: ['10.255.255.2/32'] });
  z.device.addPeer({ publicKey: a.device.publicKey, endpoint: a.endpoint, allowedIps: ['10.255.255.1/32'] });
  a.device.connect(toZ, 0);
  z.device.receive(a.out.sent.pop()!, a.endpoint, 0);
  a.device.receive(z.out.sent.pop()!, z.endpoint, 0);
  const b = createBatch<Peer>(16, SLOT);
  for (let round = 0; round < ROUNDS; round++) {
    const now = round; // a millisecond a round: timers run as in a busy minute of real time
    const count = round % 10 === 0 ? 16 : 1;
    pass(b, count, a, z, now);
    pass(b, count, z, a, now);
    a.device.tick(now);
    z.device.tick(now);
  }
  return performance.now() - t0;
}
