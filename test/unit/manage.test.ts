/**
 * remove-client, list-clients, reload and add-client's QR codes from the command line: against
 * files alone, and against a server running on the fakes.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsqr from 'jsqr';
import { PNG } from 'pngjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatClientList, type ClientList } from '../../src/cli/commands/list-clients.js';
import { qrTerminal } from '../../src/cli/qr.js';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { loadServerConfig } from '../../src/config/server.js';
import { tvpn } from './support/cli.js';
import { clientToServer, key, Lab } from './support/daemons.js';

/** jsqr is CommonJS with a default export, which Node's ESM import wraps once more. */
const jsQR = jsqr.default;
const pub = (n: number): string => encodeKey(publicKeyOf(key(n)));
const SOCKET = `'@tvpn-manage-test-${process.pid}'`;
/** Hand-written: aligned comments, a comment above each client, blank lines between them, a flow entry. */
const SERVER = `interface: { name: tun0, address: 10.8.0.1/24 }
private_key_file: server.key
status_socket: ${SOCKET}
state_dir: state
clients:                    # who may connect
  # Alice's laptop
  - name: laptop
    public_key: ${pub(2)}   # made by add-client
    address: 10.8.0.2

  # Bob's phone, until the end of the year
  - { name: phone, public_key: ${pub(3)}, address: 10.8.0.3, stock: true, expires: 2026-12-31 }

  - name: desk
    public_key: ${pub(4)}
    disabled: true
# the end
`;

