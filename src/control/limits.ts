/**
 * What the control channel can push. The config validator checks push settings against these
 * (so `tvpn check` refuses what could never be pushed, naming the limit) and the message
 * decoder enforces them on the wire; clients already deployed enforce the same numbers, so
 * raising one needs a new protocol version.
 */

/** Room for the WireGuard header, padding and tag inside the tunnel MTU. */
export const CONTROL_HEADROOM = 32;

/** The smallest MTU: what every IPv4 host must take (RFC 791); IPv6 links need 1280 (RFC 8200 §5). */
export const MIN_MTU = 576;
export const MIN_MTU_IPV6 = 1280;

/** The largest pushed MTU: jumbo frames, the largest link MTU in common use. A client's tun can get any MTU up to it. */
export const MAX_PUSH_MTU = 9000;

/**
 * The longest pushed lists. The largest snapshot they allow (1024 of the longest IPv6 routes
 * and 8 DNS servers) is about 48 KB, inside one control message (MAX_MESSAGE, 64 KiB).
 */
export const MAX_PUSH_ROUTES = 1024;
export const MAX_PUSH_DNS = 8;

/**
 * The longest pushed keepalive, in seconds. A keepalive holds NAT and firewall mappings open,
 * and those expire within minutes (RFC 4787 asks for at least two); past an hour it holds
 * nothing open, and a client would take over three hours (three keepalives) to notice a dead server.
 */
export const MAX_PUSH_KEEPALIVE = 3600;

/** Why an MTU cannot be pushed (the tun's own bounds are checked where it is configured), or null. */
export const pushMtuProblem = (mtu: number): string | null =>
  mtu > MAX_PUSH_MTU ? `${mtu} is above ${MAX_PUSH_MTU}, the largest MTU the control channel can push` : null;

/** Why a keepalive (seconds, at least 0) cannot be pushed, or null. */
export const pushKeepaliveProblem = (seconds: number): string | null =>
  seconds > MAX_PUSH_KEEPALIVE ? `${seconds} is above ${MAX_PUSH_KEEPALIVE}, the longest keepalive the control channel can push` : null;

/** Most servers a fleet's config message lists (the client's own and the others it fails over to). */
export const MAX_FLEET_SERVERS = 16;
