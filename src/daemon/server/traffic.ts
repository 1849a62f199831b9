/**
 * Per-client traffic totals kept in state_dir/traffic.json (written like leases.json, with
 * its backup): bytes since the client was first seen, across server restarts, and in memory
 * the bytes since this daemon started. Also the latest handshake, for `tvpn list-clients`
 * while the server is not running.
 */
import { PUBLIC_KEY_RE, readStateFile, writeWithBackup } from './statefile.js';

export interface ClientTotals {
  name: string;
  /** Wall-clock ms of the first traffic counted, 0 for none yet. */
  firstSeen: number;
  /** Wall-clock ms of the latest handshake, 0 for none. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
}

const FILE_VERSION = 1;

export class TrafficTotals {
  private readonly totals = new Map<string, ClientTotals>();
  private readonly sinceStart = new Map<string, { rxBytes: number; txBytes: number }>();
  private dirty = false;

  /** `file` null keeps the totals in memory only. */
  constructor(private readonly file: string | null) {}

  /** Reads the file (or its backup); returns warnings for the log. */
  load(): string[] {
    if (this.file === null) return [];
    const warnings: string[] = [];
    const stored = readTraffic(this.file, warnings) ?? readTraffic(`${this.file}.bak`, warnings) ?? {};
    for (const [key, t] of Object.entries(stored)) this.totals.set(key, t);
    return warnings;
  }

  /** Counts bytes moved since the last call for this client, and its latest handshake (wall-clock ms). */
  add(key: string, name: string, rx: number, tx: number, lastHandshake: number, wallMs: number): void {
    let t = this.totals.get(key);
    if (t === undefined) this.totals.set(key, (t = { name, firstSeen: 0, lastHandshake: 0, rxBytes: 0, txBytes: 0 }));
    const s = this.sinceStart.get(key) ?? { rxBytes: 0, txBytes: 0 };
    this.sinceStart.set(key, s);
    if (rx === 0 && tx === 0 && lastHandshake <= t.lastHandshake && t.name === name) return;
    if (t.firstSeen === 0) t.firstSeen = wallMs;
    Object.assign(t, { name, lastHandshake: Math.max(t.lastHandshake, lastHandshake), rxBytes: t.rxBytes + rx, txBytes: t.txBytes + tx });
    s.rxBytes += rx;
    s.txBytes += tx;
    this.dirty = true;
  }

  totalsOf(key: string): ClientTotals | undefined {
    return this.totals.get(key);
  }

  startedOf(key: string): { rxBytes: number; txBytes: number } {
    return this.sinceStart.get(key) ?? { rxBytes: 0, txBytes: 0 };
  }

  /** Writes the totals of the clients in `keep` (the configured ones) if anything changed. */
  flush(keep: ReadonlySet<string>): void {
    for (const key of this.totals.keys()) {
      if (keep.has(key)) continue;
      this.totals.delete(key);
      this.dirty = true;
    }
    if (this.file === null || !this.dirty) return;
    const clients = Object.fromEntries(this.totals);
    writeWithBackup(this.file, Buffer.from(JSON.stringify({ version: FILE_VERSION, clients }, null, 2) + '\n'));
    this.dirty = false;
  }
}

/** The stored totals by public key: {} when there is no file, null when it is damaged. */
export function readTraffic(file: string, warnings: string[]): Record<string, ClientTotals> | null {
  return readStateFile(file, parseFile, {}, 'traffic file', warnings);
}

function parseFile(text: string): Record<string, ClientTotals> {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || !('version' in v) || v.version !== FILE_VERSION || !('clients' in v) || typeof v.clients !== 'object' || v.clients === null) {
    throw new Error(`expected {"version": ${FILE_VERSION}, "clients": {...}}`);
  }
  const out: Record<string, ClientTotals> = {};
  for (const [key, value] of Object.entries(v.clients as Record<string, unknown>)) {
    const o = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    const numbers = [o['firstSeen'], o['lastHandshake'], o['rxBytes'], o['txBytes']];
    if (!PUBLIC_KEY_RE.test(key) || typeof o['name'] !== 'string' || !numbers.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)) {
      throw new Error(`bad entry for ${key.slice(0, 44)}`);
    }
    out[key] = { name: o['name'], firstSeen: o['firstSeen'] as number, lastHandshake: o['lastHandshake'] as number, rxBytes: o['rxBytes'] as number, txBytes: o['txBytes'] as number };
  }
  return out;
}
