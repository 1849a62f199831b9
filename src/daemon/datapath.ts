/**
 * The I/O shell around the sans-IO core, batch by batch and without copies:
 *   tun readBatch (packets at SLOT_HEADER) -> device.encryptBatch (in place) -> sendmmsg/GSO
 *   recvmmsg/GRO -> device.decryptBatch (in place) -> tun writeBatch (from SLOT_HEADER)
 * What the core emits outside a batch (handshakes, keepalives, control frames) goes through
 * a small batch of its own. When the UDP socket is full, tun reading pauses until it is
 * writable again (backpressure instead of drops or spinning).
 *
 * A handshake flood must not starve transport data (issue 12): a readiness handler returns
 * after BATCHES_PER_TURN batches (readiness is level-triggered: it fires again next turn), and
 * the handshake messages decryptBatch queued are handled on later turns (setImmediate), at most
 * HANDSHAKE_SLICE_MS per turn, so tun reads, timers and the status socket get every turn.
 *
 * Timers run when something is due, not on a fixed tick: one timeout, armed for the device's
 * earliest deadline and whatever the owner asks for (wakeAt), at most MAX_SLEEP_MS apart. An
 * idle tunnel wakes about once a second, like OpenVPN, instead of ten times.
 */
import type { BatchAead } from '../crypto/aead.js';
import { SLOT_HEADER } from '../crypto/aead.js';
import { MAX_PUSH_MTU } from '../control/limits.js';
import { createBatch, slotSizeFor, type PacketBatch } from '../io/batch.js';
import { ENDPOINT_SIZE, copyEndpoint, decodeEndpoint, encodeEndpoint, endpointEquals } from '../io/endpoint.js';
import type { TunDevice, UdpBind } from '../io/device.js';
import { IoError } from '../io/errors.js';
import { Tun } from '../io/tun.js';
import { UdpSocket, type UdpBindOptions } from '../io/udp.js';
import { TcpBind, type TcpBindOptions } from '../io/tcpbind.js';
import { MuxBind } from '../io/muxbind.js';
import { dataPathAead } from './aead.js';
import { Device, type DeviceEvent, type DeviceOutput } from '../wireguard/device.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import type { Peer } from '../wireguard/peer.js';
import { now, onClockAdvanced } from './clock.js';
import { DropReport } from './debug.js';
import type { Logger } from './log.js';

/** Where the data path gets its tun and UDP socket: the kernel's, or a test's fakes. */
export interface DataPathIo {
  openTun(name: string): TunDevice;
  openUdp(opts: UdpBindOptions): UdpBind;
}

const kernelIo: DataPathIo = { openTun: (name) => Tun.open({ name }), openUdp: (opts) => UdpSocket.open(opts) };

export interface DataPathOptions {
  tunName: string;
  /** Brings the new tun up (MTU, address) before any traffic flows. */
  configureTun: (name: string) => Promise<void>;
  udp: UdpBindOptions;
  /** A TCP listener or dialer next to the UDP socket: its connections are endpoints too (io/tcpbind.ts). */
  tcp?: TcpBindOptions;
  /** Default: the kernel's tun and UDP. */
  io?: DataPathIo;
  /** Told what an owner callback threw: the batch it was called from carries on without it. */
  log: Logger;
  privateKey: Uint8Array;
  mtu: number;
  /** Threads sharing the AEAD of large batches, Node's included (default 1: Node's alone). */
  workers?: number;
  forceUnderLoad?: boolean;
  /**
   * A decrypted IP packet (buf[offset..offset+length)) from peer: return true when the caller
   * took it (forwarded or refused); otherwise it goes to the tun.
   */
  onPacket?: (buf: Uint8Array, offset: number, length: number, peer: Peer) => boolean;
  onControl: (frame: Uint8Array, peer: Peer) => void;
  onEvent: (e: DeviceEvent) => void;
  /** Runs after the device's timers whenever timers run; returns the owner's next deadline (Infinity for none). */
  onTick?: (now: number) => number;
  /** The tun or the socket failed for good (the interface was deleted): logged, then told once; the daemon must exit. */
  onFatal?: () => void;
}

type PacketHandler = NonNullable<DataPathOptions['onPacket']>;

const BATCH = 64;

/** Slots sized once for the largest MTU the tun can get (a client's follows the push up to MAX_PUSH_MTU):
 * 4 x 64 slots of 9088 bytes are 2.3 MB of address space, of which only the bytes packets touch become resident. */
