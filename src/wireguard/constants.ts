/**
 * Protocol constants, named as in the WireGuard whitepaper (section 6.1) and wireguard-go.
 * Times are milliseconds: the core runs on an injected millisecond clock.
 */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
export const REKEY_AFTER_TIME = 120_000;
const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
export const REKEY_TIMEOUT_JITTER_MAX = 334;
export const REJECT_AFTER_TIME = 180_000;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
/** wireguard-go's HandshakeInitationRate: at most one consumed initiation per peer per 20 ms. */
export const HANDSHAKE_INITIATION_RATE = 20;
/** Data sent and nothing heard back for this long: start a new handshake. */
export const NEW_HANDSHAKE_TIME = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
/** Key material of an idle peer is erased after this long without a new session. */
export const ZERO_KEY_MATERIAL_TIME = REJECT_AFTER_TIME * 3;
/** The initiator rekeys on receive once its keypair is this old (wireguard-go keepKeyFreshReceiving). */
export const REKEY_ON_RECEIVE_AGE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
/** Once under load, the cookie mechanism stays on for this long (wireguard-go UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_TIME = 1_000;
/** Packets waiting for a session, per peer (wireguard-go MaxStagedPackets). */
export const MAX_STAGED_PACKETS = 128;

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const KEY_LEN = 32;
export const MAC_LEN = 16;
export const XNONCE_LEN = 24;
/** Transport plaintexts are zero-padded to a multiple of this, but never past the MTU (whitepaper §5.4.6). */
export const PADDING = 16;
/** The tunnel MTU when none is configured: 1500 less the largest overhead (IPv6 40, UDP 8, WireGuard 32), as wg-quick. */
export const DEFAULT_MTU = 1420;
// The AEAD tag (TAG_LENGTH) and the transport header (SLOT_HEADER) are crypto/aead.ts's.
