/**
 * The I/O shell around the sans-IO core: tun and UDP readiness drive batched reads, each
 * packet goes through the Device, and what it emits is gathered into batches written with
 * one sendmmsg / one tun batch write per round. When the UDP socket is full, tun reading
 * pauses until it is writable again (backpressure instead of drops or spinning).
 */
import type { BatchAead } from '../crypto/aead.js';
import { createBatch, type PacketBatch } from '../io/batch.js';
import { ENDPOINT_SIZE, copyEndpoint, decodeEndpoint, encodeEndpoint, endpointEquals } from '../io/endpoint.js';
import type { Tun } from '../io/tun.js';
import type { UdpSocket } from '../io/udp.js';
import { Device, type DeviceEvent, type DeviceOutput } from '../wireguard/device.js';
import type { Endpoint } from '../wireguard/endpoint.js';
import type { Peer } from '../wireguard/peer.js';
import { now } from './clock.js';

export interface DataPathOptions {
  tun: Tun;
  udp: UdpSocket;
  privateKey: Uint8Array;
  mtu: number;
  aead: BatchAead;
  forceUnderLoad?: boolean;
  /** A decrypted IP packet: return true when the caller took it (forwarded or refused); else it goes to the tun. */
  onPacket?: (packet: Uint8Array, peer: Peer) => boolean;
  onControl: (frame: Uint8Array, peer: Peer) => void;
  onEvent: (e: DeviceEvent) => void;
  /** Called on every timer tick after the device's timers ran. */
  onTick?: (now: number) => void;
}

const BATCH = 64;
const TICK_MS = 100;

export class DataPath implements DeviceOutput {
  readonly device: Device;
  /** Datagrams or packets dropped because an outgoing batch was full while the socket was blocked. */
  overflowDrops = 0;
  private readonly tunIn: PacketBatch;
  private readonly udpIn: PacketBatch;
  private readonly udpOut: PacketBatch;
  private readonly tunOut: PacketBatch;
  private udpOutCount = 0;
  private udpOutSent = 0;
  private tunOutCount = 0;
  private blocked = false;
  private readonly ticker: NodeJS.Timeout;
  /** Encoded peer entries of endpoints the device sends to (endpoints are immutable). */
  private readonly encoded = new WeakMap<Endpoint, Uint8Array>();
  /** The last sender seen on receive, so a batch from one peer decodes its address once. */
  private lastFromRaw: Uint8Array = new Uint8Array(ENDPOINT_SIZE);
  private lastFrom: Endpoint | null = null;

  constructor(private readonly opts: DataPathOptions) {
    const slot = Math.max(2048, (opts.mtu + 64 + 63) & ~63);
    this.tunIn = createBatch(BATCH, slot);
    this.udpIn = createBatch(BATCH, slot);
    this.udpOut = createBatch(BATCH, slot);
    this.tunOut = createBatch(BATCH, slot);
    this.device = new Device({ privateKey: opts.privateKey, output: this, aead: opts.aead, mtu: opts.mtu, forceUnderLoad: opts.forceUnderLoad ?? false });
    opts.tun.onReadable(this.onTunReadable);
    opts.udp.onReadable(this.onUdpReadable);
    this.ticker = setInterval(() => {
      const t = now();
      this.device.tick(t);
      opts.onTick?.(t);
      this.flush();
    }, TICK_MS);
  }

  close(): void {
    clearInterval(this.ticker);
    this.opts.tun.close();
    this.opts.udp.close();
  }

  /** Sends what the device emitted outside the I/O callbacks (control frames, handshakes). */
  flush(): void {
    this.flushUdp();
    this.flushTun();
  }

  // ---- DeviceOutput ----

  sendDatagram(data: Uint8Array, to: Endpoint): void {
    const b = this.udpOut;
    if (this.udpOutCount === b.slots) {
      if (this.blocked) {
        this.overflowDrops++;
        return;
      }
      this.flushUdp();
      if (this.udpOutCount === b.slots) {
        this.overflowDrops++;
        return;
      }
    }
    const i = this.udpOutCount++;
    b.buf.set(data, i * b.slotSize);
    b.lens[i] = data.length;
    let entry = this.encoded.get(to);
    if (!entry) {
      entry = new Uint8Array(ENDPOINT_SIZE);
      encodeEndpoint(to, entry, 0);
      this.encoded.set(to, entry);
    }
    b.addrs.set(entry, i * ENDPOINT_SIZE);
  }

  deliverPacket(packet: Uint8Array, peer: Peer): void {
    if (this.opts.onPacket?.(packet, peer)) return;
    const b = this.tunOut;
    if (this.tunOutCount === b.slots) this.flushTun();
    const i = this.tunOutCount++;
    b.buf.set(packet, i * b.slotSize);
    b.lens[i] = packet.length;
  }

  deliverControl(frame: Uint8Array, peer: Peer): void {
    this.opts.onControl(frame, peer);
  }

  event(e: DeviceEvent): void {
    this.opts.onEvent(e);
  }

  // ---- readiness ----

  private readonly onTunReadable = (): void => {
    const b = this.tunIn;
    for (;;) {
      const n = this.opts.tun.readBatch(b);
      const t = now();
      for (let i = 0; i < n; i++) {
        const len = b.lens[i]!;
        if (len > 0) this.device.sendPacket(b.buf.subarray(i * b.slotSize, i * b.slotSize + len), t);
      }
      this.flushUdp();
      if (n < b.slots || this.blocked) break;
    }
  };

  private readonly onUdpReadable = (): void => {
    const b = this.udpIn;
    for (;;) {
      const n = this.opts.udp.recvBatch(b);
      const t = now();
      for (let i = 0; i < n; i++) {
        const len = b.lens[i]!;
        if (len <= 0) continue;
        const from = this.sender(i);
        if (from) this.device.receive(b.buf.subarray(i * b.slotSize, i * b.slotSize + len), from, t);
      }
      this.flush();
      if (n < b.slots) break;
    }
  };

  private sender(i: number): Endpoint | null {
    const addrs = this.udpIn.addrs;
    if (this.lastFrom && endpointEquals(addrs, i, this.lastFromRaw, 0)) return this.lastFrom;
    const ep = decodeEndpoint(addrs, i);
    if (!ep) return null;
    copyEndpoint(addrs, i, this.lastFromRaw, 0);
    this.lastFrom = ep;
    return ep;
  }

  // ---- batched writes ----

  private flushUdp(): void {
    if (this.blocked || this.udpOutCount === 0) return;
    const want = this.udpOutCount - this.udpOutSent;
    const sent = this.opts.udp.sendBatch(this.udpOut, { first: this.udpOutSent, count: want });
    if (sent < want) {
      this.udpOutSent += sent;
      this.blocked = true;
      this.opts.tun.onReadable(null);
      this.opts.udp.onWritable(() => {
        this.blocked = false;
        this.flushUdp();
        if (!this.blocked) this.opts.tun.onReadable(this.onTunReadable);
      });
      return;
    }
    this.udpOutCount = 0;
    this.udpOutSent = 0;
  }

  private flushTun(): void {
    if (this.tunOutCount === 0) return;
    // A full tun queue drops in the kernel, as for any interface; nothing to wait for.
    this.opts.tun.writeBatch(this.tunOut, { count: this.tunOutCount });
    this.tunOutCount = 0;
  }
}
