import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import { ConfigError, fsReason } from './errors.js';
import { keysOf, type Fields } from './fields.js';
import { decodeKey, keyHint, readKeyFile, type KeyKind } from './keys.js';

/**
 * Shared reading of tvpn's YAML configs: a strict, typed walk over the YAML AST that knows
 * each value's path (push.routes[0]) and line, so every error is one line saying
 * `<file>:<line>: <key path>: <what is wrong and how to fix it>`.
 * A key with an empty or null value counts as absent (so its default applies).
 */

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

  /** A mapping with exactly the table's keys allowed. */
  section(fields: Fields): Section {
    const keys = keysOf(fields);
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
export function parseConfigText(text: string, file: string, mode: number | null, fields: Fields): Section {
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
  return new Value(src, '', doc.contents).section(fields);
}

/** Reads a config file's text and permission bits. */
export function readConfigFile(path: string): { text: string; mode: number } {
  try {
    return { text: readFileSync(path, 'utf8'), mode: statSync(path).mode & 0o777 };
  } catch (err) {
    throw new ConfigError(`cannot read config ${resolve(path)}: ${fsReason(err)}`);
  }
}

