/**
 * AllowedIPs lookup throughput with 10,000 random prefixes per family.
 * Build with `npx tsc -p tsconfig.build.json`, run with `node dist/bench/allowedips.js`.
 */
import { AllowedIPs } from '../src/wireguard/allowedips.js';
import { prng } from '../test/helpers/prng.js';

const ENTRIES = 10_000;
const PEERS = 100;
const ADDRESSES = 1 << 16;
const LOOKUPS = 5_000_000;

function run(family: 'IPv4' | 'IPv6', rnd: () => number): void {
  const len = family === 'IPv4' ? 4 : 16;
  const [minBits, maxBits] = family === 'IPv4' ? [16, 32] : [32, 128];
  const randomAddress = (): Uint8Array => Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256));
  const peers = Array.from({ length: PEERS }, (_, i) => ({ id: i }));
  const table = new AllowedIPs<{ id: number }>();
  const prefixes: Uint8Array[] = [];
  while (table.size < ENTRIES) {
    const ip = randomAddress();
    prefixes.push(ip);
    table.insert({ ip, bits: minBits + Math.floor(rnd() * (maxBits - minBits + 1)) }, peers[table.size % PEERS]!);
  }

  // Half the addresses fall inside an inserted prefix (they differ only in the last byte).
  const buf = new Uint8Array(ADDRESSES * len);
  for (let i = 0; i < ADDRESSES; i++) {
    const addr = i % 2 === 0 ? Uint8Array.from(prefixes[Math.floor(rnd() * prefixes.length)]!) : randomAddress();
    if (i % 2 === 0) addr[len - 1] = Math.floor(rnd() * 256);
    buf.set(addr, i * len);
  }

  const lookup = family === 'IPv4' ? table.lookupV4.bind(table) : table.lookupV6.bind(table);
  const mask = ADDRESSES - 1;
  let hits = 0;
  for (let i = 0; i < LOOKUPS / 10; i++) if (lookup(buf, (i & mask) * len) !== undefined) hits++; // warm-up
  hits = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) if (lookup(buf, (i & mask) * len) !== undefined) hits++;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = (LOOKUPS / seconds / 1e6).toFixed(1);
  console.log(`${family}: ${ENTRIES} prefixes, ${rate}M lookups/s (${((hits / LOOKUPS) * 100).toFixed(0)}% matched)`);
}

const rnd = prng(1);
run('IPv4', rnd);
run('IPv6', rnd);
