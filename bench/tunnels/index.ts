/** The systems the tunnel benchmark compares, in report order: the veth ceiling first, then tvpn and its node-relay floor. */
import type { TunnelSystem } from './common.js';
import { openvpn } from './openvpn.js';
import { nodeRelay } from './relay.js';
import { tvpn, tvpnTcp, tvpnTls } from './tvpn.js';
import { veth } from './veth.js';
import { wireguardGoSystem, wireguardGoTrixie } from './wireguard-go.js';

export type { SystemInfo, Tunnel, TunnelSystem } from './common.js';

export const SYSTEMS: readonly TunnelSystem[] = [
  veth,
  tvpn,
  // A reference, like veth: tvpn's I/O and AEAD without the protocol (issue 13's idle latency).
  nodeRelay,
  openvpn('AES-256-GCM'),
  openvpn('CHACHA20-POLY1305'),
  wireguardGoSystem,
  wireguardGoTrixie,
  // Issue 16: tvpn over TCP and TLS, with OpenVPN over TCP as the anchor.
  tvpnTcp,
  tvpnTls,
  openvpn('AES-256-GCM', 'tcp'),
];
