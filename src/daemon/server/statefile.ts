/**
 * The server's files in state_dir (leases.json, traffic.json): each written to the file and
 * then to its `.bak` copy, each atomically (tmp file, fsync, rename, directory fsync), so a
 * crash leaves an old copy or a new one, never a mix, and at least one of the two is whole.
 * A damaged file is set aside (<file>.corrupt-<ms>) and the backup read instead.
 */
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** A WireGuard public key in base64, as state files key their entries. */
export const PUBLIC_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** The second copy of a state file. */
export const BACKUP = '.bak';

/** Writes data to file and then to its backup. */
export function writeWithBackup(file: string, data: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeAtomically(file, data);
  writeAtomically(`${file}${BACKUP}`, data);
}

/**
 * The parsed file: [] (as `none`) when there is none, null (with a warning) when it is
 * damaged, which moves it aside. `what` names it in the warning ("lease file").
 */
export function readStateFile<T>(file: string, parse: (text: string) => T, none: T, what: string, warnings: string[]): T | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return file.endsWith(BACKUP) ? null : none;
    throw e;
  }
  try {
    return parse(text);
  } catch (e) {
    const aside = `${file}.corrupt-${Date.now()}`;
    renameSync(file, aside);
    warnings.push(`${what} ${file} is corrupt (${(e as Error).message}); moved to ${aside}`);
    return null;
  }
}

function writeAtomically(file: string, data: Buffer): void {
  const tmp = `${file}.tmp`;
  try {
    withFd(tmp, 'w', (fd) => {
      fchmodSync(fd, 0o600); // a stale tmp file keeps its old mode
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
      fsyncSync(fd);
    });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  withFd(dirname(file), 'r', fsyncSync); // makes the rename itself durable
}

function withFd(path: string, flags: string, use: (fd: number) => void): void {
  const fd = openSync(path, flags, 0o600);
  try {
    use(fd);
  } finally {
    closeSync(fd);
  }
}
