/**
 * Editing server.yaml in place for add-client and remove-client: text spliced at positions
 * the YAML Document API gives, so every other byte (comments, alignment) stays as it was,
 * then the file replaced atomically.
 */
import { closeSync, fchmodSync, fchownSync, fstatSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isMap, isSeq, parseDocument, type Node } from 'yaml';
import { ConfigError, fsReason } from '../config/errors.js';

export const lineStart = (text: string, offset: number): number => text.lastIndexOf('\n', offset - 1) + 1;

/** The start of the comment lines right above the line at `line` (which belong to it), or `line`. */
export function commentsAbove(text: string, line: number): number {
  const lineAbove = (at: number): string => text.slice(lineStart(text, at - 1), at);
  while (line > 0 && lineAbove(line).trimStart().startsWith('#')) line = lineStart(text, line - 1);
  return line;
}

/**
 * Run as root, gives a file written for the server to the owner of `like` (its config): a server
 * run as its own user (the systemd unit's tvpn) must go on reading it. On the open file, so a
 * path swapped for a link meanwhile cannot redirect the chown.
 */
export function chownLike(fd: number, like: string): void {
  if (process.getuid?.() !== 0) return;
  const { uid, gid } = statSync(like);
  if (fstatSync(fd).uid !== uid) fchownSync(fd, uid, gid);
}

/** Replaces a file atomically (write beside it, then rename), keeping its mode (whatever the umask) and owner. */
export function replaceFile(path: string, text: string, mode: number): void {
  const target = realpathSync(path);
  const tmp = join(dirname(target), `.${basename(target)}.tvpn-${process.pid}`);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      chownLike(fd, target);
      writeFileSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // it was never written
    }
    throw new ConfigError(`cannot update ${path}: ${fsReason(err)}`);
  }
}

/**
 * The server config text without the client `name`: in a block list its lines go, with the
 * comment lines right above it; a flow list is re-rendered through the Document API.
 */
export function removeClientEntry(text: string, name: string, file: string): string {
  const doc = parseDocument(text);
  const clients = isMap(doc.contents) ? doc.contents.get('clients', true) : undefined;
  const items = isSeq(clients) ? (clients.items as Node[]) : [];
  const i = items.findIndex((item) => isMap(item) && item.get('name') === name);
  if (!isSeq(clients) || i < 0) {
    const names = items.flatMap((item) => (isMap(item) ? [String(item.get('name'))] : []));
    throw new ConfigError(`${file}: no client named '${name}' (${names.length > 0 ? `clients: ${names.join(', ')}` : 'it has no clients'})`);
  }
  const item = items[i]!;
  const next = items[i + 1];
  if (clients.flow || !item.range || (next !== undefined && !next.range)) {
    clients.items.splice(i, 1);
    return doc.toString({ lineWidth: 0 });
  }
  const start = commentsAbove(text, lineStart(text, item.range[0]));
  const itemEnd = item.range[2];
  const end = next?.range ? commentsAbove(text, lineStart(text, next.range[0])) : text[itemEnd - 1] === '\n' ? itemEnd : text.indexOf('\n', itemEnd) + 1 || text.length;
  return text.slice(0, start) + text.slice(end);
}
