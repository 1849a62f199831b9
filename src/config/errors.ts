import { userInfo } from 'node:os';
import { errorMessage } from '../errors.js';

/**
 * Bad input from the user: a config file, a key, a command-line argument. The message is one
 * line that says what is wrong and how to fix it; the CLI prints it as `tvpn: <message>` and
 * exits with exitCode, which is 2 so scripts can tell bad input from runtime failures (1).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly exitCode: number = 2;
}

/** A short reason for a failed file-system call, e.g. "no such file" rather than Node's ENOENT text. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'ENOTDIR':
      return 'a parent of it is not a directory';
    case 'EEXIST':
      return 'already exists';
    case 'EROFS':
      return 'read-only file system';
    default:
      return errorMessage(err);
  }
}

/** This process's user name (uid N without a passwd entry): for "make it that user's" hints. */
export function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
