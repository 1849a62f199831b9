/**
 * Noise SymmetricState (Noise spec section 5.2) over BLAKE2s and ChaCha20-Poly1305.
 * WireGuard's handshake is Noise_IKpsk2 with the identifier as prologue; it is written
 * here once, generically, so the cacophony test vectors check the same code WireGuard runs.
 */
import { AEAD, AEAD_OPEN, HASH, KDF, bytes, concat } from './primitives.js';

export class SymmetricState {
  private k: Uint8Array | null = null;
  private n = 0n;

  private constructor(
    /** The chaining key, Ci/Cr in the whitepaper. */
    public ck: Uint8Array,
    /** The handshake hash, Hi/Hr in the whitepaper. */
    public h: Uint8Array,
  ) {}

  /** InitializeSymmetric(protocol_name) then MixHash(prologue). */
  static initialize(protocolName: string, prologue: Uint8Array): SymmetricState {
    const name = bytes(protocolName);
    const h = name.length <= 32 ? concat(name, new Uint8Array(32 - name.length)) : HASH(name);
    const s = new SymmetricState(h, h);
    s.mixHash(prologue);
    return s;
  }

  clone(): SymmetricState {
    const s = new SymmetricState(Uint8Array.from(this.ck), Uint8Array.from(this.h));
    s.k = this.k && Uint8Array.from(this.k);
    s.n = this.n;
    return s;
  }

  mixHash(data: Uint8Array): void {
    this.h = HASH(this.h, data);
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = KDF(2, this.ck, ikm) as [Uint8Array, Uint8Array];
    this.ck = ck;
    this.k = k;
    this.n = 0n;
  }

  /** The psk token: (ck, τ, k) = KDF3(ck, psk); MixHash(τ). */
  mixKeyAndHash(psk: Uint8Array): void {
    const [ck, t, k] = KDF(3, this.ck, psk) as [Uint8Array, Uint8Array, Uint8Array];
    this.ck = ck;
    this.mixHash(t);
    this.k = k;
    this.n = 0n;
  }

  encryptAndHash(plain: Uint8Array): Uint8Array {
    if (!this.k) throw new Error('noise: encrypt before any key was mixed');
    const c = AEAD(this.k, this.n++, plain, this.h);
    this.mixHash(c);
    return c;
  }

  /** Null when the ciphertext does not authenticate; the state is then unchanged. */
  decryptAndHash(sealed: Uint8Array): Uint8Array | null {
    if (!this.k) throw new Error('noise: decrypt before any key was mixed');
    const p = AEAD_OPEN(this.k, this.n, sealed, this.h);
    if (!p) return null;
    this.n++;
    this.mixHash(sealed);
    return p;
  }

  /** Split(): the initiator's (send, receive) keys, the responder's (receive, send). */
  split(): [Uint8Array, Uint8Array] {
    return KDF(2, this.ck, new Uint8Array(0)) as [Uint8Array, Uint8Array];
  }

  /** Erases the secrets this state holds. */
  wipe(): void {
    this.ck.fill(0);
    this.k?.fill(0);
    this.k = null;
  }
}
