/**
 * Issue 12.1: a handshake flood with a valid mac1 must not take established sessions down.
 * Real processes in three namespaces; the attacker floods the server's UDP port from its
 * own host, 20,000 type-1 messages/s for 30 s (bounded: 600,000 messages).
 *
 *   client ns (b) ── veth 198.18.41.0/24 ── server ns (a) ── veth 198.18.42.0/24 ── attacker ns (c)
 *
 * Read off the one flood, in phases: an established client's ping loss and `tvpn show`'s
 * answer time, then a TCP transfer's rate against the same transfer before the flood, then
 * a client restarted mid-flood; the server's RSS throughout and after; the attacker's replies.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { createNetns, createNetnsPair, deleteNetns, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, ROOT, pings, startProc, startTvpn, stopProc, tcpTransfer, until, type Proc } from '../helpers/tvpn.js';
import { sleep } from '../helpers/wait.js';

const RATE = 20_000;
const SECONDS = 30;
const TRANSFER = 300 * 1024 * 1024;

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Sends `count` pings 100 ms apart; the loss in percent. */
async function pingLoss(ns: Netns, to: string, count: number): Promise<number> {
  const r = await ns.exec('ping', ['-q', '-c', String(count), '-i', '0.1', '-W', '1', to], { timeoutMs: count * 100 + 10_000 }).catch((e: { stdout?: string }) => e);
  const m = /([\d.]+)% packet loss/.exec(String((r as { stdout?: string }).stdout ?? ''));
  if (!m) throw new Error(`no ping summary: ${JSON.stringify(r)}`);
  return Number(m[1]);
}

async function timedTransfer(from: Netns, to: Netns, host: string): Promise<number> {
  const t0 = Date.now();
  const { sent, received } = await tcpTransfer({ to, host, port: 5301, from, bytes: TRANSFER });
  expect(received).toEqual(sent);
  return (TRANSFER * 8) / ((Date.now() - t0) / 1000) / 1e6; // Mbit/s, process start-up included
}

describeRoot('handshake flood (valid mac1) against a running server', () => {
  let pair: NetnsPair;
  let attacker: Netns;
  let dir: string;
  let server: Proc;
  let client: Proc;
  const keys = { server: generatePrivateKey(), client: generatePrivateKey() };
  const serverPub = encodeKey(publicKeyOf(keys.server));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-flood-'));
    writeKeyFile(join(dir, 'server.key'), keys.server);
    writeKeyFile(join(dir, 'client.key'), keys.client);
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: 10.9.0.1/24 }\nprivate_key_file: server.key\nstate_dir: ${join(dir, 'state')}\n` +
        `push: { keepalive: 5 }\nclients:\n  - { name: victim, public_key: ${encodeKey(publicKeyOf(keys.client))} }\n`,
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: '198.18.41.1:51820', public_key: ${serverPub} }\nprivate_key_file: client.key\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvflood', index: 41, ipv6: false });
    attacker = await createNetns('tvflood', '-c');
    await pair.a.ip(['link', 'add', 'veth-c', 'type', 'veth', 'peer', 'name', 'veth-s', 'netns', attacker.name]);
    await pair.a.ip(['-batch', '-'], { input: 'addr add 198.18.42.1/24 dev veth-c\nlink set veth-c up\n' });
    await attacker.ip(['-batch', '-'], { input: 'addr add 198.18.42.2/24 dev veth-s\nlink set veth-s up\n' });
    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    await until('server up', () => server.log().includes('listening on'));
    client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
    await until('client configured', () => client.log().includes('config 1 applied'));
  }, 60_000);

  afterAll(async () => {
    for (const d of [client, server]) if (d) await stopProc(d);
    if (attacker) await deleteNetns(attacker);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('established sessions, new clients, tvpn show and memory hold; the attacker only ever gets cookie replies', async () => {
    expect(await pings(pair.b, '10.9.0.1')).toBe(true);
    const before = await timedTransfer(pair.b, pair.a, '10.9.0.1');
    await sleep(1000);
    const rssBase = rssMb(server.child.pid!);

    const flood = startProc(attacker, process.execPath, [join(ROOT, 'test/integration/fixtures/flood-handshakes.mjs'), '198.18.42.1', '51820', serverPub, String(RATE), String(SECONDS)]);
    let rssPeak = rssBase;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(server.child.pid!))), 500);
    try {
      await sleep(1000); // the flood is on

      // Phase 1 (~10 s): ping loss of the established client, and `tvpn show` answers.
      const showTimes: number[] = [];
      const shows = (async () => {
        for (let i = 0; i < 5; i++) {
          const t0 = Date.now();
          const answered = await pair.a.exec(process.execPath, [BIN, 'show', '--json'], { timeoutMs: 5000 }).then(() => true, () => false);
          showTimes.push(answered ? Date.now() - t0 : Infinity);
          await sleep(1000);
        }
      })();
      const loss = await pingLoss(pair.b, '10.9.0.1', 100);
      await shows;

      // Phase 2: a TCP transfer against the same transfer without the flood.
      const during = await timedTransfer(pair.b, pair.a, '10.9.0.1');

      // Phase 3: the client restarts mid-flood and must have a working tunnel within 5 s.
      await stopProc(client);
      const t0 = Date.now();
      client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
      const reconnected = await until('ping through the restarted client', () => client.log().includes('config 1 applied') && pings(pair.b, '10.9.0.1', 1), 15_000).then(
        () => true,
        () => false,
      );
      const reconnectMs = reconnected ? Date.now() - t0 : Infinity;

      const result = JSON.parse(await until('flood end', () => flood.log().split('\n').find((l) => l.startsWith('{')), (SECONDS + 15) * 1000)) as {
        sent: number;
        replies: { cookie: number; other: number };
      };
      clearInterval(sampler);
      await sleep(3000);
      const rssAfter = rssMb(server.child.pid!);
      const report = { loss, showTimes, before, during, reconnectMs, rssBase, rssPeak, rssAfter, ...result };
      process.stdout.write(`flood: ${JSON.stringify(report)}\n`);

      expect(result.sent).toBe(RATE * SECONDS);
      expect(loss).toBeLessThanOrEqual(1);
      expect(Math.max(...showTimes)).toBeLessThan(1000);
      expect(during / before).toBeGreaterThanOrEqual(0.8);
      expect(reconnectMs).toBeLessThan(5000);
      expect(rssPeak - rssBase).toBeLessThanOrEqual(10);
      expect(rssAfter - rssBase).toBeLessThanOrEqual(3);
      expect(result.replies.other).toBe(0);
      expect(result.replies.cookie).toBeLessThanOrEqual(result.sent);
      expect(server.log()).not.toMatch(/internal error/);
    } finally {
      clearInterval(sampler);
      await stopProc(flood, 'SIGKILL');
    }
  }, 90_000);
});
