import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import { MIN_MTU, MIN_MTU_IPV6 } from '../control/limits.js';
import { parseInterfaceAddress, parseRoute, type InterfaceAddress } from '../net/cidr.js';
import type { Family } from '../net/ip.js';
import { ConfigError, fsReason } from './errors.js';
import { decodeKey, keyHint, readKeyFile, type KeyKind } from './keys.js';

/**
 * Shared reading of tvpn's YAML configs: a strict, typed walk over the YAML AST that knows
 * each value's path (push.routes[0]) and line, so every error is one line saying
 * `<file>:<line>: <key path>: <what is wrong and how to fix it>`.
 * A key with an empty or null value counts as absent (so its default applies).
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** A config file's text being read: its name for messages, its directory for relative paths. */
class Source {
  readonly dir: string;
  constructor(
    readonly file: string,
    /** The file's permission bits, or null when parsing text that is not (yet) a file. */
    readonly mode: number | null,
    private readonly lines: LineCounter,
  ) {
    this.dir = dirname(resolve(file));
  }

  line(node: Node): number | null {
    const offset = node.range?.[0];
    return offset === undefined ? null : this.lines.linePos(offset).line;
  }

  at(node: Node): string {
    const line = this.line(node);
    return line === null ? this.file : `${this.file}:${line}`;
  }
}

function describe(node: Node): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isAlias(node)) return `an alias (*${node.source}), which tvpn does not support`;
  const v: unknown = isScalar(node) ? node.value : undefined;
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  if (v === null) return 'an empty value';
  return 'an unsupported value';
}

/** Edit distance, for "did you mean" on misspelt keys. */
export function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/** One value in a config, with where it is. */
export class Value {
  constructor(
    private readonly src: Source,
    readonly path: string,
    private readonly node: Node,
  ) {}

  /** "file:line: path", the prefix of every message about this value. */
  where(): string {
    return this.path === '' ? this.src.file : `${this.src.at(this.node)}: ${this.path}`;
  }

  fail(problem: string): ConfigError {
    return new ConfigError(`${this.where()}: ${problem}`);
  }

  /** "clients[0].name (line 30)", to point at the other half of a conflict; `label` replaces the path. */
  ref(label = this.path): string {
    const line = this.src.line(this.node);
    return line === null ? label : `${label} (line ${line})`;
  }

  private scalar(): unknown {
    return isScalar(this.node) ? this.node.value : undefined;
  }

  /** A string; a whole value in angle brackets is an example's placeholder, and `fix` says what to put there. */
  string(fix = 'fill in a real value'): string {
    const v = this.scalar();
    if (typeof v !== 'string') throw this.fail(`expected a string, got ${describe(this.node)}`);
    if (/^<.*>$/.test(v)) throw this.fail(`'${v}' is a placeholder; ${fix}`);
    return v;
  }

  /** The value if it is a number, for hints where a number is a likely slip (a bare port). */
  number(): number | undefined {
    const v = this.scalar();
    return typeof v === 'number' ? v : undefined;
  }

  int(min: number, max: number): number {
    const v = this.scalar();
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw this.fail(`expected a whole number ${min}-${max}, got ${describe(this.node)}`);
    }
    if (v < min || v > max) throw this.fail(`${v} is out of range (${min}-${max})`);
    return v;
  }

  bool(): boolean {
    const v = this.scalar();
    if (typeof v !== 'boolean') throw this.fail(`expected true or false, got ${describe(this.node)}`);
    return v;
  }

  oneOf<T extends string>(choices: readonly T[]): T {
    const v = this.string();
    const choice = choices.find((c) => c === v);
    if (choice === undefined) throw this.fail(`expected one of ${choices.join(', ')}, got '${v}'`);
    return choice;
  }

  list(): Value[] {
    if (!isSeq(this.node)) {
      const v = this.scalar();
      throw this.fail(`expected a list, got ${describe(this.node)}${typeof v === 'string' ? `; write [${v}]` : ''}`);
    }
    return this.node.items.map((item, i) => new Value(this.src, `${this.path}[${i}]`, item as Node));
  }

  /** The items of a list, or this value alone: for keys that take `x` or `[x, y]`. */
  listOrOne(): Value[] {
    return isSeq(this.node) ? this.list() : [this];
  }

  /** A mapping with exactly these keys allowed. */
  section(keys: readonly string[]): Section {
    if (!isMap(this.node)) throw this.fail(`expected a mapping of ${keys.join(', ')}, got ${describe(this.node)}`);
    return new Section(this.src, this, this.node, keys);
  }

  /** Applies a parser to the string value, turning its thrown reason into a located ConfigError. */
  parse<T>(parser: (text: string) => T): T {
    const text = this.string();
    try {
      return parser(text);
    } catch (err) {
      throw err instanceof Error ? this.fail(err.message) : err;
    }
  }

  /** A file path, relative paths resolved against the config file's directory. */
  filePath(): string {
    return resolve(this.src.dir, this.string());
  }

  /** A base64 key written inline. Secret keys make the config file itself secret. */
  key(kind: KeyKind): Uint8Array {
    const key = decodeKey(this.string(keyHint(kind)), this.where(), kind);
    const mode = this.src.mode;
    if (kind !== 'public' && mode !== null && (mode & 0o077) !== 0) {
      const { file } = this.src;
      const octal = mode.toString(8).padStart(4, '0');
      throw this.fail(
        `a secret key inline needs a private config file, but ${file} is accessible by group or others (mode ${octal}); ` +
          `run 'chmod 600 ${file}' or move the key to ${this.path}_file`,
      );
    }
    return key;
  }
}