export const slotSize = (mtu: number): number => slotSizeFor(Math.max(mtu, MAX_PUSH_MTU));

/**
 * Batches a readiness handler takes per event-loop turn: 128 datagrams or packets. Under load
 * a packet waits in the socket or tun queue for the turn of the other direction to end (ping
 * replies and TCP ACKs behind a turn of data): 8 batches a turn cost 5.1-5.4 ms of ping under
 * 4 iperf3 streams, 2 batches 3.9-4.3 ms at the same 5 Gbit/s (1 batch: no better).
 */
export const BATCHES_PER_TURN = 2;
/** Handshake work per turn: at most this long, checked every HANDSHAKE_CHUNK messages. */
const HANDSHAKE_SLICE_MS = 1;
const HANDSHAKE_CHUNK = 8;
/** The longest the timers sleep: a backstop for owner state that changes without a wakeAt. */
const MAX_SLEEP_MS = 1000;
/** Tun packets are read where they get encrypted in place: behind room for the WireGuard header. */
const AT_SLOT_HEADER = { offset: SLOT_HEADER } as const;

export class DataPath implements DeviceOutput {
  readonly device: Device;
  /** Datagrams or packets dropped because an outgoing batch was full while the socket was blocked. */
  overflowDrops = 0;
  /** tun -> UDP: read, encrypted and sent in place. */
  private readonly outbound: PacketBatch<Peer>;
  /** UDP -> tun: received, decrypted and written in place. */
  private readonly inbound: PacketBatch<Peer>;
  /** Datagrams the core emits outside a batch. */
  private readonly udpOut: PacketBatch;
  private udpOutCount = 0;
  /** The outbound batch waiting for the socket: [first, end) still to send. */
  private pendingFirst = 0;
  private pendingEnd = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The turn that handles queued handshake messages, when one is scheduled. */
  private handshakeTurn: NodeJS.Immediate | null = null;
  /** When the armed timer runs (clock ms), Infinity when none is armed. */
  private wakeTime = Infinity;
  private readonly stopClockListener: () => void;
  /** Encoded peer entries of endpoints the device sends to (endpoints are immutable). */
  private readonly encoded = new WeakMap<Endpoint, Uint8Array>();
  /** The last sender decoded on receive, so a batch from one peer decodes its address once. */
  private readonly lastFromRaw = new Uint8Array(ENDPOINT_SIZE);
  private lastFrom: Endpoint | null = null;
  private readonly onPacket: PacketHandler | null;
  /** Throws so far per owner callback: only the first is logged in full. */
  private readonly ownerErrors = new Map<string, number>();
  private failed = false;
  private readonly drops: DropReport;

  /** Opens and configures the tun, opens the UDP socket and runs the data path over them; on failure nothing stays open. */
  static async open(opts: DataPathOptions): Promise<DataPath> {
    const io = opts.io ?? kernelIo;
    const tun = io.openTun(opts.tunName);
    let udp: UdpBind | null = null;
    try {
      await opts.configureTun(tun.name);
      udp = io.openUdp(opts.udp);
      const aead = dataPathAead(opts.workers);
      const tcp = opts.tcp ? await TcpBind.open({ maxFrame: slotSize(opts.mtu), ...opts.tcp }) : null;
      return new DataPath(tun, tcp ? new MuxBind(udp, tcp) : udp, tcp, aead, opts);
    } catch (err) {
      udp?.close();
      tun.close();
      throw err;
    }
  }

  private constructor(
    readonly tun: TunDevice,
    /** The UDP socket, or it and the TCP bind as one. */
    readonly udp: UdpBind,
    readonly tcp: TcpBind | null,
    readonly aead: BatchAead,
    private readonly opts: DataPathOptions,
  ) {
    const slot = slotSize(opts.mtu);
    this.outbound = createBatch<Peer>(BATCH, slot);
    this.inbound = createBatch<Peer>(BATCH, slot);
    this.udpOut = createBatch(BATCH, slot);
    this.device = new Device({ privateKey: opts.privateKey, output: this, aead, mtu: opts.mtu, forceUnderLoad: opts.forceUnderLoad ?? false });
    this.drops = new DropReport(this.allDrops, opts.log, now());
    const onPacket = opts.onPacket;
    this.onPacket = onPacket
      ? (buf, offset, length, peer) => {
          try {
            return onPacket(buf, offset, length, peer);
          } catch (err) {
            this.ownerThrew('onPacket', err, peer);
            return true; // dropped: where it should go is unknown
          }
        }
      : null;
    tun.onReadable(this.onTunReadable);
    udp.onReadable(this.onUdpReadable);
    tun.onError(this.fatal);
    udp.onError(this.fatal);
    // Deadlines armed on the old clock are due now (test hook).
    this.stopClockListener = onClockAdvanced(() => this.arm(-Infinity));
    this.arm(now() + MAX_SLEEP_MS);
  }

