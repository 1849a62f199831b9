/**
 * OpenVPN 2.6 (Debian's), userspace data channel (disable-dco), UDP, dev tun, TLS with a
 * throwaway P-256 CA made by openssl (ECDH, so `dh none`). The server's data-ciphers order
 * picks the cipher (it takes its first one the client offers); the client offers both and the
 * negotiated cipher is checked in its log. Over TCP (the anchor for tvpn's TCP transport):
 * tcp-server/tcp-client with tcp-nodelay, AES-256-GCM.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProc, until } from '../../test/helpers/tvpn.js';
import { daemonTunnel, logsOf, TUNNEL_MTU, tunnelAddr, untilPing, type TunnelSystem } from './common.js';

export type OpenvpnCipher = 'AES-256-GCM' | 'CHACHA20-POLY1305';

const CIPHERS: readonly OpenvpnCipher[] = ['AES-256-GCM', 'CHACHA20-POLY1305'];
const PORT = 1194;

const openssl = (dir: string, args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });

/** ca.crt, and server/client key and certificate with the key usages remote-cert-tls checks. */
function makePki(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tvpn-bench-ca']);
  for (const [name, usage] of [
    ['server', 'serverAuth'],
    ['client', 'clientAuth'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=${usage}\n`);
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
  }
}

export function openvpn(cipher: OpenvpnCipher, proto: 'udp' | 'tcp' = 'udp'): TunnelSystem {
  const preferred = [cipher, ...CIPHERS.filter((c) => c !== cipher)].join(':');
  const tcp = proto === 'tcp';
  return {
    name: tcp ? 'openvpn-tcp' : cipher === 'AES-256-GCM' ? 'openvpn-aes' : 'openvpn-chacha',
    async up(pair, dir) {
      makePki(dir);
      const serverAddr = tunnelAddr(pair, 1);
      const common = `dev tun0\ntun-mtu ${TUNNEL_MTU}\ndisable-dco\nca ca.crt\nverb 3\n`;
      writeFileSync(
        join(dir, 'server.conf'),
        `${common}proto ${tcp ? 'tcp4-server\ntcp-nodelay' : 'udp4'}\nlocal ${pair.a.addr}\nport ${PORT}\ntopology subnet\nserver ${serverAddr.replace(/\.1$/, '.0')} 255.255.255.0\n` +
          `cert server.crt\nkey server.key\ndh none\ndata-ciphers ${preferred}\nkeepalive 10 60\n`,
      );
      writeFileSync(
        join(dir, 'client.conf'),
        `${common}proto ${tcp ? 'tcp4-client' : 'udp4'}\nclient\nremote ${pair.a.addr} ${PORT}\nnobind\ncert client.crt\nkey client.key\nremote-cert-tls server\ndata-ciphers ${CIPHERS.join(':')}\n`,
      );
      const server = startProc(pair.a, 'openvpn', ['--cd', dir, '--config', 'server.conf']);
      await until('openvpn server', () => server.log().includes('Initialization Sequence Completed'), 15_000).catch((err: Error) =>
        Promise.reject(new Error(`${err.message}\n${server.log()}`)),
      );
      const client = startProc(pair.b, 'openvpn', ['--cd', dir, '--config', 'client.conf']);
      const logs = (): string => logsOf(server, client);
      await until('openvpn client connected', () => client.log().includes('Initialization Sequence Completed'), 20_000).catch((err: Error) =>
        Promise.reject(new Error(`${err.message}\n${logs()}`)),
      );
      const negotiated = /Data Channel: cipher '([^']+)'/.exec(client.log())?.[1];
      if (negotiated !== cipher) throw new Error(`openvpn negotiated ${negotiated ?? 'no cipher'}, not ${cipher}\n${logs()}`);
      await untilPing(pair, serverAddr, logs);
      return daemonTunnel(serverAddr, server, client);
    },
  };
}
