/**
 * Loads the native addon (native/build/Release/tvpn.node, built by `npm install`) and
 * declares its interface. A leaf: it imports nothing from the project, so src/io and
 * src/crypto both use it without depending on each other. Everything here is low level; use
 * the wrappers (Tun, UdpSocket, runInNetns in src/io, the native AEAD backend in src/crypto).
 *
 * Conventions of the addon (see native/napi_util.h): bad arguments throw TypeError/RangeError;
 * opening things throws an Error with errno/code/syscall (turned into one-line messages by
 * src/io/errors.ts); batch calls return a count >= 0 or -errno and never throw for I/O
 * conditions. Batches are fixed-size slots in one buffer, see src/io/batch.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** poll() event bits. */
export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;

/**
 * Readiness callback. events: POLL_READABLE | POLL_WRITABLE bits that are ready. errno != 0
 * means polling stopped for good with that error (events is then 0).
 */
export type PollCallback = (events: number, errno: number) => void;

export interface NativeHandle {
  /** The file descriptor, -1 once closed. */
  readonly fd: number;
  /** Watches events (0 stops watching) and calls cb on the event loop when they are ready. */
  poll(events: number, cb: PollCallback): void;
  /** Stops polling and closes the fd; idempotent. */
  close(): void;
}

export interface NativeTun extends NativeHandle {
  readonly name: string;
  /** Packets read that did not fit their slot (dropped: lens[i] -1). */
  readonly oversized: number;
  /** What TUNSETOFFLOAD enabled: 0 nothing, 1 TSO, 2 TSO and USO (Linux 6.2+). */
  readonly offload: number;
  /** GSO super-packets read (each cut into segments). */
  readonly superPackets: number;
  /** Segments of a super-packet wait for the next read (the last batch filled up before its end). */
  readonly gsoPending: boolean;
  /** Packets read into slots first.. at `offset` (0 when none is ready), or -errno. */
  read(buf: Uint8Array, slotSize: number, offset: number, lens: Int32Array, first: number, count: number): number;
  /** Slots consumed (written, or skipped for lens[i] < 0), or -errno for slot `first`. */
  write(buf: Uint8Array, slotSize: number, offset: number, lens: Int32Array, first: number, count: number): number;
}

export interface NativeUdp extends NativeHandle {
  /** The bound local port. */
  readonly port: number;
  /** UDP_GRO is on (receives split coalesced datagrams back into slots). */
  readonly gro: boolean;
  /** UDP_SEGMENT still usable (false once the kernel refused it). */
  readonly gso: boolean;
  /** Segments of a coalesced datagram received but not handed out yet. */
  readonly groPending: boolean;
  /** Pending socket errors (ICMP errors on a connected socket) read and cleared so far. */
  readonly socketErrors: number;
  /** errno of the last one, 0 if none. */
  readonly lastSocketError: number;
  /** Datagrams (or GRO segments) received that did not fit their slot (dropped: lens[i] -1). */
  readonly oversized: number;
  /** [receive, send] buffer sizes as the kernel reports them. */
  bufferSizes(): [number, number];
  /** Fixes the peer to entry `index` of addrs; entries of family 0 then send to it. */
  connect(addrs: Uint8Array, index: number): void;
  /** Datagrams received into slots first.. with senders in addrs (0 when none is ready), or -errno. */
  recv(buf: Uint8Array, slotSize: number, offset: number, lens: Int32Array, addrs: Uint8Array, first: number, count: number): number;
  /** Slots consumed (sent, or skipped for lens[i] < 0), or -errno for slot `first`. */
  send(
    buf: Uint8Array,
    slotSize: number,
    offset: number,
    lens: Int32Array,
    addrs: Uint8Array,
    first: number,
    count: number,
    gso: boolean,
  ): number;
}