  /** Drops by reason: the device's, 'socket-full' (outgoing batch overflow) and the TCP bind's (tcp-*). */
  readonly allDrops = (): Record<string, number> => ({ ...this.device.drops, 'socket-full': this.overflowDrops, ...this.tcp?.drops });

  close(): void {
    this.stopClockListener();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.wakeTime = -Infinity; // nothing arms it again
    if (this.handshakeTurn) clearImmediate(this.handshakeTurn);
    this.handshakeTurn = null;
    this.tun.close();
    this.udp.close();
  }

  /** Sends what the device emitted outside the batches (control frames, handshakes). */
  flush(): void {
    this.flushSingles();
    this.armDevice();
  }

  /** Runs the timers no later than `at` (clock ms): for the owner's deadlines set between runs. */
  wakeAt(at: number): void {
    if (at < this.wakeTime) this.arm(at);
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.wakeTime = at;
    this.timer = setTimeout(this.runTimers, Math.max(0, Math.ceil(at - now())));
  }

  /** The device sets its deadlines while it handles packets: a cheap check after each batch. */
  private armDevice(): void {
    this.wakeAt(this.device.nextTimerAt());
  }

  private readonly runTimers = (): void => {
    this.timer = null;
    this.wakeTime = Infinity;
    const t = now();
    let ownerNext = Infinity;
    try {
      this.device.tick(t);
      this.drops.poll(t);
      try {
        ownerNext = this.opts.onTick?.(t) ?? Infinity;
      } catch (err) {
        this.ownerThrew('onTick', err);
      }
      this.flush();
    } finally {
      // Re-armed even when the device's timers threw; never at a past deadline: no spinning.
      this.wakeAt(Math.max(t + 1, Math.min(ownerNext, t + MAX_SLEEP_MS)));
    }
  };

  // ---- DeviceOutput: what the core emits one at a time ----

  sendDatagram(data: Uint8Array, to: Endpoint): void {
    const b = this.udpOut;
    if (this.udpOutCount === b.slots) this.flushSingles();
    if (this.udpOutCount === b.slots || data.length > b.slotSize) {
      this.overflowDrops++;
      return;
    }
    const i = this.udpOutCount++;
    b.buf.set(data, i * b.slotSize);
    b.lens[i] = data.length;
    b.addrs.set(this.entryFor(to), i * ENDPOINT_SIZE);
  }

  // The core calls these in the middle of a batch: what the owner throws must not unwind it.

  deliverControl(frame: Uint8Array, peer: Peer): void {
    try {
      this.opts.onControl(frame, peer);
    } catch (err) {
      this.ownerThrew('onControl', err, peer);
    }
  }

  event(e: DeviceEvent): void {
    // The core authenticated a peer on this TCP connection: no longer held to a pending connection's limits.
    const on = e.type === 'endpoint-changed' ? e.endpoint : e.type === 'handshake-responded' ? e.peer.endpoint : null;
    if (on?.transport) this.tcp?.confirm(on);
    try {
      this.opts.onEvent(e);
    } catch (err) {
      this.ownerThrew(`onEvent(${e.type})`, err);
    }
  }

  /**
   * A daemon bug: the packet, frame or event it was handling is dropped. The first throw of
   * each callback is logged with its stack and context, later ones at debug level (a bug hit by
   * every packet would otherwise flood the log).
   */
  private ownerThrew(callback: string, err: unknown, peer?: Peer): void {
    const n = (this.ownerErrors.get(callback) ?? 0) + 1;
    this.ownerErrors.set(callback, n);
    const from = peer?.endpoint ? ` (peer at ${formatEndpoint(peer.endpoint)})` : '';
    if (n > 1) return this.opts.log.debug(`${callback} threw again${from}, ${n} times so far: ${String(err)}`);
    const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.opts.log.error(`internal error in ${callback}${from} (please report; later ones are logged at debug level): ${what}`);
  }

  private readonly fatal = (err: IoError): void => {
    if (this.failed) return;
    this.failed = true;
    // Also the first of what repeats per packet until the daemon is down: one identical line, counted by the Logger.
    this.opts.log.error(`${err.message}: exiting; the supervisor restarts tvpn`);
    this.opts.onFatal?.();
  };

