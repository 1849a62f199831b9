/**
 * What the data path needs of a tun device and a UDP socket, as interfaces (wireguard-go's
 * tun.Device and conn.Bind): Tun and UdpSocket implement them over the kernel, and tests
 * pass in-memory fakes so the daemons run without root.
 */
import type { BatchRange, PacketBatch } from './batch.js';
import type { IoError } from './errors.js';
import type { TunStats } from './tun.js';
import type { SendOptions, UdpStats } from './udp.js';

/** Readiness callbacks, level-triggered: cb runs while there is something to read. */
export interface Polled {
  onReadable(cb: (() => void) | null): void;
  /** cb runs once, when writes fit again after one took fewer slots than asked for. */
  onWritable(cb: (() => void) | null): void;
  /** cb gets an error that stopped polling for good (the tun's interface was deleted); without one it is thrown. */
  onError(cb: ((err: IoError) => void) | null): void;
  close(): void;
}

/** A layer-3 tun: one bare IP packet per slot. */
export interface TunDevice extends Polled {
  readonly name: string;
  /** Packets into consecutive slots at range.offset, lengths into b.lens; 0 when none waits. */
  readBatch(b: PacketBatch, range?: BatchRange): number;
  /** Writes slots with lens >= 0 from range.offset; returns the slots consumed. */
  writeBatch(b: PacketBatch, range?: BatchRange): number;
  readonly stats: TunStats;
}

/** A bound UDP socket: slot i goes to, or came from, the ENDPOINT_SIZE entry i of b.addrs (endpoint.ts). */
export interface UdpBind extends Polled {
  readonly port: number;
  recvBatch(b: PacketBatch, range?: BatchRange): number;
  sendBatch(b: PacketBatch, opts?: SendOptions): number;
  readonly stats: UdpStats;
}
