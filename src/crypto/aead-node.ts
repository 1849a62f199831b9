/**
 * BatchAead over node:crypto: OpenSSL's ChaCha20-Poly1305, but node:crypto cannot give a
 * cipher object a new nonce, so each packet pays for a createCipheriv (about 3 µs) and the
 * copies in and out of the Buffers it returns. The key object is made once per call.
 */
import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto';
import { type AeadRuns, type BatchAead, cryptEachRun, SLOT_HEADER, TAG_LENGTH } from './aead.js';
import { checkSlotArgs } from './aead-noble.js';

const ALGORITHM = 'chacha20-poly1305';

export class NodeAead implements BatchAead {
  readonly name = 'node';
  private readonly nonce = Buffer.alloc(12);

  sealSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): void {
    checkSlotArgs(key, buf, slotSize, first, count, lens, true);
    const k = createSecretKey(key);
    for (let i = first; i < first + count; i++) {
      const slot = i * slotSize;
      const p = slot + SLOT_HEADER;
      const len = lens[i] ?? 0;
      this.nonce.set(buf.subarray(slot + 8, slot + 16), 4);
      const cipher = createCipheriv(ALGORITHM, k, this.nonce, { authTagLength: TAG_LENGTH });
      buf.set(cipher.update(buf.subarray(p, p + len)), p);
      cipher.final();
      buf.set(cipher.getAuthTag(), p + len);
      lens[i] = len + TAG_LENGTH;
    }
  }

  openSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): number {
    checkSlotArgs(key, buf, slotSize, first, count, lens, false);
    const k = createSecretKey(key);
    let ok = 0;
    for (let i = first; i < first + count; i++) {
      const slot = i * slotSize;
      const p = slot + SLOT_HEADER;
      const len = lens[i] ?? -1;
      if (len < TAG_LENGTH || len > slotSize - SLOT_HEADER) {
        lens[i] = -1;
        continue;
      }
      this.nonce.set(buf.subarray(slot + 8, slot + 16), 4);
      const decipher = createDecipheriv(ALGORITHM, k, this.nonce, { authTagLength: TAG_LENGTH });
      decipher.setAuthTag(buf.subarray(p + len - TAG_LENGTH, p + len));
      const plain = decipher.update(buf.subarray(p, p + len - TAG_LENGTH));
      try {
        decipher.final();
      } catch {
        lens[i] = -1;
        continue;
      }
      buf.set(plain, p);
      lens[i] = len - TAG_LENGTH;
      ok++;
    }
    return ok;
  }

  cryptRuns(seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, runs: AeadRuns): number {
    return cryptEachRun(this, seal, buf, slotSize, lens, runs);
  }
}
