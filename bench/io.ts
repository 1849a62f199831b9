/**
 * I/O benchmark: batched TUN read/write, UDP sendmmsg/recvmmsg, UDP GSO send, UDP GRO
 * receive, and the three AEAD backends at 1420-byte packets (ratios against
 * @noble/ciphers measured in the same run). Prints a table.
 *
 *   npm run bench:io            (after npm install / npm run build; needs root)
 *
 * It makes its own tvio-bench-* namespace pair (veth, 198.18.0.0/15), runs load generators
 * inside with `ip netns exec`, and removes everything on exit, Ctrl-C included. Bounded in
 * time: about 30 s in all. `node dist/bench/io.js gen ...` is the generator's entry point.
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { SLOT_HEADER, TAG_LENGTH } from '../src/crypto/aead.js';
import { AEAD_BACKENDS, createAead } from '../src/crypto/backends.js';
import { createBatch, type PacketBatch } from '../src/io/batch.js';
import { encodeEndpoint } from '../src/io/endpoint.js';
import { type Endpoint, parseEndpoint } from '../src/net/endpoint.js';
import { addAddress, configureLink } from '../src/io/netconf.js';
import { Tun } from '../src/io/tun.js';
import { UdpSocket } from '../src/io/udp.js';
import { cleanupStale, createNetnsPair, type NetnsPair } from '../src/lab/netns.js';
import { buildUdpPacket } from '../test/helpers/packets.js';
import { errorMessage } from '../src/errors.js';

const BATCH = 64;
const SLOT = 2048;
const TUN_PACKET = 1420; // the tunnel MTU: what tvpn reads from and writes to its TUN
const UDP_PAYLOAD = TUN_PACKET + 32; // a WireGuard transport message carrying it
const MEASURE_MS = 2000;
const WARMUP_MS = 300;

interface Row {
  test: string;
  pps: number;
  bytes: number; // per packet, for Gbit/s; 0: not meaningful
  note: string;
}

const rows: Row[] = [];

function now(): number {
  return performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Fills every slot of b with the same datagram of `size` bytes to `dst`. */
function fillUdp(b: PacketBatch, size: number, dst: Endpoint): void {
  for (let i = 0; i < b.slots; i++) {
    b.buf.fill(i & 0xff, i * b.slotSize, i * b.slotSize + size);
    b.lens[i] = size;
    encodeEndpoint(dst, b.addrs, i);
  }
}

/** Sends as fast as the socket takes them until deadline (waits on EAGAIN); resolves with the count. */
function sendFlat(sock: UdpSocket, b: PacketBatch, gso: boolean, ms: number): Promise<number> {
  return new Promise((resolve) => {
    const deadline = now() + ms;
    let sent = 0;
    const run = (): void => {
      while (now() < deadline) {
        const n = sock.sendBatch(b, { gso });
        sent += n;
        if (n < b.slots) {
          sock.onWritable(run);
          return;
        }
      }
      resolve(sent);
    };
    run();
  });
}

/** Generator child: `gen <ip:port> <size> <ms> <gso 0|1>` sends to ip:port until time is up. */
async function generator(args: readonly string[]): Promise<void> {
  const [target, size, ms, gso] = args;
  const dst = parseEndpoint(target ?? '');
  const sock = UdpSocket.open({ address: dst.ip.includes(':') ? '::' : '0.0.0.0' });
  const b = createBatch(BATCH, SLOT);
  fillUdp(b, Number(size), dst);
  await sendFlat(sock, b, gso === '1', Number(ms));
  sock.close();
}

/** Counts packets a receive callback drains over MEASURE_MS, after a warm-up. */
async function countReceived(subscribe: (count: (n: number) => void) => void, stop: () => void): Promise<number> {
  let total = 0;
  subscribe((n) => {
    total += n;
  });
  await sleep(WARMUP_MS);
  const start = total;
  const t0 = now();
  await sleep(MEASURE_MS);
  const pps = ((total - start) * 1000) / (now() - t0);
  stop();
  return pps;
}

