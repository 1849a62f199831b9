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
import { AeadRuns, SLOT_HEADER, TAG_LENGTH } from '../src/crypto/aead.js';
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
  /** The control: median packets/s of the AEAD alone (the same pool, no protocol) with 1 and 2 threads. */
  aead1: number;
  aead2: number;
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

/** The clients' pre-encrypted batches, as recvmmsg hands them over, and where each slot came from. */
interface Input {
  readonly batches: { readonly b: PacketBatch<Peer>; count: number }[];
  readonly from: Endpoint[];
}

/**
 * Buffers made once and refilled by every setup, which allocates per client, not per packet:
 * the garbage of the last repetition is small by the time the next one is timed. (Before, each
 * dropped 52 MB in 25,600 ArrayBuffers that V8's background threads freed during the next
 * timed loop, on the core the AEAD thread needed.)
 */
function input(): Input {
  const batches = Array.from({ length: Math.ceil((PEERS * PER_PEER) / BATCH) }, () => ({ b: createBatch<Peer>(BATCH, SLOT), count: 0 }));
  return { batches, from: new Array<Endpoint>(PEERS * PER_PEER) };
}

/** A server with PEERS fresh sessions, and `into` filled with what its clients sent it. */
function setup(aead: NativeAead, into: Input, scratch: PacketBatch<Peer>): Device {
  const serverOut = new Capture();
  const server = new Device({ privateKey: generatePrivateKey(), output: serverOut, aead });
  for (let i = 0; i < PEERS; i++) {
    const out = new Capture();
    const client = new Device({ privateKey: generatePrivateKey(), output: out, aead });
    const from = clientEndpoint(i);
    const toServer = client.addPeer({ publicKey: server.publicKey, endpoint: SERVER, allowedIps: ['0.0.0.0/0'] });
    server.addPeer({ publicKey: client.publicKey, allowedIps: [`${clientIp(i)}/32`] });
    client.connect(toServer, 0);
    server.receive(out.sent.pop()!.data, from, 0);
    client.receive(serverOut.sent.pop()!.data, SERVER, 0);
    const packet = ipv4(clientIp(i), '10.9.255.254', new Uint8Array(PACKET - 20)); // its header, for every k
    for (let k = 0; k < PER_PEER; k++) {
      const at = k * SLOT + SLOT_HEADER;
      scratch.buf.set(packet, at);
      scratch.buf.fill(k & 0xff, at + 20, at + PACKET);
      scratch.lens[k] = PACKET;
    }
    client.encryptBatch(scratch, PER_PEER, 0);
    // Interleaved: RUN packets of client 0, RUN of client 1, ..., into BATCH-slot batches.
    for (let k = 0; k < PER_PEER; k++) {
      const at = Math.floor(k / RUN) * PEERS * RUN + i * RUN + (k % RUN);
      const dst = into.batches[Math.floor(at / BATCH)]!;
      dst.b.buf.set(scratch.buf.subarray(k * SLOT, k * SLOT + scratch.lens[k]!), (at % BATCH) * SLOT);
      dst.b.lens[at % BATCH] = scratch.lens[k]!;
      into.from[at] = from;
    }
  }
  for (const [n, batch] of into.batches.entries()) batch.count = Math.min(BATCH, PEERS * PER_PEER - n * BATCH);
  return server;
}

/**
 * Packets/s of the server's decryptBatch over one fresh setup; checks every packet got
 * through. Each batch is first copied into the one batch the server reads into, as recvmmsg
 * would (outside the timing), so the AEAD works on cache-warm slots as in the daemon.
 */
function measure(aead: NativeAead, threads: number, into: Input, scratch: PacketBatch<Peer>, rx: PacketBatch<Peer>): number {
  const server = setup(aead, into, scratch);
  aead.setThreads(threads);
  let delivered = 0;
  let ms = 0;
  for (const [n, { b, count }] of into.batches.entries()) {
    rx.buf.set(b.buf.subarray(0, count * SLOT));
    rx.lens.set(b.lens);
    const t0 = performance.now();
    server.decryptBatch(rx, count, (i) => into.from[n * BATCH + i]!, 0);
    ms += performance.now() - t0;
    for (let i = 0; i < count; i++) if (rx.lens[i]! > 0) delivered++;
  }
  aead.setThreads(0);
  if (delivered !== PEERS * PER_PEER) throw new Error(`workers bench: ${delivered} of ${PEERS * PER_PEER} packets delivered`);
  return (delivered / ms) * 1000;
}

/**
 * Packets/s of the AEAD alone sealing the same batches with `threads` extra threads: what
 * the machine's second core gives this run. On this VM it comes and goes (the host's
 * scheduling): 1.9-2.0x at times, about 1.3x at others, and the receive path follows.
 */
function sealRate(aead: NativeAead, threads: number, into: Input, rx: PacketBatch<Peer>): number {
  const key = new Uint8Array(32).fill(7);
  aead.setThreads(threads);
  let sealed = 0;
  let ms = 0;
  const runs = new AeadRuns();
  for (const { b, count } of into.batches) {
    rx.buf.set(b.buf.subarray(0, count * SLOT)); // cache-warm, as in measure()
    rx.lens.fill(PACKET - TAG_LENGTH, 0, count); // sealed in place: the bytes need not be plaintext
    // In runs of RUN slots, as the receive path's batches come: the pool cuts them alike.
    runs.count = 0;
    for (let first = 0; first < count; first += RUN) runs.add(key, first, Math.min(RUN, count - first));
    const t0 = performance.now();
    aead.cryptRuns(true, rx.buf, SLOT, rx.lens, runs);
    ms += performance.now() - t0;
    sealed += count;
  }
  aead.setThreads(0);
  return (sealed / ms) * 1000;
}

export function runWorkers(reps = 7): WorkersResult {
  const aead = new NativeAead();
  const into = input();
  const scratch = createBatch<Peer>(PER_PEER, SLOT);
  const rx = createBatch<Peer>(BATCH, SLOT);
  measure(aead, 0, into, scratch, rx); // JIT warm-up
  measure(aead, 1, into, scratch, rx);
  const [one, two, aead1, aead2]: [number[], number[], number[], number[]] = [[], [], [], []];
  for (let r = 0; r < reps; r++) {
    one.push(measure(aead, 0, into, scratch, rx));
    two.push(measure(aead, 1, into, scratch, rx));
    // After the receive path, which refills the batches for its next repetition.
    aead1.push(sealRate(aead, 0, into, rx));
    aead2.push(sealRate(aead, 1, into, rx));
  }
  return { peers: PEERS, packetsPerRep: PEERS * PER_PEER, reps, pps1: median(one), pps2: median(two), aead1: median(aead1), aead2: median(aead2) };
}

export function workersTable(w: WorkersResult): string {
  const k = (pps: number): string => `${Math.round(pps / 1000).toLocaleString('en-US')}k`;
  return [
    `| server receive path, in process (${w.peers} peers, ${w.packetsPerRep.toLocaleString('en-US')} packets of ${PACKET} B, median of ${w.reps}) | packets/s | ratio |`,
    '|---|--:|--:|',
    `| 1 worker (Node's thread) | ${k(w.pps1)} | 1.00x |`,
    `| 2 workers (+1 AEAD thread) | ${k(w.pps2)} | ${(w.pps2 / w.pps1).toFixed(2)}x |`,
    `| control: the AEAD alone, 1 thread | ${k(w.aead1)} | 1.00x |`,
    `| control: the AEAD alone, 2 threads | ${k(w.aead2)} | ${(w.aead2 / w.aead1).toFixed(2)}x |`,
  ].join('\n');
}
