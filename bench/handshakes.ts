/**
 * Handshake capacity and per-packet peer lookups of the tvpn core with many peers, in this
 * process on one core (no namespaces, no I/O): a responder Device with 10,000 configured
 * peers, each with its own /32.
 *
 * - handshakes/s: one initiation from each of the 10,000 initiators is made beforehand; the
 *   responder then consumes them back to back and answers each with a response (its work on
 *   a real server: mac1, the Noise IK message, the response with its ephemeral key). receive()
 *   handles each at once, so the handshake queue never fills and cookies stay off: this is
 *   the crypto's capacity, not the cookie path's.
 *   A sample of initiators consumes its response to check the handshakes really complete.
 * - lookups: the allowed-IPs lookup that routes every outgoing packet by its destination, and
 *   the static-key lookup every initiation does, in ns each.
 */
import { generatePrivateKey } from '../src/config/keys.js';
import { bestAead } from '../src/crypto/backends.js';
import { Device, type DeviceEvent, type DeviceOutput } from '../src/wireguard/device.js';
import type { Endpoint } from '../src/net/endpoint.js';
import type { Peer } from '../src/wireguard/peer.js';
import { prng } from '../test/helpers/prng.js';

export interface HandshakeResult {
  peers: number;
  /** Responses per second the responder produced (initiations consumed and answered). */
  handshakesPerSecond: number;
  timed: number;
  /** Sampled initiators whose handshake completed with the response they got. */
  verified: string;
  allowedIpsNs: number;
  staticKeyNs: number;
}

const RESPONDER: Endpoint = { ip: '198.18.0.1', port: 51820 };
const WARMUP = 500; // initiations consumed before the clock starts, for the JIT
const VERIFY = 100; // initiators kept to consume their responses (each Device holds ~130 KiB of scratch)

/** Keeps copies of what a device sends (its buffers are only valid during the call). */
export class Capture implements DeviceOutput {
  readonly sent: { data: Uint8Array; to: Endpoint }[] = [];
  completed = 0;
  sendDatagram(data: Uint8Array, to: Endpoint): void {
    this.sent.push({ data: data.slice(), to });
  }
  deliverControl(): void {}
  event(e: DeviceEvent): void {
    if (e.type === 'handshake-complete') this.completed++;
  }
}

const clientAddr = (i: number): string => `198.19.${i >> 8}.${i & 255}`;
const clientEndpoint = (i: number): Endpoint => ({ ip: `198.18.${1 + (i >> 8)}.${i & 255}`, port: 40000 + (i % 1000) });

/** ns per call of fn(i) for i = 0..n-1, after a warm-up of n/10 calls. */
function nsPer(n: number, fn: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < n / 10; i++) if (fn(i) !== undefined) sink++;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (fn(i) !== undefined) sink++;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (sink === 0) throw new Error('every lookup missed');
  return ns;
}

export function runHandshakes(peers = 10_000): HandshakeResult {
  const aead = bestAead();
  const out = new Capture();
  const responder = new Device({ privateKey: generatePrivateKey(), output: out, aead });
  const keys: Uint8Array[] = [];
  const initiations: { data: Uint8Array; from: Endpoint }[] = [];
  const kept: { device: Device; out: Capture }[] = [];
  for (let i = 0; i < peers; i++) {
    const o = new Capture();
    const device = new Device({ privateKey: generatePrivateKey(), output: o, aead });
    const peer = device.addPeer({ publicKey: responder.publicKey, endpoint: RESPONDER });
    responder.addPeer({ publicKey: device.publicKey, allowedIps: [`${clientAddr(i)}/32`] });
    keys.push(device.publicKey);
    device.connect(peer, performance.now());
    const init = o.sent.find((d) => d.data[0] === 1);
    if (!init) throw new Error(`initiator ${i} sent no initiation`);
    initiations.push({ data: init.data, from: clientEndpoint(i) });
    if (i < VERIFY) kept.push({ device, out: o });
  }

  // Warm-up and verification set first (the kept initiators), then the timed run.
  for (let i = 0; i < WARMUP; i++) responder.receive(initiations[i]!.data, initiations[i]!.from, performance.now());
  const before = out.sent.length;
  const t0 = performance.now();
  for (let i = WARMUP; i < peers; i++) responder.receive(initiations[i]!.data, initiations[i]!.from, performance.now());
  const seconds = (performance.now() - t0) / 1000;
  const responses = out.sent.slice(before).filter((d) => d.data[0] === 2).length;
  if (responses !== peers - WARMUP) throw new Error(`the responder answered ${responses} of ${peers - WARMUP} initiations (drops: ${JSON.stringify(responder.drops)})`);

  // The first VERIFY responses belong to the kept initiators, in order.
  const firstResponses = out.sent.filter((d) => d.data[0] === 2).slice(0, VERIFY);
  kept.forEach(({ device }, i) => device.receive(firstResponses[i]!.data, RESPONDER, performance.now()));
  const completed = kept.filter(({ out: o }) => o.completed === 1).length;
  if (completed !== kept.length) throw new Error(`only ${completed} of ${kept.length} sampled handshakes completed`);

  // Destinations as they sit in packets: a buffer of IPv4 addresses, all of configured clients.
  const rnd = prng(61);
  const SLOTS = 1 << 16;
  const dst = new Uint8Array(SLOTS * 4);
  const picks = Uint32Array.from({ length: SLOTS }, () => Math.floor(rnd() * peers));
  picks.forEach((p, i) => dst.set(clientAddr(p).split('.').map(Number), i * 4));
  const allowedIpsNs = nsPer(5_000_000, (i): Peer | undefined => responder.allowedIps.lookupV4(dst, (i & (SLOTS - 1)) * 4));
  const staticKeyNs = nsPer(1_000_000, (i): Peer | undefined => responder.peer(keys[picks[i & (SLOTS - 1)]!]!));

  return {
    peers,
    handshakesPerSecond: (peers - WARMUP) / seconds,
    timed: peers - WARMUP,
    verified: `${completed}/${kept.length}`,
    allowedIpsNs,
    staticKeyNs,
  };
}