let dir: string;
let F: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tvpn-manage-'));
  F = join(dir, 'server.yaml');
  writeKeyFile(join(dir, 'server.key'), generatePrivateKey());
  writeFileSync(F, SERVER, { mode: 0o640 });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('remove-client', () => {
  it.each([
    ['laptop', "  # Alice's laptop\n  - name: laptop\n", `    public_key: ${pub(2)}   # made by add-client\n    address: 10.8.0.2\n\n`],
    ['phone', "  # Bob's phone, until the end of the year\n", `  - { name: phone, public_key: ${pub(3)}, address: 10.8.0.3, stock: true, expires: 2026-12-31 }\n\n`],
    ['desk', '  - name: desk\n', `    public_key: ${pub(4)}\n    disabled: true\n`],
  ])('removes %s with the comment above it; every other byte stays', async (name, first, rest) => {
    const r = await tvpn('remove-client', name, '-c', F);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^removed client '${name}'( \\(10\\.8\\.0\\.\\d\\))? from ${F}; its key files and client profile are left alone`));
    expect(r.err).toBe('tvpn: note: no server runs with this config here: it applies the change when it starts\n');
    expect(readFileSync(F, 'utf8')).toBe(SERVER.replace(first + rest, ''));
    expect(statSync(F).mode & 0o777).toBe(0o640);
    expect(loadServerConfig(F).clients.map((c) => c.name)).toEqual(['laptop', 'phone', 'desk'].filter((n) => n !== name));
  });

  it('re-renders a flow list', async () => {
    writeFileSync(F, SERVER.replace(/clients:[^]*/, `clients: [{ name: a, public_key: ${pub(2)} }, { name: b, public_key: ${pub(3)} }]\n`));
    expect((await tvpn('remove-client', 'a', '-c', F, '--no-reload')).err).toBe(
      `tvpn: note: not applied to a running server: run 'tvpn reload -c ${F}' (or send the server SIGHUP) to apply it\n`,
    );
    expect(loadServerConfig(F).clients.map((c) => c.name)).toEqual(['b']);
  });

  it('names the clients there are when the name is not one of them', async () => {
    expect(await tvpn('remove-client', 'tablet', '-c', F)).toEqual({ code: 2, out: '', err: `tvpn: ${F}: no client named 'tablet' (clients: laptop, phone, desk)\n` });
    expect(readFileSync(F, 'utf8')).toBe(SERVER);
  });
});

describe('list-clients without a running server', () => {
  it('reads addresses, latest handshakes and totals from state_dir', async () => {
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', 'leases.json'), JSON.stringify({ version: 1, leases: [{ key: pub(4), address: '10.8.0.100', name: 'desk', lastSeen: 1 }] }));
    const laptop = { name: 'laptop', firstSeen: Date.UTC(2026, 0, 1), lastHandshake: Date.now() - 600_000, rxBytes: 5 << 20, txBytes: 1024 };
    writeFileSync(join(dir, 'state', 'traffic.json'), JSON.stringify({ version: 1, clients: { [pub(2)]: laptop } }));
    const r = await tvpn('list-clients', '-c', F);
    expect(r.out.split('\n').map((l) => l.trimEnd())).toEqual([
      '(the server is not running here: addresses, handshakes and totals as it left them in state_dir)',
      'NAME    ADDRESS             ACCESS                                 LATEST HANDSHAKE  SINCE START (RX / TX)  TOTAL (RX / TX)',
      'laptop  10.8.0.2            active                                 10 minutes ago    -                      5.00 MiB / 1.00 KiB',
      'phone   10.8.0.3            active until 2026-12-31T00:00:00.000Z  never             -                      0 B / 0 B',
      'desk    10.8.0.100 (lease)  disabled                               never             -                      0 B / 0 B',
      '',
    ]);
    const json = JSON.parse((await tvpn('list-clients', '-c', F, '--json')).out) as ClientList;
    expect(json.running).toBe(false);
    expect(json.clients[0]).toEqual({
      name: 'laptop',
      publicKey: pub(2),
      address: '10.8.0.2',
      leased: false,
      access: 'active',
      expires: null,
      latestHandshake: Math.floor(laptop.lastHandshake / 1000),
      endpoint: null,
      rxBytes: null,
      txBytes: null,
      totalRxBytes: 5 << 20,
      totalTxBytes: 1024,
      firstSeen: Date.UTC(2026, 0, 1) / 1000,
    });
  });
});

describe('against a running server', () => {
  let lab: Lab;
  beforeEach(() => void (lab = new Lab()));
  afterEach(() => lab.close());

  it('list-clients asks it; remove-client makes it reload, and reload reports what changed', async () => {
    const file = join(lab.dir, 'server.yaml');
    writeFileSync(file, lab.serverText('{ mtu: 1400 }', `  - { name: phone, public_key: ${pub(3)}, disabled: true }\n`), { mode: 0o600 });
    lab.serverCfg = loadServerConfig(file);
    lab.server = await (await import('../../src/daemon/server/server.js')).Server.start(lab.serverCfg, lab.serverLog.log, { io: lab.serverIo, host: lab.serverHost });
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    await clientToServer(lab, 'counted');

    const list = JSON.parse((await tvpn('list-clients', '-c', file, '--json')).out) as ClientList;
    expect(list.running).toBe(true);
    expect(list.clients.map((c) => [c.name, c.address, c.leased, c.access, c.latestHandshake > 0, c.endpoint])).toEqual([
      ['laptop', '10.8.0.2', true, 'active', true, '192.0.2.2:40000'],
      ['phone', null, false, 'disabled', false, null],
    ]);
    expect(list.clients[0]!.rxBytes).toBeGreaterThan(0);
    expect(list.clients[0]!.totalRxBytes).toBe(list.clients[0]!.rxBytes);
    expect(formatClientList(list).split('\n')[2]).toBe('phone   -                 disabled  never             0 B / 0 B              0 B / 0 B');

    expect(await tvpn('reload', '-c', file)).toEqual({ code: 0, out: `reloaded ${file}: 2 client(s), nothing changed\n`, err: '' });
    const r = await tvpn('remove-client', 'laptop', '-c', file);
    expect(r.out.split('\n').slice(1)).toEqual([`reloaded ${file}: 1 client(s)`, '  client laptop removed', '']);
    await lab.clientLogged('server said bye (access removed)');
    expect(lab.server.snapshotStatus().peers.map((p) => p.name)).toEqual(['phone']);
  });
});

/**
 * The modules of a QR code printed with half blocks (qrcode's small terminal output) back as
 * an image jsQR can read: a glyph's upper and lower halves are dark where drawn in black (its
 * last row is drawn in white, the bottom margin).
 */
function terminalImage(text: string): { data: Uint8ClampedArray; width: number; height: number } {
  const modules = text.split('\n').flatMap((line) => {
    const top: boolean[] = [];
    const bottom: boolean[] = [];
    let black = false;
    for (const [, sgr, glyph] of line.matchAll(/\x1b\[(\d+)m|(.)/gu)) {
      if (sgr !== undefined) black = sgr === '30' || (black && sgr === '47');
      else {
        top.push(black && (glyph === '█' || glyph === '▀'));
        bottom.push(black && (glyph === '█' || glyph === '▄'));
      }
    }
    return top.length === 0 ? [] : [top, bottom];
  });
  const [scale, margin] = [4, 4];
  const size = Math.max(...modules.map((row) => row.length));
  const [width, height] = [(size + 2 * margin) * scale, (modules.length + 2 * margin) * scale];
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (modules[Math.floor(y / scale) - margin]?.[Math.floor(x / scale) - margin]) data.fill(0, (y * width + x) * 4, (y * width + x) * 4 + 3);
    }
  }
  return { data, width, height };
}

describe('add-client --qr / --qr-png', () => {
  it('the PNG and the terminal code decode back to the exact wg-quick profile', async () => {
    const [conf, png] = [join(dir, 'phone.conf'), join(dir, 'phone.png')];
    const r = await tvpn('add-client', 'tablet', '-c', F, '--wg-quick', '--psk', '--out', conf, '--endpoint', 'vpn.example.com:51820', '--qr', '--qr-png', png);
    expect(r.code).toBe(0);
    const profile = readFileSync(conf, 'utf8');
    expect(profile).toContain('PresharedKey = ');
    expect(statSync(png).mode & 0o777).toBe(0o600);
    const image = PNG.sync.read(readFileSync(png));
    expect(jsQR(new Uint8ClampedArray(image.data), image.width, image.height)?.data).toBe(profile);

    const printed = r.out.slice(r.out.indexOf('\x1b'));
    expect(printed).toBe(await qrTerminal(profile));
    expect(Math.max(...printed.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => [...l].length))).toBeLessThanOrEqual(80);
    const { data, width, height } = terminalImage(printed);
    expect(jsQR(data, width, height)?.data).toBe(profile);
  });

  it('needs --wg-quick, and never writes over a file', async () => {
    expect((await tvpn('add-client', 'tablet', '-c', F, '--qr')).err).toBe('tvpn: --qr and --qr-png need --wg-quick: the WireGuard apps scan wg-quick profiles\n');
    writeFileSync(join(dir, 'taken.png'), '');
    const r = await tvpn('add-client', 'tablet', '-c', F, '--wg-quick', '--qr-png', join(dir, 'taken.png'));
    expect(r).toMatchObject({ code: 2, err: `tvpn: --qr-png: ${join(dir, 'taken.png')} already exists; remove it or pick another path\n` });
    expect(readFileSync(F, 'utf8')).toBe(SERVER);
  });
});
