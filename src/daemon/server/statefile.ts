/**
 * The server's files in state_dir (leases.json, traffic.json): each written to the file and
 * then to its `.bak` copy, each atomically (tmp file, fsync, rename, directory fsync), so a
 * crash leaves an old copy or a new one, never a mix, and at least one of the two is whole.
 * A damaged file is set aside (<file>.corrupt-<ms>) and the backup read instead.
 */
import { accessSync, closeSync, constants, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, fsReason, userName } from '../../config/errors.js';

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

/**
 * Creates state_dir and checks it is writable at start-up, not at the first lease write: a
 * relative state_dir on a read-only config mount (Docker) fails here, in one line with the fix.
 */
export function prepareStateDir(dir: string, configFile: string): void {
  try {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      // Node's recursive mkdir says ENOENT on a read-only file system; the nearest existing directory tells why.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') accessSync(existingAncestor(dir), constants.W_OK);
      throw err;
    }
    accessSync(dir, constants.W_OK);
  } catch (err) {
    // Not the daemon's to write: the machine's setup (exit 1), not the config's (exit 2).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`state_dir ${dir}: ${fsReason(err)} for user ${userName()}; make it that user's (the tvpn-server unit's StateDirectory=tvpn does so for /var/lib/tvpn)`);
    }
    const fix = 'set state_dir to a writable directory such as /var/lib/tvpn (in Docker, the volume mounted there)';
    throw new ConfigError(`${configFile}: state_dir: cannot use ${dir}: ${fsReason(err)}; ${fix}`);
  }
}

const existingAncestor = (path: string): string => (existsSync(path) || dirname(path) === path ? path : existingAncestor(dirname(path)));
