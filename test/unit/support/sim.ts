/**
 * An in-memory network for sans-IO tests: devices on an injected clock and a seeded RNG,
 * datagrams queued (never delivered re-entrantly) with hooks to drop, duplicate, reorder
 * or capture them.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { MESSAGE_TRANSPORT } from '../../../src/wireguard/constants.js';
import type { DeviceCore } from '../../../src/wireguard/core.js';
import { Device, type DeviceEvent, type DeviceOptions, type DeviceOutput } from '../../../src/wireguard/device.js';
import type { Endpoint } from '../../../src/net/endpoint.js';
import type { Peer, PeerConfig } from '../../../src/wireguard/peer.js';
import { createAead } from '../../../src/crypto/backends.js';

/** Deterministic byte stream: BLAKE2s(seed || counter) blocks. */
export function seededRng(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  const enc = new TextEncoder().encode(seed);
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = blake2s(new Uint8Array([...enc, ...new Uint8Array(new Uint32Array([counter++]).buffer)]));
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

/** What a test may set on a node's device (the rest comes from the simulated network). */
export type NodeOptions = Partial<Pick<DeviceOptions, 'forceUnderLoad' | 'mtu' | 'aead'>>;

export interface Datagram {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

export class Node implements DeviceOutput {
  readonly device: Device;
  readonly packets: Uint8Array[] = [];
  readonly control: Uint8Array[] = [];
  readonly events: DeviceEvent[] = [];
  readonly sent: Datagram[] = [];

  constructor(
    readonly net: SimNet,
    readonly name: string,
    public endpoint: Endpoint,
    opts: NodeOptions = {},
  ) {
    const rng = seededRng(name);
    this.device = new Device({
      privateKey: rng(32),
      output: this,
      aead: createAead('noble'),
      rng,
      wallClock: () => net.wallBase + net.now,
      ...opts,
    });
  }

  sendDatagram(data: Uint8Array, to: Endpoint): void {
    const d = { from: this.endpoint, to, data: data.slice() };
    this.sent.push(d);
    this.net.enqueue(d);
  }
  deliverPacket(packet: Uint8Array): void {
    this.packets.push(packet.slice());
  }
  deliverControl(frame: Uint8Array): void {
    this.control.push(frame.slice());
  }
  event(e: DeviceEvent): void {
    this.events.push(e);
  }

  /** Configures `other` as this node's peer with the given allowed IPs. */
  addPeer(other: Node, allowedIps: string[], extra: Partial<PeerConfig> = {}): Peer {
    return this.device.addPeer({ publicKey: other.device.publicKey, endpoint: other.endpoint, allowedIps, ...extra });
  }

  count(type: DeviceEvent['type']): number {
    return this.events.filter((e) => e.type === type).length;
  }

  /** Datagrams of one WireGuard message type this node has sent. */
  sentOfType(type: number): Datagram[] {
    return this.sent.filter((d) => d.data[0] === type);
  }
}

export class SimNet {
  now = 1_000;
  readonly wallBase = 1_700_000_000_000;
  readonly nodes: Node[] = [];
  queue: Datagram[] = [];
  /** Called for each datagram about to be delivered: return the datagrams to deliver instead. */
  filter: ((d: Datagram) => Datagram[]) | null = null;

  node(name: string, ip: string, opts?: NodeOptions): Node {
    const n = new Node(this, name, { ip, port: 51820 }, opts);
    this.nodes.push(n);
    return n;
  }

  enqueue(d: Datagram): void {
    this.queue.push(d);
  }

  /** Delivers queued datagrams (and those they cause) until the network is quiet. */
  flush(maxSteps = 10_000): void {
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > maxSteps) throw new Error('network did not settle');
      const d = this.queue.shift()!;
      for (const x of this.filter ? this.filter(d) : [d]) {
        const dst = this.nodes.find((n) => n.endpoint.ip === x.to.ip && n.endpoint.port === x.to.port);
        dst?.device.receive(x.data, x.from, this.now);
      }
    }
  }

  /** Advances the clock to `until`, firing device timers on the way and flushing after each. */
  runUntil(until: number): void {
    this.flush();
    for (;;) {
      const next = Math.min(...this.nodes.map((n) => n.device.nextTimerAt()));
      if (next > until) break;
      this.now = Math.max(this.now, next);
      for (const n of this.nodes) n.device.tick(this.now);
      this.flush();
    }
    this.now = until;
  }

  advance(ms: number): void {
    this.runUntil(this.now + ms);
  }
}

/** A minimal IPv4 packet (UDP-ish payload); the core reads only version, length and addresses. */
export function ipv4(src: string, dst: string, payload: Uint8Array | string = 'x'): Uint8Array {
  const body = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p.set(body, 20);
  return p;
}

/** A minimal IPv6 packet. */
export function ipv6(src: Uint8Array, dst: Uint8Array, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  p[4] = payload.length >> 8;
  p[5] = payload.length & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}

/** Two peers A (10.0.0.1, 198.18.0.1) and B (10.0.0.2, 198.18.0.2) that know each other. */
export function pair(opts: { a?: NodeOptions; b?: NodeOptions; aKeepalive?: number } = {}) {
  const net = new SimNet();
  const a = net.node('a', '198.18.0.1', opts.a);
  const b = net.node('b', '198.18.0.2', opts.b);
  const peerB = a.addPeer(b, ['10.0.0.2/32'], { persistentKeepalive: opts.aKeepalive ?? 0 });
  const peerA = b.addPeer(a, ['10.0.0.1/32']);
  return { net, a, b, peerA, peerB };
}

/** A and B with a finished handshake and one packet each way. */
export function connected(opts: Parameters<typeof pair>[0] = {}) {
  const s = pair(opts);
  s.a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'hello'), s.net.now);
  s.net.flush();
  s.b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'hi back'), s.net.now);
  s.net.flush();
  return s;
}

/** The payload of an IPv4 packet built by ipv4(), as text. */
export const text = (p: Uint8Array): string => new TextDecoder().decode(p.subarray(20));
export const transports = (ds: Datagram[]): Datagram[] => ds.filter((d) => d.data[0] === MESSAGE_TRANSPORT);

/** The internals behind the façade, for the few tests that reach past its checks. */
export const core = (d: Device): DeviceCore => (d as unknown as { core: DeviceCore }).core;
