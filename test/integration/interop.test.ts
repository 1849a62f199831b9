/**
 * Interoperability with an implementation nobody here wrote: Debian's wireguard-go and wg.
 * Two namespaces joined by veth (198.18.0.0/15), both directions:
 *   1. tvpn server, wireguard-go client configured from `tvpn add-client --wg-quick`;
 *   2. wireguard-go server, tvpn client with a static address and routes (no push).
 * In both: ping both ways, 50 MB over TCP intact both ways, a rekey (the tvpn side's clock
 * is moved forward through its test hook; wireguard-go is left alone), roaming of the
 * initiator mid-transfer, and a cookie handshake with each side under load. wireguard-go
 * must log no errors. wireguard-go's UAPI sockets live in /var/run/wireguard for all
 * namespaces, so interface names are unique per run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { stripWgQuick } from '../../src/config/wgquick.js';
import { request, type Status } from '../../src/daemon/status.js';
import { REJECT_AFTER_TIME, REKEY_AFTER_TIME } from '../../src/wireguard/constants.js';
import { createNetnsPair, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { canRoot, ROOT_SKIP_REASON } from '../helpers/root.js';
import { BIN, pings, startProc, startTvpn, stopProc, tcpTransfer, until, type Proc } from '../helpers/tvpn.js';

const hasWireguardGo = ((): boolean => {
  try {
    execFileSync('sh', ['-c', 'command -v wireguard-go && command -v wg'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skipReason = !canRoot ? ROOT_SKIP_REASON : 'needs wireguard-go and wg: apt-get install wireguard-go wireguard-tools (.ci/run does)';
const describeInterop = canRoot && hasWireguardGo ? describe : describe.skip;
const name = (what: string): string => (canRoot && hasWireguardGo ? what : `${what} [skipped: ${skipReason}]`);

const TRANSFER = 50 * 1024 * 1024;
const FLOOD = join(new URL('./fixtures/', import.meta.url).pathname, 'flood-initiations.mjs');

/** wireguard-go in the foreground with debug logging, on a run-unique interface name. */
function startWireguardGo(ns: Netns): { proc: Proc; ifname: string } {
  const ifname = `wg${randomBytes(4).toString('hex')}`;
  const proc = startProc(ns, 'wireguard-go', [ifname], {
    WG_PROCESS_FOREGROUND: '1',
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1',
    LOG_LEVEL: 'debug',
  });
  return { proc, ifname };
}

async function wgReady(ns: Netns, ifname: string): Promise<void> {
  await until(`${ifname} UAPI`, async () => (await ns.exec('wg', ['show', ifname])).stdout.includes(ifname), 10_000);
}

/** wireguard-go's log lines at error level (the only ones that count as errors). */
const wgErrors = (p: Proc): string[] => p.log().split('\n').filter((l) => l.startsWith('ERROR'));

/** Moves the tvpn daemon's clock forward (TVPN_TEST_HOOKS) so protocol deadlines pass at once. */
const advance = (socket: string, ms: number): Promise<unknown> => request(socket, `advance-clock ${ms}`);

/**
 * The initiator's underlay address moves from .2 to .3 while traffic flows: the new address
 * is added and made the route's source, the sender is told (as the WireGuard apps rebind on
 * a network change; wireguard-go caches its source address), then the old address goes.
 */
async function roam(ns: Netns, dev: string, subnet: string, rebind?: () => Promise<unknown>): Promise<void> {
  await ns.exec('sysctl', ['-qw', `net.ipv4.conf.${dev}.promote_secondaries=1`]);
  await ns.ip(['addr', 'add', `${subnet}.3/24`, 'dev', dev]);
  await ns.ip(['route', 'replace', `${subnet}.0/24`, 'dev', dev, 'proto', 'kernel', 'scope', 'link', 'src', `${subnet}.3`]);
  await rebind?.();
  await new Promise((r) => setTimeout(r, 300));
  await ns.ip(['addr', 'del', `${subnet}.2/24`, 'dev', dev]);
}

/** 50 MB each way; the first direction runs paced while `during` (roaming) happens. */
async function transfersBothWays(server: Netns, serverIp: string, client: Netns, clientIp: string, during?: () => Promise<void>): Promise<void> {
  const up = await tcpTransfer({ to: server, host: serverIp, port: 5301, from: client, bytes: TRANSFER, mbps: during ? 200 : 0 }, during);
  expect(up.received).toEqual(up.sent);
  expect(up.received.bytes).toBe(TRANSFER);
  const down = await tcpTransfer({ to: client, host: clientIp, port: 5302, from: server, bytes: TRANSFER });
  expect(down.received).toEqual(down.sent);
  expect(down.received.bytes).toBe(TRANSFER);
}