/** A mapping whose keys have been checked against the allowed names. */
export class Section {
  private readonly values = new Map<string, Value>();

  constructor(
    src: Source,
    private readonly self: Value,
    map: YAMLMap,
    allowed: readonly string[],
  ) {
    for (const pair of map.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : describe(keyNode);
      const path = self.path === '' ? key : `${self.path}.${key}`;
      if (!allowed.includes(key)) {
        const guess = closest(key, allowed);
        const fix = guess !== undefined ? `did you mean '${guess}'?` : `expected one of: ${allowed.join(', ')}`;
        throw new ConfigError(`${src.at(keyNode)}: unknown key '${path}' (${fix})`);
      }
      const value = pair.value as Node | null;
      if (value !== null && !(isScalar(value) && value.value === null)) this.values.set(key, new Value(src, path, value));
    }
  }

  get(key: string): Value | undefined {
    return this.values.get(key);
  }

  /** A required key; `fix` says what to put there. */
  need(key: string, fix: string): Value {
    const value = this.values.get(key);
    if (value === undefined) throw this.fail(`missing '${key}' (${fix})`);
    return value;
  }

  fail(problem: string): ConfigError {
    return this.self.fail(problem);
  }

  /**
   * A secret key given inline (`name`) or in a file (`name_file`), at most one of the two;
   * null if neither is given.
   */
  secretKey(name: string, kind: 'private' | 'preshared'): Uint8Array | null {
    const inline = this.get(name);
    const file = this.get(`${name}_file`);
    if (inline !== undefined && file !== undefined) throw inline.fail(`give either '${name}' or '${name}_file', not both`);
    if (file !== undefined) {
      const path = file.filePath();
      return file.parse(() => readKeyFile(path, { private: true, kind }));
    }
    return inline === undefined ? null : inline.key(kind);
  }
}

/**
 * Parses config text into its root section. `file` names it in messages and anchors relative
 * paths; `mode` is the file's permission bits when it is a file (for secrets written inline).
 */
export function parseConfigText(text: string, file: string, mode: number | null, keys: readonly string[]): Section {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const src = new Source(file, mode, lines);
  const error = doc.errors[0];
  if (error !== undefined) {
    const line = lines.linePos(error.pos[0]).line;
    // A bracketed IPv6 endpoint reads as a YAML list unless quoted.
    const fix =
      error.code === 'DUPLICATE_KEY' ? '; remove one of them'
      : /:\s*\[[0-9A-Fa-f:.]*\]:/.test(text.split('\n')[line - 1] ?? '') ? "; quote IPv6 endpoints, e.g. '[::]:51820'"
      : '';
    throw new ConfigError(`${file}:${line}: YAML syntax error: ${error.message}${fix}`);
  }
  if (doc.contents === null) throw new ConfigError(`${file}: the file is empty; see configs/ in the tvpn package for a commented example`);
  return new Value(src, '', doc.contents).section(keys);
}

/** Reads a config file's text and permission bits. */
export function readConfigFile(path: string): { text: string; mode: number } {
  try {
    return { text: readFileSync(path, 'utf8'), mode: statSync(path).mode & 0o777 };
  } catch (err) {
    throw new ConfigError(`cannot read config ${resolve(path)}: ${fsReason(err)}`);
  }
}

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no slashes, colons or spaces. */
function parseInterfaceName(text: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(text) || text === '.' || text === '..') {
    throw new Error(`'${text}' is not a valid interface name (1-15 letters, digits, '_', '.', '-')`);
  }
  return text;
}

/**
 * The default status socket (`tvpn show`'s): a Linux abstract socket (leading NUL) named after the interface.
 * Abstract sockets live in the network namespace, so daemons with the same interface name in
 * different namespaces do not collide, and nothing is left on disk after a crash. The string
 * goes straight to net.createServer().listen() and net.connect().
 */
export function defaultStatusSocket(interfaceName: string): string {
  return `\0tvpn-${interfaceName}`;
}

/** A status socket for display: abstract names shown with '@' as ss(8) does. */
export function describeStatusSocket(socket: string): string {
  return socket.startsWith('\0') ? `@${socket.slice(1)}` : socket;
}

/**
 * `status_socket`: '@name' for an abstract socket, else a path resolved against the config's
 * directory. Its old name `control_socket` (the control channel is the in-tunnel push protocol)
 * is still read, with a warning for the log.
 */
