/**
 * Metrics and the status page on a real server: `metrics.listen` on 127.0.0.1 inside the
 * server's namespace, a client (with a listener of its own) connected from the other one. A scrape lists the client, a TCP
 * transfer shows up in wireguard_received_bytes_total, and the page, loaded by Debian's
 * chromium (driven by playwright-core, run inside the server's namespace through a wrapper),
 * lists the client with a chart that saw the transfer. The screenshot stays in the OS tmpdir.
 *
 *   server ns (a) 198.18.84.1 ── veth ── 198.18.84.2 client ns (b)
 */
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { startTvpn, stopProc, tcpTransfer, until, type Proc } from '../helpers/tvpn.js';

const CHROMIUM = '/usr/bin/chromium';
const LISTEN = '127.0.0.1:9586';
const TRANSFER = 512 * 1024;
/** A GET inside the namespace: the body on stdout, exit 1 unless 200. */
const FETCH = 'fetch(process.argv[1]).then(async (r) => { process.stdout.write(await r.text()); if (!r.ok) process.exit(1); })';

/** How many pixel rows the received series' colour (#1a7f37, antialiased) spans. */
function greenRise(img: PNG): number {
  const rows: number[] = [];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 4;
      const [r, g, b, a] = [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!, img.data[i + 3]!];
      if (a > 128 && Math.abs(r - 0x1a) < 40 && Math.abs(g - 0x7f) < 40 && Math.abs(b - 0x37) < 40) rows.push(y);
    }
  }
  return rows.length === 0 ? 0 : Math.max(...rows) - Math.min(...rows);
}

describeRoot('metrics and the status page', () => {
  let pair: NetnsPair;
  let dir: string;
  let server: Proc;
  let client: Proc;
  let browser: BrowserContext | null = null;
  const keys = { server: generatePrivateKey(), client: generatePrivateKey() };
  const clientKey = encodeKey(publicKeyOf(keys.client));

  const get = async (path: string, ns = pair.a): Promise<string> => (await ns.exec(process.execPath, ['-e', FETCH, `http://${LISTEN}${path}`])).stdout;
  const received = async (): Promise<number> => {
    const line = new RegExp(`^wireguard_received_bytes_total\\{name="laptop",public_key="${clientKey.replace(/[+/]/g, '\\$&')}",interface="tun0"\\} (\\d+)$`, 'm');
    const m = line.exec(await get('/metrics'));
    if (!m) throw new Error('no wireguard_received_bytes_total for laptop');
    return Number(m[1]);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-metrics-'));
    writeKeyFile(join(dir, 'server.key'), keys.server);
    writeKeyFile(join(dir, 'client.key'), keys.client);
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: 10.84.0.1/24 }\nlisten: 198.18.84.1:51820\nprivate_key_file: server.key\nstate_dir: ${join(dir, 'state')}\n` +
        `metrics: { listen: '${LISTEN}' }\nclients:\n  - { name: laptop, public_key: ${clientKey} }\n`,
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: 198.18.84.1:51820, public_key: ${encodeKey(publicKeyOf(keys.server))} }\nprivate_key_file: client.key\n` +
        `accept: { routes: true, dns: false, redirect_gateway: false }\nmetrics: { listen: '${LISTEN}' }\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvmetrics', index: 84, ipv6: false });
    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    await until('the server and its metrics', () => server.log().includes(`status page on http://${LISTEN}/`));
    client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
    await until('the client configured', () => client.log().includes('config 1 applied'));
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    for (const p of [client, server]) if (p) await stopProc(p);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a scrape shows the client; a transfer shows up in its received bytes', async () => {
    const text = await get('/metrics');
    expect(text).toMatch(new RegExp(`^wireguard_latest_handshake_seconds\\{name="laptop",.*\\} [1-9]\\d+$`, 'm'));
    expect(text).toMatch(/^tvpn_handshakes_total\{name="laptop",.*\} [1-9]\d*$/m);
    expect(text).toContain('tvpn_sessions{interface="tun0"} 1');
    expect(text).toContain('tvpn_leases{interface="tun0"} 1');
    expect(text).toContain('tvpn_under_load{interface="tun0"} 0');
    const before = await received();
    const r = await tcpTransfer({ to: pair.a, host: '10.84.0.1', port: 5284, from: pair.b, bytes: TRANSFER });
    expect(r.received).toEqual(r.sent);
    // The datagrams' bytes: the payload plus TCP/IP headers, WireGuard's framing and padding.
    const delta = (await received()) - before;
    expect(delta).toBeGreaterThanOrEqual(TRANSFER);
    expect(delta).toBeLessThan(TRANSFER + 64 * 1024);
    // The client's own listener, in its namespace: its one peer is the server.
    const sent = /^wireguard_sent_bytes_total\{name="server",.*\} (\d+)$/m.exec(await get('/metrics', pair.b));
    expect(Number(sent?.[1])).toBeGreaterThanOrEqual(TRANSFER);
  });

  test('the status page in headless chromium: the client, its endpoint and a chart that saw the transfer', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`).toBe(true);
    // chromium runs inside the server's namespace, where the listener is.
    const wrapper = join(dir, 'chromium-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${pair.a.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await chromium.launchPersistentContext(mkdtempSync(join(dir, 'profile-')), {
      executablePath: wrapper,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 30_000,
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://${LISTEN}/`);
    const card = page.locator(`section.peer[data-key="${clientKey}"]`);
    await expect.poll(() => card.locator('.name').textContent(), { timeout: 10_000 }).toBe('laptop');
    const fields = await card.locator('dl').innerText();
    expect(fields).toContain('198.18.84.2:');
    expect(fields).toMatch(/address\s+10\.84\.0\.\d+/);
    expect(fields).toMatch(/latest handshake\s+\d+ s ago/);
    expect(await card.locator('.state').textContent()).toBe('connected');
    // A second transfer while the page is open: the ring's next samples carry it to the chart.
    await tcpTransfer({ to: pair.a, host: '10.84.0.1', port: 5285, from: pair.b, bytes: TRANSFER });
    const peak = async (): Promise<number> => Number(await card.locator('.chart').getAttribute('data-peak-rx'));
    await expect.poll(peak, { timeout: 15_000 }).toBeGreaterThan(TRANSFER / 4);
    // uPlot drew it: once a later sample is in, the received series' line spans the chart's height.
    const rise = async (): Promise<number> => {
      const png = await card.locator('canvas').evaluate((c) => (c as unknown as { toDataURL(): string }).toDataURL());
      return greenRise(PNG.sync.read(Buffer.from(png.split(',')[1]!, 'base64')));
    };
    await expect.poll(rise, { timeout: 15_000 }).toBeGreaterThan(60);
    const shot = join(tmpdir(), `tvpn-metrics-status-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot: ${shot}`);
    expect(errors).toEqual([]);
  }, 60_000);
});
