import { networkOf } from '../net/cidr.js';
import { encodeKey, publicKeyOf } from './keys.js';
import type { ServerConfig } from './server.js';

export interface WgQuickOptions {
  /** What the client would otherwise be pushed, and the server's key. */
  server: Pick<ServerConfig, 'interface' | 'privateKey' | 'push'>;
  privateKey: Uint8Array;
  /** The client's static tunnel addresses (a stock client gets none pushed): one per server address. */
  addresses: string[];
  presharedKey: Uint8Array | null;
  /** host:port as it goes in the file (IPv6 in brackets). */
  endpoint: string;
}

/**
 * A wg-quick config for a stock WireGuard client (wg-quick, the official apps): the settings
 * a tvpn client would be pushed, written out statically.
 */
export function wgQuickConfig(opts: WgQuickOptions): string {
  const { interface: iface, push } = opts.server;
  // wg-quick turns AllowedIPs into routes, so this is how redirect_gateway and routes reach a stock client.
  const subnets = [iface.address, ...(iface.address6 ? [iface.address6] : [])];
  const allowed = push.redirectGateway ? ['0.0.0.0/0', '::/0'] : [...subnets.map((s) => networkOf(s.text)), ...push.routes];
  const lines = [
    '[Interface]',
    `PrivateKey = ${encodeKey(opts.privateKey)}`,
    `Address = ${opts.addresses.map((a, i) => `${a}/${subnets[i]!.prefix}`).join(', ')}`,
    ...(push.dns.length > 0 ? [`DNS = ${push.dns.join(', ')}`] : []),
    `MTU = ${push.mtu}`,
    '',
    '[Peer]',
    `PublicKey = ${encodeKey(publicKeyOf(opts.server.privateKey))}`,
    ...(opts.presharedKey !== null ? [`PresharedKey = ${encodeKey(opts.presharedKey)}`] : []),
    `Endpoint = ${opts.endpoint}`,
    `AllowedIPs = ${allowed.join(', ')}`,
    ...(push.keepalive > 0 ? [`PersistentKeepalive = ${push.keepalive}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** Keys wg-quick handles itself and `wg setconf` rejects (as `wg-quick strip` drops them). */
const WG_QUICK_ONLY = new Set(['address', 'dns', 'mtu', 'table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig']);

/** The config with wg-quick-only [Interface] keys removed, for `wg setconf`; other lines are kept as they are. */
export function stripWgQuick(text: string): string {
  let inInterface = false;
  const kept = text.split(/(?<=\n)/).filter((line) => {
    const body = line.replace(/#.*/, '').trim();
    if (body.startsWith('[')) inInterface = body.toLowerCase() === '[interface]';
    const key = /^([^=]+?)\s*=/.exec(body)?.[1]?.toLowerCase();
    return !(inInterface && key !== undefined && WG_QUICK_ONLY.has(key));
  });
  return kept.join('');
}
