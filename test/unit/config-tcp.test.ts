/**
 * The TCP transport's keys: the server's tcp listener with an optional TLS certificate and
 * key (read and checked as a pair at load, one-line errors naming the fix), the client's
 * server.tcp endpoint and server.transport (auto by default when tcp is set, else udp).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { parseClientConfig } from '../../src/config/client.js';
import { parseServerConfig } from '../../src/config/server.js';
import { loadClientConfig } from '../../src/config/client.js';
import { decodeMessage, encodeMessage, type ConfigMessage } from '../../src/control/messages.js';
import { tvpn } from './support/cli.js';
import { CHEAD, F, HEAD, clientError, dir, pub, serverError, useConfigDir } from './support/config.js';

useConfigDir();

function makeCert(name: string, cn = 'vpn.example.com'): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
}

test('server: tcp is off by default; listen alone is plain TCP; tls reads the pair', () => {
  expect(parseServerConfig(HEAD, F).tcp).toBeNull();
  expect(parseServerConfig(`${HEAD}tcp: { listen: 0.0.0.0:443 }\n`, F).tcp).toEqual({ listen: { host: '0.0.0.0', port: 443 }, tls: null, endpoint: null });
  makeCert('tls');
  const c = parseServerConfig(`${HEAD}tcp:\n  listen: '[::]:443'\n  endpoint: vpn.example.com:443\n  tls: { cert: tls.crt, key: tls.key }\n`, F).tcp!;
  expect(c.listen).toEqual({ host: '::', port: 443 });
  expect(c.endpoint).toEqual({ host: 'vpn.example.com', port: 443 });
  expect(c.tls!.cert).toEqual(readFileSync(join(dir, 'tls.crt')));
  expect(c.tls!.key.toString()).toContain('PRIVATE KEY');
});

test('server: a missing, unreadable, non-PEM or mismatched certificate or key is one line with the fix', async () => {
  expect(serverError(`${HEAD}tcp: {}\n`)).toBe(`DIR/server.yaml:3: tcp: missing 'listen' (the TCP address to listen on, e.g. 0.0.0.0:443)`);
  expect(serverError(`${HEAD}tcp: { listen: 443 }\n`)).toBe("DIR/server.yaml:3: tcp.listen: expected host:port, got the number 443; write 0.0.0.0:443 (or '[::]:443' for IPv6, quoted)");
  expect(serverError(`${HEAD}tcp: { listen: 0.0.0.0:443, tls: { key: tls.key } }\n`)).toMatch(/^DIR\/server\.yaml:3: tcp\.tls: missing 'cert' \(the certificate file; make a self-signed pair with: openssl req -x509 /);
  expect(serverError(`${HEAD}tcp: { listen: 0.0.0.0:443, tls: { cert: no.crt, key: no.key } }\n`)).toMatch(
    /^DIR\/server\.yaml:3: tcp\.tls\.cert: cannot read the TLS certificate DIR\/no\.crt: no such file; make a self-signed pair with: openssl req/,
  );
  writeFileSync(join(dir, 'junk.crt'), 'hello\n');
  makeCert('a');
  expect(serverError(`${HEAD}tcp: { listen: 0.0.0.0:443, tls: { cert: junk.crt, key: a.key } }\n`)).toMatch(/tcp\.tls\.cert: DIR\/junk\.crt is not PEM \(no -----BEGIN line\)/);
  makeCert('b');
  expect(serverError(`${HEAD}tcp: { listen: 0.0.0.0:443, tls: { cert: a.crt, key: b.key } }\n`)).toMatch(
    /^DIR\/server\.yaml:3: tcp\.tls: the certificate DIR\/a\.crt and key DIR\/b\.key are refused \(.*\); they must be a matching PEM pair$/,
  );
  expect(serverError(`${HEAD}tcp: { listen: 0.0.0.0:443, tls: { cert: a.crt, key: a.key, ca: x } }\n`)).toMatch(/unknown key 'tcp\.tls\.ca'/);
  writeFileSync(F, `${HEAD}tcp: { listen: 0.0.0.0:443, tls: { cert: a.crt, key: b.key } }\n`, { mode: 0o600 });
  const check = await tvpn('check', '-c', F);
  expect(check.code).not.toBe(0);
  expect(check.err.trimEnd()).toMatch(/^[^\n]*tcp\.tls: the certificate .*a\.crt and key .*b\.key are refused \(.*\); they must be a matching PEM pair$/);
});

test('client: auto by default (UDP until a TCP endpoint is known); tls takes the DNS name as SNI', () => {
  const file = join(dir, 'client.yaml');
  expect(parseClientConfig(CHEAD, file).server).toMatchObject({ tcp: null, transport: 'auto' });
  const withTcp = `server:\n  endpoint: vpn.example.com:51820\n  public_key: ${pub(1)}\n  tcp: { endpoint: vpn.example.com:443, tls: true }\nprivate_key_file: client.key\n`;
  expect(parseClientConfig(withTcp, file).server).toMatchObject({
    transport: 'auto',
    tcp: { host: 'vpn.example.com', port: 443, tls: true, serverName: 'vpn.example.com' },
  });
  const byIp = `server:\n  endpoint: 192.0.2.1:51820\n  public_key: ${pub(1)}\n  transport: tcp\n  tcp: { endpoint: 192.0.2.1:443 }\nprivate_key_file: client.key\n`;
  expect(parseClientConfig(byIp, file).server).toMatchObject({ transport: 'tcp', tcp: { host: '192.0.2.1', tls: false, serverName: '' } });
  const sni = byIp.replace('192.0.2.1:443 }', "192.0.2.1:443, tls: true, server_name: cdn.example.org }");
  expect(parseClientConfig(sni, file).server.tcp!.serverName).toBe('cdn.example.org');
});

test('client: tcp without a TCP endpoint, or an unknown transport, is one line', () => {
  const t = (transport: string) => `server:\n  endpoint: vpn.example.com:51820\n  public_key: ${pub(1)}\n  transport: ${transport}\nprivate_key_file: client.key\n`;
  expect(clientError(t('tcp'))).toBe(
    'DIR/client.yaml:4: server.transport: transport tcp needs the server\'s TCP endpoint: add tcp: { endpoint: vpn.example.com:443 } to server',
  );
  expect(parseClientConfig(t('auto'), join(dir, 'client.yaml')).server.transport).toBe('auto');
  expect(parseClientConfig(t('udp'), join(dir, 'client.yaml')).server.transport).toBe('udp');
  expect(clientError(t('quic'))).toMatch(/^DIR\/client\.yaml:4: server\.transport: .*auto.*udp.*tcp/);
});

test('add-client writes server.tcp: the listener on the UDP endpoint\'s host, or tcp.endpoint', async () => {
  makeCert('tls');
  writeFileSync(F, `${HEAD}endpoint: vpn.example.com:51820\ntcp: { listen: 0.0.0.0:443, tls: { cert: tls.crt, key: tls.key } }\n`, { mode: 0o600 });
  const out = join(dir, 'laptop.yaml');
  expect((await tvpn('add-client', 'laptop', '-c', F, '--out', out, '--no-reload')).code).toBe(0);
  expect(loadClientConfig(out).server).toMatchObject({ transport: 'auto', tcp: { host: 'vpn.example.com', port: 443, tls: true, serverName: 'vpn.example.com' } });
  expect((await tvpn('check', '-c', out)).out).toContain('server vpn.example.com:51820, falling back to TLS vpn.example.com:443)');
  expect((await tvpn('check', '-c', F)).out).toContain(', TLS 0.0.0.0:443)');
  writeFileSync(F, `${HEAD}endpoint: vpn.example.com:51820\ntcp: { listen: 0.0.0.0:8443, endpoint: '[2001:db8::1]:443' }\n`, { mode: 0o600 });
  const phone = join(dir, 'phone.yaml');
  expect((await tvpn('add-client', 'phone', '-c', F, '--out', phone, '--no-reload')).code).toBe(0);
  expect(loadClientConfig(phone).server.tcp).toEqual({ host: '2001:db8::1', port: 443, tls: false, serverName: '' });
});

test('the pushed listener (protocol 3) is checked like every field of a config message', () => {
  const base: ConfigMessage = { type: 'config', serial: 1, address: '10.8.0.2/24', gateway: '10.8.0.1', mtu: 1420, routes: [], dns: [], redirectGateway: false, keepalive: 25 };
  const ok = { ...base, tcp: { endpoint: 'vpn.example.com:443', tls: true } };
  expect(decodeMessage(encodeMessage(ok))).toEqual(ok);
  const bad = (tcp: unknown): string => (decodeMessage(new TextEncoder().encode(JSON.stringify({ ...base, tcp }))) as { error: string }).error;
  expect(bad({ endpoint: 'vpn.example.com', tls: true })).toMatch(/^tcp\.endpoint: /);
  expect(bad({ endpoint: 'vpn.example.com:443' })).toBe('tcp.tls: missing');
  expect(bad({ endpoint: 'vpn.example.com:443', tls: 'yes' })).toBe('tls: must be a boolean');
  expect(bad({ endpoint: 'vpn.example.com:443', tls: true, sni: 'x' })).toBe('tcp.sni: unknown field');
  expect(bad('vpn.example.com:443')).toBe('tcp: not an object');
});
