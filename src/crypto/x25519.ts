import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';

/**
 * X25519 over node:crypto (OpenSSL): about 25k operations/s against ~900/s for
 * @noble/curves, which the handshake rate needs. Cross-checked against noble in tests.
 */
export interface X25519Key {
  /** The 32 secret bytes as given (X25519 clamps them itself). */
  readonly secret: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly object: KeyObject;
}

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

// A private key goes in as a JWK where Node takes one without its public half: before Node
// 24 it derives the public key from `d` whatever `x` says (a placeholder does), and imports a
// JWK ~13x faster than DER (OpenSSL 3.0's decoders: 24 against 300 us, per handshake for the
// ephemeral key). Node 24 checks `x` against `d`, but decodes RFC 8410's PKCS#8 (the raw 32
// bytes behind a fixed prefix, id-X25519 1.3.101.110) as fast. Which one is probed once, and
// the JWK only kept if it yields the same public key as the PKCS#8.
const PLACEHOLDER_X = b64url(new Uint8Array(32));
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const fromJwk = (secret: Uint8Array): KeyObject => createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secret), x: PLACEHOLDER_X }, format: 'jwk' });

function fromPkcs8(secret: Uint8Array): KeyObject {
  // Not Buffer.concat: that may take memory from Node's shared pool, which allocUnsafe hands
  // out again uninitialised; this buffer is the secret's alone and zeroed after the import.
  const der = Buffer.alloc(PKCS8_PREFIX.length + 32);
  PKCS8_PREFIX.copy(der);
  der.set(secret, PKCS8_PREFIX.length);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

const publicX = (key: KeyObject): unknown => key.export({ format: 'jwk' }).x;

const importPrivate = ((): ((secret: Uint8Array) => KeyObject) => {
  const probe = new Uint8Array(32).fill(1);
  try {
    if (publicX(fromJwk(probe)) === publicX(fromPkcs8(probe))) return fromJwk;
  } catch {
    // this Node checks x against d
  }
  return fromPkcs8;
})();

export function x25519Key(secret: Uint8Array): X25519Key {
  if (secret.length !== 32) throw new Error(`X25519 private key must be 32 bytes, got ${secret.length}`);
  const object = importPrivate(secret);
  const x = publicX(object);
  if (typeof x !== 'string') throw new Error('X25519: OpenSSL returned no public key');
  return { secret: Uint8Array.from(secret), publicKey: new Uint8Array(Buffer.from(x, 'base64url')), object };
}

export function x25519PublicKey(secret: Uint8Array): Uint8Array {
  return x25519Key(secret).publicKey;
}

/**
 * DH(private, public). Returns null for a low-order public key (all-zero shared secret),
 * which WireGuard must reject rather than use.
 */
export function x25519(priv: X25519Key, pub: Uint8Array): Uint8Array | null {
  if (pub.length !== 32) return null;
  let shared: Buffer;
  try {
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(pub) }, format: 'jwk' });
    shared = diffieHellman({ privateKey: priv.object, publicKey });
  } catch {
    return null; // OpenSSL refuses some low-order points outright (and a key Node would not import)
  }
  let acc = 0;
  for (let i = 0; i < 32; i++) acc |= shared[i]!;
  return acc === 0 ? null : new Uint8Array(shared.buffer, shared.byteOffset, 32);
}