describeInterop(name('interop 1: tvpn server, wireguard-go client from add-client --wg-quick'), () => {
  let pair: NetnsPair;
  let dir: string;
  let server: Proc;
  let wg: { proc: Proc; ifname: string };
  const serverKey = generatePrivateKey();
  const serverYaml = (underLoad: boolean): string =>
    `interface: { name: tun0, address: 10.8.0.1/24 }\nlisten: 0.0.0.0:51820\nprivate_key_file: server.key\npool: 10.8.0.10-10.8.0.250\nstate_dir: state\n` +
    `status_socket: server.sock\nunder_load: ${underLoad}\npush: { routes: [10.20.0.0/16], keepalive: 25 }\nclients: []\n`;
  const socket = (): string => join(dir, 'server.sock');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-interop1-'));
    writeKeyFile(join(dir, 'server.key'), serverKey);
    writeFileSync(join(dir, 'server.yaml'), serverYaml(false));
    // The export under test: a stock client entry and a wg-quick file for it.
    execFileSync(process.execPath, [BIN, 'add-client', 'phone', '-c', join(dir, 'server.yaml'), '--wg-quick', '--psk', '--address', '10.8.0.5', '--endpoint', '198.18.51.1:51820', '--out', join(dir, 'phone.conf')]);
    pair = await createNetnsPair({ prefix: 'tvwg1', index: 51, ipv6: false });
    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml'), '--log-level', 'debug'], { TVPN_TEST_HOOKS: '1' });
    await until('server', () => server.log().includes('listening on'));

    wg = startWireguardGo(pair.b);
    await wgReady(pair.b, wg.ifname);
    const conf = readFileSync(join(dir, 'phone.conf'), 'utf8');
    writeFileSync(join(dir, 'phone.wg'), stripWgQuick(conf), { mode: 0o600 });
    await pair.b.exec('wg', ['setconf', wg.ifname, join(dir, 'phone.wg')]);
    const address = /^Address = (\S+)$/m.exec(conf)![1]!;
    await pair.b.ip(['addr', 'add', address, 'dev', wg.ifname]);
    await pair.b.ip(['link', 'set', wg.ifname, 'mtu', /^MTU = (\d+)$/m.exec(conf)![1]!, 'up']);
    for (const r of /^AllowedIPs = (.+)$/m.exec(conf)![1]!.split(', ')) await pair.b.ip(['route', 'replace', r, 'dev', wg.ifname]);
  }, 60_000);

  afterAll(async () => {
    for (const p of [wg?.proc, server]) if (p) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('ping both ways', async () => {
    expect(await until('ping through the tunnel', () => pings(pair.b, '10.8.0.1'))).toBe(true);
    expect(await pings(pair.a, '10.8.0.5')).toBe(true);
    expect(server.log()).toMatch(/handshake with phone/);
  });

  test('50 MB each way intact, the wireguard-go client roaming mid-transfer', async () => {
    const serverPub = encodeKey(publicKeyOf(serverKey));
    await transfersBothWays(pair.a, '10.8.0.1', pair.b, '10.8.0.5', () =>
      roam(pair.b, 'veth-b', '198.18.51', () => pair.b.exec('wg', ['set', wg.ifname, 'peer', serverPub, 'endpoint', '198.18.51.1:51820'])),
    );
    const status = (await request<Status>(socket(), 'show')).peers.find((p) => p.name === 'phone')!;
    expect(status.endpoint).toMatch(/^198\.18\.51\.3:\d+$/);
    expect(status.control).toBe(false);
    expect(server.log()).toMatch(/phone now at 198\.18\.51\.3:/);
  }, 120_000);

  test('rekey: past REJECT_AFTER_TIME on the tvpn side, it initiates and wireguard-go answers', async () => {
    const handshakes = (server.log().match(/handshake with phone/g) ?? []).length;
    await advance(socket(), REJECT_AFTER_TIME + 1000);
    expect(await until('ping after the rekey', () => pings(pair.a, '10.8.0.5', 2))).toBe(true);
    await until('a new handshake', () => (server.log().match(/handshake with phone/g) ?? []).length > handshakes);
    expect(await pings(pair.b, '10.8.0.1')).toBe(true);
  }, 60_000);

  test('cookies: a tvpn server under load makes wireguard-go come back with mac2', async () => {
    expect(await stopProc(server)).toBe(0);
    writeFileSync(join(dir, 'server.yaml'), readFileSync(join(dir, 'server.yaml'), 'utf8').replace('under_load: false', 'under_load: true'));
    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml'), '--log-level', 'debug'], { TVPN_TEST_HOOKS: '1' });
    await until('server', () => server.log().includes('listening on'));
    // A fresh peer on the wireguard-go side, so its next packet starts a handshake.
    await pair.b.exec('wg', ['setconf', wg.ifname, join(dir, 'phone.wg')]);
    expect(await until('ping through cookies', () => pings(pair.b, '10.8.0.1', 1), 30_000)).toBe(true);
    expect(server.log()).toMatch(/under load: cookie reply sent/);
    expect(server.log()).toMatch(/handshake with phone/);
  }, 60_000);

  test('wireguard-go logged no errors', () => {
    expect(wgErrors(wg.proc)).toEqual([]);
  });
});