/** The addon's constants (native/constants.h) that TypeScript mirrors. */
export interface AddonConstants {
  /** WireGuard transport header in front of each AEAD payload in a slot. */
  readonly SLOT_HEADER: number;
  /** Poly1305 tag. */
  readonly TAG_LENGTH: number;
  /** One UDP peer entry (src/io/endpoint.ts). */
  readonly ENDPOINT_SIZE: number;
  /** Largest slotSize a batch call takes. */
  readonly MAX_SLOT_SIZE: number;
  /** Datagrams one UDP GSO send carries at most. */
  readonly GSO_MAX_SEGMENTS: number;
  /** Bytes one UDP GSO send carries at most. */
  readonly GSO_MAX_BYTES: number;
}

export interface NativeAddon extends AddonConstants {
  /** Opens /dev/net/tun and attaches to (or creates) the named TUN device; "" lets the kernel name it. */
  openTun(name: string, multiQueue: boolean, offload: boolean): NativeTun;
  /** Opens a non-blocking UDP socket bound to the 20-byte endpoint entry `local`. */
  openUdp(local: Uint8Array, bufferBytes: number, v6Only: boolean, gro: boolean): NativeUdp;
  /** The BatchAead contract of src/crypto/aead.ts. */
  aeadRuns(seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, runs: Int32Array, keys: Uint8Array, nruns: number): number;
  /** Threads besides the caller that share large aeadRuns batches from now on (0..63). */
  aeadThreads(threads: number): void;
  /**
   * What a tun write hands the kernel for the slots from `first`: [slots, bytes], that many
   * slots as one write of `bytes` (virtio_net_hdr, then the packet) copied into out. For tests.
   */
  tcpCoalesce(buf: Uint8Array, slotSize: number, offset: number, lens: Int32Array, first: number, count: number, out: Uint8Array): [number, number];
  /**
   * What a tun read makes of `packet` (virtio_net_hdr, then the packet as the kernel hands it
   * over) in slots from `first`: [slots, left], left being the payload bytes that did not fit
   * (a tun read keeps them for its next call). For tests.
   */
  gsoSplit(buf: Uint8Array, slotSize: number, offset: number, lens: Int32Array, first: number, count: number, packet: Uint8Array): [number, number];
  /** Moves the calling thread into the namespace at path; returns a token for netnsRestore. */
  netnsEnter(path: string): number;
  netnsRestore(token: number): void;
  /** SO_PEERCRED of a connected unix socket: the peer's ids when it connected, as this process sees them. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
}

/** The directory holding tvpn's package.json, found from this module (src/addon or dist/src/addon). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'tvpn') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('tvpn: cannot find the package root (package.json named "tvpn") above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

const ADDON_RELATIVE_PATH = 'native/build/Release/tvpn.node';

let addon: NativeAddon | undefined;

function load(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  const path = join(root, ADDON_RELATIVE_PATH);
  if (!existsSync(path)) throw new Error('tvpn native addon not built: run npm install (needs python3, make, g++)');
  try {
    addon = createRequire(join(root, 'package.json'))(path) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`tvpn native addon ${path} failed to load (${why}): rebuild it with npm run build`);
  }
  return addon;
}

/**
 * Throws unless each of the caller's constants equals the addon's: an addon built from
 * other sources would read and write slots with another layout.
 */
export function checkAddonConstants(loaded: Partial<AddonConstants>, expected: Partial<AddonConstants>): void {
  const differ = (Object.keys(expected) as (keyof AddonConstants)[])
    .filter((name) => loaded[name] !== expected[name])
    .map((name) => `${name} ${loaded[name]} != ${expected[name]}`);
  if (differ.length > 0) throw new Error(`tvpn: native addon built from other sources (${differ.join(', ')}): run npm run build`);
}

/**
 * The addon, loaded on first use, with the caller's mirrored constants checked against it.
 * Throws a clear one-line error when it has not been built, does not load or is stale.
 */
export function loadAddon(expected: Partial<AddonConstants>): NativeAddon {
  const loaded = load();
  checkAddonConstants(loaded, expected);
  return loaded;
}

/** Whether the addon loads (for choosing a fallback, e.g. an AEAD backend). */
export function addonAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}