function startGenerator(pair: NetnsPair, target: Endpoint, size: number, gso: boolean): void {
  const ms = WARMUP_MS + MEASURE_MS + 500;
  const child = pair.a.spawn(process.execPath, [fileURLToPath(import.meta.url), 'gen', `${target.ip}:${target.port}`, String(size), String(ms), gso ? '1' : '0'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.on('error', (err) => process.stderr.write(`generator: ${err.message}\n`));
}

async function benchTun(pair: NetnsPair): Promise<void> {
  // Write: IPv4/UDP packets to a local socket behind the device that never reads (the
  // kernel drops them at its full buffer after the whole receive path).
  const tun = pair.a.run(() => Tun.open({ name: 'tvio-bench' }));
  await addAddress(tun.name, '10.99.0.1/24', { netns: pair.a.name });
  await configureLink(tun.name, { mtu: TUN_PACKET, txqueuelen: 1000, up: true }, { netns: pair.a.name });
  const sink = pair.a.run(() => UdpSocket.open({ address: '10.99.0.1', bufferBytes: 0 }));
  const pkt = buildUdpPacket({ src: '10.99.0.2', dst: '10.99.0.1', sport: 9, dport: sink.port, payload: new Uint8Array(TUN_PACKET - 28) });
  const out = createBatch(BATCH, SLOT);
  for (let i = 0; i < BATCH; i++) {
    out.buf.set(pkt, i * SLOT + SLOT_HEADER);
    out.lens[i] = pkt.length;
  }
  let written = 0;
  const t0 = now();
  while (now() - t0 < MEASURE_MS) written += tun.writeBatch(out, { offset: SLOT_HEADER });
  rows.push({ test: 'tun write, batch 64', pps: (written * 1000) / (now() - t0), bytes: TUN_PACKET, note: 'into the stack, to a local UDP socket' });
  sink.close();

  // Read: a generator in the same namespace sends datagrams routed through the device.
  const inb = createBatch(BATCH, SLOT);
  startGenerator(pair, { ip: '10.99.0.2', port: 9 }, TUN_PACKET - 28, true);
  const pps = await countReceived(
    (count) =>
      tun.onReadable(() => {
        let n;
        do {
          n = tun.readBatch(inb, { offset: SLOT_HEADER });
          count(n);
        } while (n === inb.slots);
      }),
    () => tun.onReadable(null),
  );
  rows.push({ test: 'tun read, batch 64', pps, bytes: TUN_PACKET, note: 'generator: UDP sends routed through it, other core' });
  tun.close();
}

async function benchUdpSend(pair: NetnsPair): Promise<void> {
  const a = pair.a.run(() => UdpSocket.open({ address: pair.a.addr }));
  const sink = pair.b.run(() => UdpSocket.open({ address: pair.b.addr, bufferBytes: 0 }));
  const b = createBatch(BATCH, SLOT);
  fillUdp(b, UDP_PAYLOAD, { ip: pair.b.addr, port: sink.port });
  for (const gso of [false, true]) {
    const sent = await sendFlat(a, b, gso, MEASURE_MS);
    rows.push({
      test: gso ? 'UDP GSO send, batch 64' : 'UDP sendmmsg, batch 64',
      pps: (sent * 1000) / MEASURE_MS,
      bytes: UDP_PAYLOAD,
      note: `${UDP_PAYLOAD}-byte datagrams over veth${gso ? `, GSO ${a.gso ? 'on' : 'refused'}` : ''}`,
    });
  }
  a.close();
  sink.close();
}

async function benchUdpRecv(pair: NetnsPair): Promise<void> {
  for (const gro of [false, true]) {
    const sock = pair.b.run(() => UdpSocket.open({ address: pair.b.addr, gro }));
    const inb = createBatch(BATCH, SLOT);
    startGenerator(pair, { ip: pair.b.addr, port: sock.port }, UDP_PAYLOAD, true);
    const pps = await countReceived(
      (count) =>
        sock.onReadable(() => {
          let n;
          do {
            n = sock.recvBatch(inb);
            count(n);
          } while (n === inb.slots);
        }),
      () => sock.onReadable(null),
    );
    rows.push({
      test: gro ? 'UDP GRO receive, batch 64' : 'UDP recvmmsg, batch 64',
      pps,
      bytes: UDP_PAYLOAD,
      note: `generator: GSO sends, other core${gro && !sock.gro ? '; GRO unavailable' : ''}`,
    });
    sock.close();
    await sleep(WARMUP_MS + 600); // let the generator finish
  }
}

/** Times only `op` (seal or open), undoing it with `undo` between rounds, for ~ms. */
function timeAead(op: () => void, undo: () => void, ms: number): number {
  let spent = 0;
  let rounds = 0;
  const wallEnd = now() + ms * 3;
  while (spent < ms && now() < wallEnd) {
    const t = now();
    op();
    spent += now() - t;
    rounds++;
    undo();
  }
  return (rounds * BATCH * 1000) / spent;
}

function benchAead(): void {
  const key = new Uint8Array(32).fill(7);
  const results = new Map<string, number>();
  for (const name of AEAD_BACKENDS) {
    const aead = createAead(name);
    const b = createBatch(BATCH, SLOT);
    for (let i = 0; i < BATCH; i++) {
      b.buf.fill(i, i * SLOT + SLOT_HEADER, i * SLOT + SLOT_HEADER + TUN_PACKET);
      b.buf[i * SLOT + 8] = i; // distinct counters
    }
    const plain = (): void => void b.lens.fill(TUN_PACKET);
    const sealed = (): void => void b.lens.fill(TUN_PACKET + TAG_LENGTH);
    const ms = name === 'noble' ? 1000 : 600;
    plain();
    results.set(
      `seal ${name}`,
      timeAead(
        () => aead.sealSlots(key, b.buf, SLOT, 0, BATCH, b.lens),
        () => (aead.openSlots(key, b.buf, SLOT, 0, BATCH, b.lens), plain()),
        ms,
      ),
    );
    aead.sealSlots(key, b.buf, SLOT, 0, BATCH, b.lens);
    results.set(
      `open ${name}`,
      timeAead(
        () => {
          if (aead.openSlots(key, b.buf, SLOT, 0, BATCH, b.lens) !== BATCH) throw new Error(`${name} failed to open its own packets`);
        },
        () => (aead.sealSlots(key, b.buf, SLOT, 0, BATCH, b.lens), sealed()),
        ms,
      ),
    );
  }
  for (const op of ['seal', 'open']) {
    const base = results.get(`${op} noble`) ?? 1;
    for (const name of AEAD_BACKENDS) {
      const pps = results.get(`${op} ${name}`) ?? 0;
      rows.push({ test: `AEAD ${op}, ${name}`, pps, bytes: TUN_PACKET, note: `${(pps / base).toFixed(1)}x noble, one core` });
    }
  }
}

function printTable(): void {
  const fmt = (r: Row): string[] => [
    r.test,
    Math.round(r.pps).toLocaleString('en-US'),
    r.bytes ? ((r.pps * r.bytes * 8) / 1e9).toFixed(2) : '',
    r.note,
  ];
  const table = [['test', 'packets/s', 'Gbit/s', 'notes'], ...rows.map(fmt)];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
  const line = (row: string[]): string => `| ${row.map((cell, c) => (c === 1 || c === 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ')} |`;
  console.log(`tvpn I/O benchmark: Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), batches of ${BATCH}`);
  console.log(line(table[0]!));
  console.log(`|${widths.map((w, c) => (c === 1 || c === 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const row of table.slice(1)) console.log(line(row));
}

async function main(): Promise<void> {
  if (process.argv[2] === 'gen') {
    await generator(process.argv.slice(3));
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench:io needs root (network namespaces and TUN devices)');
    process.exit(1);
  }
  // Ctrl-C or a kill: exit through the harness's exit hook, which removes the namespaces.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  setTimeout(() => {
    console.error('bench:io: over its 90 s time limit, stopping');
    process.exit(1);
  }, 90_000).unref();

  await cleanupStale('tvio-bench');
  benchAead();
  const pair = await createNetnsPair({ prefix: 'tvio-bench', index: 1, ipv6: false });
  try {
    await benchTun(pair);
    await benchUdpSend(pair);
    await benchUdpRecv(pair);
  } finally {
    await pair.cleanup();
  }
  printTable();
}

main().catch((err: unknown) => {
  console.error(`bench:io: ${errorMessage(err)}`);
  process.exit(1);
});