describeInterop(name('interop 2: wireguard-go server, tvpn client with static address and routes'), () => {
  let pair: NetnsPair;
  let dir: string;
  let client: Proc;
  let wg: { proc: Proc; ifname: string };
  const [serverKey, clientKey] = [generatePrivateKey(), generatePrivateKey()];
  const socket = (): string => join(dir, 'client.sock');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-interop2-'));
    writeKeyFile(join(dir, 'server.key'), serverKey);
    writeKeyFile(join(dir, 'client.key'), clientKey);
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0, address: 10.8.0.2/24 }\nserver: { endpoint: 198.18.52.1:51820, public_key: ${encodeKey(publicKeyOf(serverKey))} }\n` +
        // keepalive 0: no liveness probes, so moving the clock forward cannot look like a dead server.
        `private_key_file: client.key\nroutes: [10.8.0.0/24, 10.30.0.0/16]\nstatus_socket: client.sock\nkeepalive: 0\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvwg2', index: 52, ipv6: false });
    wg = startWireguardGo(pair.a);
    await wgReady(pair.a, wg.ifname);
    await pair.a.exec('wg', ['set', wg.ifname, 'private-key', join(dir, 'server.key'), 'listen-port', '51820', 'peer', encodeKey(publicKeyOf(clientKey)), 'allowed-ips', '10.8.0.2/32']);
    await pair.a.ip(['addr', 'add', '10.8.0.1/24', 'dev', wg.ifname]);
    await pair.a.ip(['link', 'set', wg.ifname, 'up']);
    client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml'), '--log-level', 'debug'], { TVPN_TEST_HOOKS: '1' });
    // "connecting" is logged once the static address and routes are in place; the handshake may come first.
    await until('client configured and handshake', () => client.log().includes('connecting to') && client.log().includes('handshake with server'));
  }, 60_000);

  afterAll(async () => {
    for (const p of [client, wg?.proc]) if (p) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('static address and routes without any push; ping both ways', async () => {
    expect((await pair.b.ip(['-4', 'addr', 'show', 'dev', 'tun0'])).stdout).toMatch(/inet 10\.8\.0\.2\/24/);
    expect((await pair.b.ip(['route', 'show', '10.30.0.0/16'])).stdout).toMatch(/dev tun0/);
    expect(await until('ping', () => pings(pair.b, '10.8.0.1'))).toBe(true);
    expect(await pings(pair.a, '10.8.0.2')).toBe(true);
  });

  test('50 MB each way intact, the tvpn client roaming mid-transfer', async () => {
    await transfersBothWays(pair.a, '10.8.0.1', pair.b, '10.8.0.2', () => roam(pair.b, 'veth-b', '198.18.52'));
    const { stdout } = await pair.a.exec('wg', ['show', wg.ifname, 'endpoints']);
    expect(stdout).toMatch(/\t198\.18\.52\.3:\d+/);
  }, 120_000);

  test('rekey: past REKEY_AFTER_TIME the tvpn initiator rekeys on its next packet', async () => {
    const handshakes = (client.log().match(/handshake with server/g) ?? []).length;
    await advance(socket(), REKEY_AFTER_TIME + 1000);
    expect(await pings(pair.b, '10.8.0.1')).toBe(true);
    await until('a new handshake', () => (client.log().match(/handshake with server/g) ?? []).length > handshakes);
    expect(client.log()).not.toMatch(/reconnecting/);
    expect(await pings(pair.a, '10.8.0.2')).toBe(true);
  }, 60_000);

  test('cookies: wireguard-go under a handshake flood answers the tvpn client with a cookie, and it completes with mac2', async () => {
    // Whether tvpn's initiation meets wireguard-go under load (and not a full queue, which
    // drops it) is a race against its workers; a few bounded attempts at growing delays win it.
    const handshakes = (client.log().match(/handshake with server/g) ?? []).length;
    const gotCookie = (): boolean => client.log().includes('under load: it answered with a cookie');
    for (let attempt = 0; attempt < 5 && !gotCookie(); attempt++) {
      await pair.b.exec(process.execPath, [FLOOD, '198.18.52.1', '51820', encodeKey(publicKeyOf(serverKey)), '20000'], { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 150 * attempt));
      // Expire the client's keypair at once: its next packet starts a handshake now.
      await advance(socket(), REJECT_AFTER_TIME + 1000);
      void pings(pair.b, '10.8.0.1', 1);
      await until('the cookie', gotCookie, 2_500).catch(() => undefined);
    }
    expect(gotCookie()).toBe(true);
    expect(wg.proc.log()).toMatch(/Sending cookie response for denied handshake message/);
    await until('the handshake after the cookie', () => (client.log().match(/handshake with server/g) ?? []).length > handshakes, 20_000);
    expect(await until('ping', () => pings(pair.b, '10.8.0.1'))).toBe(true);
  }, 90_000);

  test('wireguard-go logged no errors; it dropped the control frames as invalid IP version', () => {
    expect(wgErrors(wg.proc)).toEqual([]);
    expect(wg.proc.log()).toMatch(/Packet with invalid IP version/);
  });
});