export function statusSocketOf(root: Section, interfaceName: string, warnings: string[]): string {
  const old = root.get('control_socket');
  if (old !== undefined) {
    if (root.get('status_socket') !== undefined) throw old.fail("remove it: it is the old name of 'status_socket', which is set too");
    warnings.push(`${old.where()}: deprecated key, rename it to 'status_socket'`);
  }
  const value = root.get('status_socket') ?? old;
  if (value === undefined) return defaultStatusSocket(interfaceName);
  const text = value.string();
  const socket = text.startsWith('@') ? `\0${text.slice(1)}` : value.filePath();
  // sun_path holds 108 bytes, including a path's terminating NUL.
  if (Buffer.byteLength(socket) > 107) {
    throw value.fail(`socket path is longer than 107 bytes; use a shorter path or an abstract name like '@tvpn-${interfaceName}'`);
  }
  return socket;
}

/** Reads `log_level`, default info. */
export function logLevelOf(value: Value | undefined): LogLevel {
  return value === undefined ? 'info' : value.oneOf(LOG_LEVELS);
}

/** Reads `log_format`, default text. */
export function logFormatOf(value: Value | undefined): LogFormat {
  return value === undefined ? 'text' : value.oneOf(LOG_FORMATS);
}

/** A tun's MTU: at least MIN_MTU (MIN_MTU_IPV6 for IPv6), at most 65535 (the largest IP packet). */
export function mtuOf(value: Value | undefined, ipv6: boolean): number | null {
  if (value === undefined) return null;
  const mtu = value.int(MIN_MTU, 65535);
  if (ipv6 && mtu < MIN_MTU_IPV6) throw value.fail(`${mtu} is too small for IPv6, which needs at least ${MIN_MTU_IPV6}`);
  return mtu;
}

/**
 * `x` or `[x, y]`: at most one item of each address family, IPv4 first (dual stack). `what`
 * names an item in messages ("address", "pool").
 */
export function perFamily<T>(value: Value, what: string, parse: (text: string) => T, family: (item: T) => Family): { item: T; value: Value }[] {
  const values = value.listOrOne();
  if (values.length === 0 || values.length > 2) throw value.fail(`expected one ${what}, or two: one IPv4 and one IPv6`);
  const items = values.map((v) => ({ item: v.parse(parse), value: v }));
  const [a, b] = items.map((i) => family(i.item));
  if (a === b) throw values[1]!.fail(`a second IPv${a} ${what}; give at most one IPv4 and one IPv6`);
  return a === 6 ? items.reverse() : items;
}

const addressFamily = (a: InterfaceAddress): Family => (a.ip.includes(':') ? 6 : 4);

/**
 * `interface:`, shared by server and client: name (default tun0), address, mtu. With an
 * addressFix the address is required (and so must value be); without one it is optional.
 * With dual, `address` may be a list of an IPv4 and an IPv6 address: address6 is then the IPv6 one.
 */
export function interfaceOf(
  value: Value | undefined,
  addressFix: string | null,
  dual = false,
): { name: string; address: InterfaceAddress | null; address6: InterfaceAddress | null; mtu: number | null } {
  const section = value?.section(['name', 'address', 'mtu']);
  const name = section?.get('name')?.parse(parseInterfaceName) ?? 'tun0';
  const addressValue = addressFix === null ? section?.get('address') : section?.need('address', addressFix);
  const addresses = addressValue === undefined ? [] : perFamily(addressValue, 'address', parseInterfaceAddress, addressFamily).map((a) => a.item);
  if (!dual && addresses.length > 1) throw addressValue!.fail('expected one address here; a dual-stack server pushes both of its clients\' addresses');
  const [address = null, address6 = null] = addresses;
  return { name, address, address6, mtu: mtuOf(section?.get('mtu'), addresses.some((a) => addressFamily(a) === 6)) };
}

/**
 * A list of route prefixes in canonical form, each at most once (`ip route add` fails on a
 * repeat); `check` vets each one further.
 */
export function routesOf(value: Value | undefined, check?: (route: string, item: Value) => void): string[] {
  const seen = new Map<string, Value>();
  for (const item of value?.list() ?? []) {
    const route = item.parse(parseRoute);
    const first = seen.get(route);
    if (first !== undefined) throw item.fail(`${route} is already listed at ${first.ref()}; remove one`);
    check?.(route, item);
    seen.set(route, item);
  }
  return [...seen.keys()];
}

/** The required `private_key_file` or `private_key`; `exampleFile` names the key file in the hint. */
export function privateKeyOf(root: Section, exampleFile: string): Uint8Array {
  const key = root.secretKey('private_key', 'private');
  if (key === null) {
    throw root.fail(`missing 'private_key_file' (or 'private_key'); make a key with 'umask 077; tvpn genkey > ${exampleFile}'`);
  }
  return key;
}

/** Persistent keepalive seconds (WireGuard's is 16 bits), 0 for off; default 25. */
export function keepaliveOf(value: Value | undefined): number {
  return value?.int(0, 65535) ?? 25;
}
