/**
 * The server's receive path with 1 and 2 workers, in this process (no namespaces, no I/O):
 * a server Device with 100 client peers takes batches of pre-encrypted transport messages
 * (1420-byte IP packets, runs of 4 per peer, 64 slots a batch: what recvmmsg hands the data
 * path) through decryptBatch, which opens them (AEAD), checks replay and allowed IPs and
 * routes them. "1 worker" is Node's thread alone; "2 workers" adds one AEAD thread (the
 * daemon's `workers: 2`), which shares each batch with it. Per-packet decisions stay on
 * Node's thread either way.
 *
 * Each repetition has fresh sessions (the replay window takes a counter once), and the two
 * settings alternate, so a noisy neighbour hits both alike; packets/s is the median.
 */
import { createBatch, type PacketBatch } from '../src/io/batch.js';
import { NativeAead } from '../src/crypto/aead-native.js';
import { generatePrivateKey } from '../src/config/keys.js';
import { SLOT_HEADER } from '../src/crypto/aead.js';
import { Device } from '../src/wireguard/device.js';
import { ipv4 } from '../test/unit/support/sim.js';
import { Capture } from './handshakes.js';
import { median } from './measure.js';
import type { Endpoint } from '../src/net/endpoint.js';
import type { Peer } from '../src/wireguard/peer.js';

export interface WorkersResult {
  peers: number;
  packetsPerRep: number;
  reps: number;
  /** Median packets/s of decryptBatch with 1 and 2 workers. */
  pps1: number;
  pps2: number;
}

const PEERS = 100;
const PER_PEER = 256;
const RUN = 4;
const BATCH = 64;
const SLOT = 2048;
const PACKET = 1420;
const SERVER: Endpoint = { ip: '198.18.0.1', port: 51820 };

const clientIp = (i: number): string => `10.9.${i >> 8}.${(i & 255) + 1}`;
const clientEndpoint = (i: number): Endpoint => ({ ip: `198.19.${i >> 8}.${(i & 255) + 1}`, port: 40000 });

/** A server with PEERS sessions and the batches its clients sent it, with their senders. */
function setup(aead: NativeAead): { server: Device; batches: { b: PacketBatch<Peer>; from: Endpoint[]; count: number }[] } {
  const serverOut = new Capture();
  const server = new Device({ privateKey: generatePrivateKey(), output: serverOut, aead });
  const perClient: Uint8Array[][] = [];
  for (let i = 0; i < PEERS; i++) {
    const out = new Capture();
    const client = new Device({ privateKey: generatePrivateKey(), output: out, aead });
    const toServer = client.addPeer({ publicKey: server.publicKey, endpoint: SERVER, allowedIps: ['0.0.0.0/0'] });
    server.addPeer({ publicKey: client.publicKey, allowedIps: [`${clientIp(i)}/32`] });
    client.connect(toServer, 0);
    server.receive(out.sent.pop()!.data, clientEndpoint(i), 0);
    client.receive(serverOut.sent.pop()!.data, SERVER, 0);
    const b = createBatch<Peer>(PER_PEER, SLOT);
    for (let k = 0; k < PER_PEER; k++) {
      b.buf.set(ipv4(clientIp(i), '10.9.255.254', new Uint8Array(PACKET - 20).fill(k & 0xff)), k * SLOT + SLOT_HEADER);
      b.lens[k] = PACKET;
    }
    client.encryptBatch(b, PER_PEER, 0);
    perClient.push(Array.from({ length: PER_PEER }, (_, k) => b.buf.slice(k * SLOT, k * SLOT + b.lens[k]!)));
  }
  // Interleave: RUN packets of client 0, RUN of client 1, ..., into BATCH-slot batches.
  const batches: { b: PacketBatch<Peer>; from: Endpoint[]; count: number }[] = [];
  let cur = { b: createBatch<Peer>(BATCH, SLOT), from: [] as Endpoint[], count: 0 };
  for (let k = 0; k < PER_PEER; k += RUN) {
    for (let i = 0; i < PEERS; i++) {
      for (let r = 0; r < RUN; r++) {
        const d = perClient[i]![k + r]!;
        cur.b.buf.set(d, cur.count * SLOT);
        cur.b.lens[cur.count] = d.length;
        cur.from.push(clientEndpoint(i));
        if (++cur.count === BATCH) {
          batches.push(cur);
          cur = { b: createBatch<Peer>(BATCH, SLOT), from: [], count: 0 };
        }
      }
    }
  }
  if (cur.count > 0) batches.push(cur);
  return { server, batches };
}

/**
 * Packets/s of the server's decryptBatch over one fresh setup; checks every packet got
 * through. Each batch is first copied into the one batch the server reads into, as recvmmsg
 * would (outside the timing), so the AEAD works on cache-warm slots as in the daemon.
 */
function measure(aead: NativeAead, threads: number): number {
  const { server, batches } = setup(aead);
  const rx = createBatch<Peer>(BATCH, SLOT);
  aead.setThreads(threads);
  let delivered = 0;
  let ms = 0;
  for (const { b, from, count } of batches) {
    rx.buf.set(b.buf.subarray(0, count * SLOT));
    rx.lens.set(b.lens);
    const t0 = performance.now();
    server.decryptBatch(rx, count, (i) => from[i]!, 0);
    ms += performance.now() - t0;
    for (let i = 0; i < count; i++) if (rx.lens[i]! > 0) delivered++;
  }
  aead.setThreads(0);
  if (delivered !== PEERS * PER_PEER) throw new Error(`workers bench: ${delivered} of ${PEERS * PER_PEER} packets delivered`);
  return (delivered / ms) * 1000;
}

export function runWorkers(reps = 7): WorkersResult {
  const aead = new NativeAead();
  measure(aead, 0); // JIT warm-up
  measure(aead, 1);
  const one: number[] = [];
  const two: number[] = [];
  for (let r = 0; r < reps; r++) {
    one.push(measure(aead, 0));
    two.push(measure(aead, 1));
  }
  return { peers: PEERS, packetsPerRep: PEERS * PER_PEER, reps, pps1: median(one), pps2: median(two) };
}

export function workersTable(w: WorkersResult): string {
  const k = (pps: number): string => `${Math.round(pps / 1000).toLocaleString('en-US')}k`;
  return [
    `| server receive path, in process (${w.peers} peers, ${w.packetsPerRep.toLocaleString('en-US')} packets of ${PACKET} B, median of ${w.reps}) | packets/s | ratio |`,
    '|---|--:|--:|',
    `| 1 worker (Node's thread) | ${k(w.pps1)} | 1.00x |`,
    `| 2 workers (+1 AEAD thread) | ${k(w.pps2)} | ${(w.pps2 / w.pps1).toFixed(2)}x |`,
  ].join('\n');
}
