/**
 * The server's cost per flood message, in this process on one core (no I/O): type-1 messages
 * of 148 bytes with random contents and a valid mac1, as test/integration/fixtures/
 * flood-handshakes.mjs sends them, fed through decryptBatch in receive batches of 64 and
 * processHandshakes after every 2 batches as DataPath feeds them (a backlog of up to 128), with
 * the default under-load rule, and answered into a no-op output.
 * From one source (the integration test's attacker) and from 4,096 (a spread or spoofed flood).
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/flood.js
 */
import { randomBytes } from 'node:crypto';
import { CookieGenerator } from '../src/wireguard/cookie.js';
import { generatePrivateKey } from '../src/config/keys.js';
import { bestAead } from '../src/crypto/backends.js';
import { createBatch } from '../src/io/batch.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { Device } from '../src/wireguard/device.js';
import type { Peer } from '../src/wireguard/peer.js';

const MESSAGES = 200 * 1024;
const BATCH = 64;

function floodMessages(serverPublicKey: Uint8Array, count: number): Uint8Array[] {
  const macs = new CookieGenerator(serverPublicKey); // mac1 valid, mac2 zero: it holds no cookie
  return Array.from({ length: count }, () => {
    const m = new Uint8Array(randomBytes(148));
    m.set([1, 0, 0, 0]);
    macs.addMacs(m, 0);
    return m;
  });
}

/** µs per flood message from `sources` distinct addresses, and how many replies went out. */
function run(sources: number): { us: number; replies: number } {
  let replies = 0;
  const device = new Device({
    privateKey: generatePrivateKey(),
    aead: bestAead(),
    output: { sendDatagram: () => void replies++, deliverControl: () => undefined },
  });
  const pool = floodMessages(device.publicKey, 1024);
  const from: Endpoint[] = Array.from({ length: sources }, (_, i) => ({ ip: `198.18.${42 + (i >> 8)}.${i & 255}`, port: 40000 }));
  const b = createBatch<Peer>(BATCH, 2048);
  let sent = 0;
  const feed = (n: number, t: number): void => {
    for (let done = 0; done < n; done += BATCH) {
      for (let i = 0; i < BATCH; i++) {
        const m = pool[(sent + i) % pool.length]!;
        b.buf.set(m, i * b.slotSize);
        b.lens[i] = m.length;
      }
      const base = sent;
      device.decryptBatch(b, BATCH, (i) => from[(base + i) % sources]!, t);
      sent += BATCH;
      if (sent % (BATCH * 2) === 0) device.processHandshakes(t, Infinity);
    }
  };
  feed(20 * 1024, 0); // JIT warm-up
  replies = 0;
  const t0 = performance.now();
  for (let done = 0; done < MESSAGES; done += BATCH * 16) feed(BATCH * 16, performance.now() - t0 + 1000);
  return { us: ((performance.now() - t0) * 1000) / MESSAGES, replies };
}

for (const sources of [1, 4096]) {
  const r = run(sources);
  console.log(`flood from ${sources} source(s): ${r.us.toFixed(2)} µs per message, ${r.replies} replies to ${MESSAGES} messages`);
}
