/** The systems the tunnel benchmark compares, in report order: the veth ceiling first, then tvpn. */
import type { TunnelSystem } from './common.js';
import { openvpn } from './openvpn.js';
import { tvpn } from './tvpn.js';
import { veth } from './veth.js';
import { wireguardGo } from './wireguard-go.js';

export type { Tunnel, TunnelSystem } from './common.js';

export const SYSTEMS: readonly TunnelSystem[] = [veth, tvpn, openvpn('AES-256-GCM'), openvpn('CHACHA20-POLY1305'), wireguardGo];
