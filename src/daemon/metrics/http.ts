/**
 * The metrics listener (config `metrics`): /metrics in Prometheus text, and the status page at
 * / with its assets and status.json. Without a token only loopback may ask, and only by an IP
 * or localhost in Host (a DNS-rebinding page cannot reach it); with one, every request needs it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIP, type AddressInfo } from 'node:net';
import { isLoopback, type MetricsConfig } from '../../config/metrics.js';
import { formatEndpoint } from '../../net/endpoint.js';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../log.js';
import { SAMPLE_MS, ThroughputHistory } from './history.js';
import { PAGE_CSS, PAGE_SCRIPT, pageHtml } from './page.js';
import { MetricsText } from './registry.js';
import type { MetricsSnapshot } from './snapshot.js';

const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
};

export interface Denial {
  code: 401 | 403;
  text: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Why a request may not be answered, or null. `remote` is the peer's address. */
export function denial(token: string | null, remote: string | undefined, headers: IncomingHttpHeaders, url: URL): Denial | null {
  if (token !== null) {
    const given = /^Bearer (\S+)$/i.exec(headers.authorization ?? '')?.[1] ?? url.searchParams.get('token');
    return given !== null && timingSafeEqual(digest(given), digest(token)) ? null : { code: 401, text: 'a token is required: Authorization: Bearer <metrics.token>, or ?token=' };
  }
  if (remote === undefined || !isLoopback(remote)) return { code: 403, text: 'loopback only (set metrics.token to allow other addresses)' };
  const host = (headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || isIP(host) !== 0 ? null : { code: 403, text: 'Host must be an IP address or localhost' };
}

/** uPlot's browser build and stylesheet, read once from node_modules. */
function uplotAssets(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  const read = (file: string): string => readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
  return { js: read('uPlot.iife.min.js'), css: read('uPlot.min.css') };
}

export interface MetricsServer {
  port: number;
  /** Stops listening and drops open connections (a browser keeps one alive). */
  close(): Promise<void>;
}

/** Serves until closed; resolves once listening. `snapshot` is read per scrape, poll and sample. */
export async function serveMetrics(cfg: MetricsConfig, snapshot: () => MetricsSnapshot, log: Logger): Promise<MetricsServer> {
  const { interface: interfaceName, role } = snapshot().status;
  const text = new MetricsText(interfaceName, role);
  const history = new ThroughputHistory();
  const uplot = uplotAssets();
  const assets: Record<string, [string, string]> = {
    '/status.js': ['text/javascript; charset=utf-8', PAGE_SCRIPT],
    '/status.css': ['text/css; charset=utf-8', PAGE_CSS],
    '/uplot.js': ['text/javascript; charset=utf-8', uplot.js],
    '/uplot.css': ['text/css; charset=utf-8', uplot.css],
  };
  const sample = (): void => {
    try {
      history.sample(snapshot().status.peers, Date.now());
    } catch (err) {
      log.warn(`metrics: ${errorMessage(err)}`); // a timer's exception would take the daemon down
    }
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_MS).unref();

  const handle = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const send = (code: number, type: string, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(code, { ...HEADERS, 'content-type': type, ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const denied = denial(cfg.token, req.socket.remoteAddress, req.headers, url);
    if (denied) return send(denied.code, 'text/plain; charset=utf-8', `${denied.text}\n`, denied.code === 401 ? { 'www-authenticate': 'Bearer' } : {});
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'GET only\n', { allow: 'GET, HEAD' });
    const asset = assets[url.pathname];
    if (asset) return send(200, asset[0], asset[1]);
    if (url.pathname === '/') {
      const token = url.searchParams.get('token');
      return send(200, 'text/html; charset=utf-8', pageHtml(token === null ? '' : `?token=${encodeURIComponent(token)}`));
    }
    if (url.pathname === '/status.json') {
      const body = { now: Date.now() / 1000, status: snapshot().status, history: history.toJSON() };
      return send(200, 'application/json', JSON.stringify(body));
    }
    if (url.pathname !== '/metrics') return send(404, 'text/plain; charset=utf-8', 'not found: try / or /metrics\n');
    text.render(snapshot()).then(
      (body) => send(200, text.contentType, body),
      (err: unknown) => {
        log.warn(`metrics: ${errorMessage(err)}`);
        send(500, 'text/plain; charset=utf-8', 'metrics failed, see the daemon log\n');
      },
    );
  };
  // Whatever a request holds (a URL that does not parse, a snapshot that throws) is answered
  // here: an exception escaping a request handler would take the whole daemon down.
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      res.writeHead(400, HEADERS).end();
      return;
    }
    try {
      handle(req, res, url);
    } catch (err) {
      log.warn(`metrics: ${errorMessage(err)}`);
      if (!res.headersSent) res.writeHead(500, HEADERS);
      res.end();
    }
  });
  server.maxConnections = 64;
  server.on('close', () => clearInterval(sampler));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      clearInterval(sampler);
      const why = err.code === 'EADDRINUSE' ? 'address in use' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : err.message;
      reject(new Error(`metrics.listen ${formatEndpoint({ ip: cfg.listen.host, port: cfg.listen.port })}: ${why}`));
    });
    server.listen(cfg.listen.port, cfg.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const where = `http://${formatEndpoint({ ip: cfg.listen.host, port })}`;
  log.info(`metrics on ${where}/metrics, status page on ${where}/${cfg.token === null ? ' (loopback only)' : ' (token required)'}`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
