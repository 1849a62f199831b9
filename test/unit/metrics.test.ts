import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/config/server.js';
import { Logger } from '../../src/daemon/log.js';
import { ThroughputHistory } from '../../src/daemon/metrics/history.js';
import { denial, serveMetrics, type MetricsServer } from '../../src/daemon/metrics/http.js';
import { MetricsText } from '../../src/daemon/metrics/registry.js';
import type { MetricsSnapshot } from '../../src/daemon/metrics/snapshot.js';
import type { PeerStatus } from '../../src/daemon/status.js';
import { clientError, F, HEAD, PUB2, PUB3, serverError, useConfigDir } from './support/config.js';

useConfigDir();

const peer = (name: string, publicKey: string, rxBytes: number, txBytes: number, latestHandshake = 0): PeerStatus => ({
  name,
  publicKey,
  endpoint: null,
  latestHandshake,
  rxBytes,
  txBytes,
  allowedIps: [],
  address: null,
  control: true,
});

/** A server's state as its daemon would report it. */
const fake = (peers: PeerStatus[], extra: Partial<MetricsSnapshot> = {}): MetricsSnapshot => ({
  status: { role: 'server', interface: 'tun0', publicKey: 'S', listenPort: 51820, address: '10.8.0.1/24', peers },
  events: new Map([[PUB2, { handshakes: 3, endpointChanges: 1 }]]),
  sessions: 1,
  leases: 2,
  controlRetransmits: 4,
  handshakeQueue: { length: 5, capacity: 1024 },
  underLoad: true,
  drops: { mac1: 7, 'source-limit': 9, 'socket-full': 0, replay: 2 },
  peerDrops: new Map([[PUB2, { replay: 2 }]]),
  ...extra,
});

const PHONE = peer('phone', PUB2, 1234, 5678, 1_700_000_000);
const labels = (name: string, key: string): string => `{name="${name}",public_key="${key}",interface="tun0"}`;

