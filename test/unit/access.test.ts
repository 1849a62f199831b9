/**
 * Client management on a running server (fakes, injected clock): reload over the status
 * socket, disabled and expiring clients refused without a trace, keys a reload cannot apply,
 * and traffic totals kept across restarts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { formatStatus, request, type Status } from '../../src/daemon/status.js';
import type { ReloadResult } from '../../src/daemon/server/reload.js';
import { sleep } from '../helpers/wait.js';
import { CLIENT_IP, Lab, SERVER_IP, clientToServer, labPerTest } from './support/daemons.js';

const PUSH = '{ mtu: 1400, keepalive: 7 }';

let lab: Lab;
labPerTest((l) => (lab = l));

const laptop = (): Status['peers'][number] => lab.server!.snapshotStatus().peers.find((p) => p.name === 'laptop')!;
const fromServer = (): number => lab.net.sent.filter((d) => d.from.ip === SERVER_IP && d.to.ip === CLIENT_IP).length;
const writeServerConfig = (text: string): void => writeFileSync(join(lab.dir, 'server.yaml'), text, { mode: 0o600 });

/** The client keeps trying for a while (its handshakes are retried every 5 s); the server must stay silent. */
async function expectSilence(): Promise<void> {
  const before = fromServer();
  await lab.advance(40_000);
  await sleep(20);
  expect(fromServer()).toBe(before);
}

describe('access', () => {
  test("'reload' over the status socket disables a connected client: bye, peer gone, its handshakes unanswered", async () => {
    await lab.connect(PUSH);
    writeServerConfig(lab.serverText(PUSH, '', ', disabled: true'));
    const result = await request<ReloadResult>(lab.serverCfg!.statusSocket, 'reload');
    expect(result).toEqual({ file: join(lab.dir, 'server.yaml'), clients: 1, changes: ['client laptop disabled'], restart: [] });
    await lab.clientLogged('server said bye (access disabled)');
    expect(laptop()).toMatchObject({ access: 'disabled', endpoint: null, allowedIps: [], address: '10.8.0.2' });
    await expectSilence();

    writeServerConfig(lab.serverText(PUSH));
    expect((await request<ReloadResult>(lab.serverCfg!.statusSocket, 'reload')).changes).toEqual(['client laptop enabled']);
    await lab.advance(10_000);
    await clientToServer(lab, 'back');
    expect(laptop().access).toBe('active');
  });

  test('a reload that fails keeps the running config and says why over the socket', async () => {
    await lab.startServer(PUSH);
    writeServerConfig(lab.serverText(PUSH, '', ', expires: soon'));
    await expect(request(lab.serverCfg!.statusSocket, 'reload')).rejects.toThrow(/clients\[0\]\.expires: 'soon' is not an ISO 8601 date/);
    await lab.serverLogged('reload failed, keeping the running config:');
    expect(laptop().access).toBe('active');
  });

  test('an expiry in the future cuts the client off at that moment, with no reload', async () => {
    const expires = new Date(Date.now() + 30_000).toISOString();
    await lab.startServer(PUSH, '', `, expires: '${expires}'`);
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    expect(laptop()).toMatchObject({ access: 'active', expires });
    await lab.advance(25_000);
    expect(lab.serverLog.lines.some((l) => l.includes('expired'))).toBe(false);
    await lab.advance(6_000);
    await lab.serverLogged('client laptop expired: no handshake from now on');
    await lab.clientLogged('server said bye (access expired)');
    expect(laptop()).toMatchObject({ access: 'expired', expires });
    expect(formatStatus(lab.server!.snapshotStatus())).toContain(`  access: expired (expires ${expires}): no handshake\n`);
    await expectSilence();
  });

  test('a client that expired before the server started never gets an answer', async () => {
    await lab.startServer(PUSH, '', ', expires: 2020-01-01');
    await lab.startClient();
    await expectSilence();
    expect(lab.net.sent.filter((d) => d.from.ip === CLIENT_IP).length).toBeGreaterThan(0);
    expect(lab.server!.snapshotStatus().peers).toMatchObject([{ name: 'laptop', access: 'expired', latestHandshake: 0 }]);
  });

  test('a reload applies log_level and under_load, and names in one line the keys that need a restart', async () => {
    await lab.startServer(PUSH);
    const text = lab
      .serverText(PUSH)
      .replace('name: tun0, address: 10.8.0.1/24', 'name: tun1, address: 10.8.0.1/24, mtu: 1380')
      .replace(`'${SERVER_IP}:51820'`, `'${SERVER_IP}:51821'`)
      .replace('state_dir: state', 'state_dir: state2');
    writeServerConfig(`${text}log_level: warn\nunder_load: true\npool: 10.8.0.100-10.8.0.200\n`);
    const result = lab.server!.reloadFile();
    expect(result.changes).toEqual(['log_level warn', 'under_load true']);
    expect(result.restart).toEqual(['interface.name', 'interface.mtu', 'listen', 'pool', 'state_dir']);
    expect(lab.serverLog.log.level).toBe('warn');
    expect(lab.serverLog.lines.filter((l) => l.includes('restart')).map((l) => l.slice(25))).toEqual([
      'warn  reload: interface.name, interface.mtu, listen, pool, state_dir changed: kept as they were until the server is restarted',
    ]);
  });
});

describe('traffic totals', () => {
  test('are kept in state_dir across a restart: since first seen, and since the daemon started', async () => {
    await lab.connect(PUSH);
    await clientToServer(lab, 'x'.repeat(500));
    const first = laptop();
    expect(first.rxBytes).toBeGreaterThan(500);
    expect(first.totalRxBytes).toBe(first.rxBytes);
    expect(first.firstSeen).toBeGreaterThan(0);
    await lab.server!.stop();
    const stored = JSON.parse(readFileSync(join(lab.dir, 'state', 'traffic.json'), 'utf8')) as { clients: Record<string, { rxBytes: number }> };
    expect(Object.values(stored.clients).map((c) => c.rxBytes)).toEqual([first.rxBytes]);
    expect(readFileSync(join(lab.dir, 'state', 'traffic.json.bak'), 'utf8')).toBe(readFileSync(join(lab.dir, 'state', 'traffic.json'), 'utf8'));

    await lab.startServer(PUSH);
    const restarted = laptop();
    expect(restarted).toMatchObject({ rxBytes: 0, txBytes: 0, totalRxBytes: first.rxBytes, firstSeen: first.firstSeen });
    await lab.advance(1000);
    await lab.serverLogged('laptop applied config 1');
    const later = laptop();
    expect(later.totalRxBytes).toBe(first.rxBytes + later.rxBytes);
    const text = formatStatus(lab.server!.snapshotStatus());
    expect(text).toMatch(/\n {2}transfer: [\d.]+ K?i?B received, [\d.]+ K?i?B sent since the daemon started\n/);
    expect(text).toContain(`  total: `);
    expect(text).toContain(`sent since ${new Date(first.firstSeen! * 1000).toISOString()}\n`);
  });

  test('are written every minute while the server runs', async () => {
    await lab.connect(PUSH);
    await clientToServer(lab, 'y'.repeat(300));
    const file = join(lab.dir, 'state', 'traffic.json');
    await lab.advance(61_000);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { clients: Record<string, { name: string; rxBytes: number }> };
    expect(Object.values(stored.clients)).toMatchObject([{ name: 'laptop', rxBytes: expect.any(Number) }]);
    expect(Object.values(stored.clients)[0]!.rxBytes).toBeGreaterThan(300);
  });
});