  // ---- the batch loops ----

  private readonly onTunReadable = (): void => {
    const b = this.outbound;
    const device = this.device;
    for (let batches = 0; batches < BATCHES_PER_TURN; batches++) {
      const n = this.tun.readBatch(b, AT_SLOT_HEADER);
      if (n === 0) break;
      device.encryptBatch(b, n, now());
      const peers = b.peers;
      for (let i = 0; i < n; i++) {
        const endpoint = b.lens[i]! >= 0 ? peers[i]?.endpoint : null;
        if (endpoint) b.addrs.set(this.entryFor(endpoint), i * ENDPOINT_SIZE);
        else b.lens[i] = -1;
      }
      this.flushSingles();
      if (!this.sendOutbound(0, n) || n < b.slots) break;
    }
    this.armDevice();
  };

  /** Sends outbound slots [first, end); false (and tun reading paused) when the socket is full. */
  private sendOutbound(first: number, end: number): boolean {
    const sent = this.udp.sendBatch(this.outbound, { first, count: end - first });
    if (first + sent === end) return true;
    this.pendingFirst = first + sent;
    this.pendingEnd = end;
    this.tun.onReadable(null);
    this.udp.onWritable(() => {
      if (this.sendOutbound(this.pendingFirst, this.pendingEnd)) {
        this.tun.onReadable(this.onTunReadable);
      }
    });
    return false;
  }

  private readonly onUdpReadable = (): void => {
    const b = this.inbound;
    const device = this.device;
    const onPacket = this.onPacket;
    for (let batches = 0; batches < BATCHES_PER_TURN; batches++) {
      const n = this.udp.recvBatch(b);
      if (n === 0) break;
      device.decryptBatch(b, n, this.sender, now());
      let forTun = 0;
      const peers = b.peers;
      for (let i = 0; i < n; i++) {
        const len = b.lens[i]!;
        if (len < 0) continue;
        if (onPacket?.(b.buf, i * b.slotSize + SLOT_HEADER, len, peers[i]!)) b.lens[i] = -1;
        else forTun++;
      }
      // Slots with lens -1 (handshakes, keepalives, drops) are skipped by the write; a batch
      // of a flood's handshake messages has none to write.
      if (forTun > 0) {
        try {
          this.tun.writeBatch(b, { count: n, offset: SLOT_HEADER });
        } catch (err) {
          if (!(err instanceof IoError)) throw err;
          return this.fatal(err); // the tun is gone: the daemon is stopping
        }
      }
      this.flush();
      if (n < b.slots) break;
    }
    if (device.pendingHandshakes > 0) this.handshakeTurn ??= setImmediate(this.runHandshakes);
  };

  /** Queued handshake messages for up to HANDSHAKE_SLICE_MS; what is left waits for a later turn. */
  private readonly runHandshakes = (): void => {
    this.handshakeTurn = null;
    const start = now();
    let left: number;
    do left = this.device.processHandshakes(now(), HANDSHAKE_CHUNK);
    while (left > 0 && now() - start < HANDSHAKE_SLICE_MS);
    this.flush();
    if (left > 0) this.handshakeTurn = setImmediate(this.runHandshakes);
  };

  /** The sender of inbound slot i, decoded once per run of slots from the same address. */
  private readonly sender = (i: number): Endpoint | null => {
    const addrs = this.inbound.addrs;
    if (this.lastFrom && endpointEquals(addrs, i, this.lastFromRaw, 0)) return this.lastFrom;
    const ep = decodeEndpoint(addrs, i);
    if (!ep) return null;
    copyEndpoint(addrs, i, this.lastFromRaw, 0);
    this.lastFrom = ep;
    return ep;
  };

  private entryFor(to: Endpoint): Uint8Array {
    let entry = this.encoded.get(to);
    if (!entry) {
      entry = new Uint8Array(ENDPOINT_SIZE);
      encodeEndpoint(to, entry, 0);
      this.encoded.set(to, entry);
    }
    return entry;
  }

  private flushSingles(): void {
    if (this.udpOutCount === 0) return;
    // Rare and small (handshakes, keepalives, control): a full socket drops them like a lost datagram.
    this.overflowDrops += this.udpOutCount - this.udp.sendBatch(this.udpOut, { count: this.udpOutCount });
    this.udpOutCount = 0;
  }
}