describe('metrics text', () => {
  it('names, labels and values from the daemon state', async () => {
    const text = await new MetricsText('tun0', 'server').render(fake([PHONE, peer('laptop', PUB3, 0, 0)]));
    const lines = text.split('\n');
    for (const line of [
      '# TYPE wireguard_received_bytes_total counter',
      `wireguard_received_bytes_total${labels('phone', PUB2)} 1234`,
      `wireguard_sent_bytes_total${labels('phone', PUB2)} 5678`,
      '# TYPE wireguard_latest_handshake_seconds gauge',
      `wireguard_latest_handshake_seconds${labels('phone', PUB2)} 1700000000`,
      `wireguard_latest_handshake_seconds${labels('laptop', PUB3)} 0`,
      `tvpn_handshakes_total${labels('phone', PUB2)} 3`,
      `tvpn_handshakes_total${labels('laptop', PUB3)} 0`,
      `tvpn_endpoint_changes_total${labels('phone', PUB2)} 1`,
      'tvpn_sessions{interface="tun0"} 1',
      'tvpn_leases{interface="tun0"} 2',
      '# TYPE tvpn_control_retransmits_total counter',
      'tvpn_control_retransmits_total{interface="tun0"} 4',
      'tvpn_handshake_queue_length{interface="tun0"} 5',
      'tvpn_handshake_queue_capacity{interface="tun0"} 1024',
      'tvpn_under_load{interface="tun0"} 1',
      'tvpn_dropped_packets_total{reason="mac1",interface="tun0"} 7',
      'tvpn_dropped_packets_total{reason="source-limit",interface="tun0"} 9',
      'tvpn_dropped_packets_total{reason="socket-full",interface="tun0"} 0',
      '# TYPE tvpn_peer_dropped_packets_total counter',
      `tvpn_peer_dropped_packets_total{name="phone",public_key="${PUB2}",reason="replay",interface="tun0"} 2`,
    ]) {
      expect(lines).toContain(line);
    }
  });

  it('each scrape reads the state anew: a peer gone leaves no series, a client has no leases', async () => {
    const m = new MetricsText('tun0', 'client');
    await m.render(fake([PHONE, peer('laptop', PUB3, 10, 10)]));
    const text = await m.render(fake([peer('phone', PUB2, 2000, 6000)], { leases: null, underLoad: false }));
    expect(text).not.toContain('laptop');
    expect(text).toContain(`wireguard_received_bytes_total${labels('phone', PUB2)} 2000`);
    expect(text).not.toMatch(/^tvpn_leases\{/m);
    expect(text).toContain('tvpn_under_load{interface="tun0"} 0');
  });

  it('escapes label values', async () => {
    const text = await new MetricsText('tun0', 'server').render(fake([peer('a"b', PUB2, 1, 1)]));
    expect(text).toContain('name="a\\"b"');
  });
});

describe('throughput history', () => {
  it('rates between samples, null before a peer is known, bounded, peers gone dropped', () => {
    const h = new ThroughputHistory(3);
    h.sample([peer('a', 'A', 0, 0)], 10_000);
    h.sample([peer('a', 'A', 2000, 500)], 12_000);
    h.sample([peer('a', 'A', 6000, 500), peer('b', 'B', 100, 100)], 14_000);
    expect(h.toJSON().peers).toEqual({ A: { rx: [null, 1000, 2000], tx: [null, 250, 0] }, B: { rx: [null, null, null], tx: [null, null, null] } });
    h.sample([peer('b', 'B', 300, 100)], 16_000);
    expect(h.toJSON()).toEqual({ intervalMs: 2000, samples: 3, times: [12, 14, 16], peers: { B: { rx: [null, null, 100], tx: [null, null, 0] } } });
  });

  it('a counter that went back gives no rate', () => {
    const h = new ThroughputHistory();
    h.sample([peer('a', 'A', 5000, 5000)], 0);
    h.sample([peer('a', 'A', 10, 10)], 2000);
    expect(h.toJSON().peers.A).toEqual({ rx: [null, null], tx: [null, null] });
  });
});

describe('access', () => {
  const url = (q = ''): URL => new URL(`http://x/metrics${q}`);
  const host = { host: '127.0.0.1:9586' };
  it('without a token: loopback only, by an IP or localhost in Host', () => {
    expect(denial(null, '127.0.0.1', host, url())).toBeNull();
    expect(denial(null, '::1', { host: '[::1]:9586' }, url())).toBeNull();
    expect(denial(null, '::ffff:127.0.0.1', { host: 'localhost:9586' }, url())).toBeNull();
    expect(denial(null, '198.18.84.2', host, url())?.code).toBe(403);
    // A DNS-rebinding page sends its own name.
    expect(denial(null, '127.0.0.1', { host: 'evil.example:9586' }, url())).toEqual({ code: 403, text: 'Host must be an IP address or localhost' });
  });

  it('with a token: required from everyone, as a bearer token or ?token=', () => {
    const token = 'x'.repeat(24);
    expect(denial(token, '198.18.84.2', { authorization: `Bearer ${token}` }, url())).toBeNull();
    expect(denial(token, '198.18.84.2', {}, url(`?token=${token}`))).toBeNull();
    expect(denial(token, '127.0.0.1', host, url())?.code).toBe(401);
    expect(denial(token, '198.18.84.2', { authorization: 'Bearer nope' }, url())?.code).toBe(401);
  });
});

describe('metrics config', () => {
  it('off by default; listen and token read', () => {
    expect(parseServerConfig(HEAD, F).metrics).toBeNull();
    expect(parseServerConfig(`${HEAD}metrics: { listen: 127.0.0.1:9586 }\n`, F).metrics).toEqual({ listen: { host: '127.0.0.1', port: 9586 }, token: null });
    const token = 'a'.repeat(32);
    expect(parseServerConfig(`${HEAD}metrics: { listen: '0.0.0.0:9586', token: ${token} }\n`, F).metrics).toEqual({ listen: { host: '0.0.0.0', port: 9586 }, token });
  });

  it('a non-loopback listen without a token is refused with one line', () => {
    const e = serverError(`${HEAD}metrics: { listen: '0.0.0.0:9586' }\n`);
    expect(e).toMatch(/metrics: listen 0\.0\.0\.0 is not a loopback address: set metrics\.token too/);
    expect(e).not.toContain('\n');
    expect(serverError(`${HEAD}metrics: { listen: 127.0.0.1:9586, token: short }\n`)).toMatch(/metrics\.token: use at least 16 characters/);
    expect(serverError(`${HEAD}metrics: { token: ${'a'.repeat(16)} }\n`)).toMatch(/metrics: missing 'listen'/);
    const client = `server: { endpoint: vpn.example.com:51820, public_key: ${PUB3} }\nprivate_key_file: client.key\n`;
    expect(clientError(`${client}metrics: { listen: '[::]:9586' }\n`)).toMatch(/metrics: listen :: is not a loopback address/);
  });
});

describe('the listener on 127.0.0.1', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });
  const quiet = new Logger('error', () => undefined);

  it('serves /metrics, the page, its assets and status.json', async () => {
    server = await serveMetrics({ listen: { host: '127.0.0.1', port: 0 }, token: null }, () => fake([PHONE]), quiet);
    const get = (path: string) => fetch(`http://127.0.0.1:${server!.port}${path}`);
    const metrics = await get('/metrics');
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toContain(`wireguard_sent_bytes_total${labels('phone', PUB2)} 5678`);
    const page = await (await get('/')).text();
    expect(page).toContain('<script src="uplot.js"></script>');
    expect((await get('/uplot.js')).headers.get('content-type')).toMatch(/javascript/);
    expect(await (await get('/uplot.js')).text()).toContain('uPlot');
    const json = (await (await get('/status.json')).json()) as { status: { peers: PeerStatus[] }; history: { times: number[] } };
    expect(json.status.peers[0]!.name).toBe('phone');
    expect(json.history.times).toHaveLength(1);
    expect((await get('/nope')).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('with a token: 401 without it; the page passes a URL token on to its assets', async () => {
    const token = 't'.repeat(20);
    server = await serveMetrics({ listen: { host: '127.0.0.1', port: 0 }, token }, () => fake([PHONE]), quiet);
    const base = `http://127.0.0.1:${server.port}`;
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(await (await fetch(`${base}/?token=${token}`)).text()).toContain(`<script src="status.js?token=${token}"></script>`);
  });

  it('a request line that is no URL, or a snapshot that throws, is answered and the daemon goes on', async () => {
    let broken = false;
    const snapshot = (): ReturnType<typeof fake> => {
      if (broken) throw new Error('snapshot bug');
      return fake([PHONE]);
    };
    server = await serveMetrics({ listen: { host: '127.0.0.1', port: 0 }, token: 'x'.repeat(20) }, snapshot, quiet);
    const raw = (line: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const c = connect(server!.port, '127.0.0.1', () => c.end(`${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('end', () => resolve(got));
        c.on('error', reject);
      });
    expect(await raw('GET //[ HTTP/1.1')).toMatch(/^HTTP\/1\.1 400 /);
    broken = true;
    const auth = { headers: { authorization: `Bearer ${'x'.repeat(20)}` } };
    expect((await fetch(`http://127.0.0.1:${server.port}/status.json`, auth)).status).toBe(500);
    broken = false;
    expect((await fetch(`http://127.0.0.1:${server.port}/status.json`, auth)).status).toBe(200);
  });

  it('a port in use is one clear line', async () => {
    server = await serveMetrics({ listen: { host: '127.0.0.1', port: 0 }, token: null }, () => fake([]), quiet);
    await expect(serveMetrics({ listen: { host: '127.0.0.1', port: server.port }, token: null }, () => fake([]), quiet)).rejects.toThrow(
      `metrics.listen 127.0.0.1:${server.port}: address in use`,
    );
  });
});
