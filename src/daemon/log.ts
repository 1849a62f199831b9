import { existsSync, fstatSync } from 'node:fs';
import type { LogFormat, LogLevel } from '../config/fields.js';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
/** syslog priorities, which journald reads from a `<N>` line prefix (sd-daemon(3)). */
const PRIORITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Past the first REPEAT_BURST, a line repeated within this long is counted instead of written. */
const REPEAT_WINDOW_MS = 10_000;
/** Lines written as they come before a repeat is counted: a reconnect or two stays visible. */
const REPEAT_BURST = 5;
/** Distinct lines tracked at once: a flood of different lines cannot grow memory. */
const MAX_TRACKED = 256;

/** What a call site knows beyond its sentence (peer name, key, endpoint...): fields of a json line. */
export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

export interface LogStyle {
  format: LogFormat;
  /** stderr goes to journald: each line starts with its priority (<3> to <7>), not a level word. */
  journal: boolean;
  /** Text lines start with an ISO timestamp: not when journald or a container runtime adds its own. */
  timestamps: boolean;
}

/** The `<N>` prefix of an error line for stderr: journald files an unprefixed line as info. */
export const errorPrefix = (): string => (underJournald() ? `<${PRIORITY.error}>` : '');

/** A terminal or a file: timestamped text. */
const PLAIN: LogStyle = { format: 'text', journal: false, timestamps: true };

/** The style for this process: journald when JOURNAL_STREAM names our stderr (systemd.exec(5)), containers without timestamps. */
export function detectStyle(format: LogFormat, env: NodeJS.ProcessEnv = process.env): LogStyle {
  const journal = underJournald(env);
  return { format, journal, timestamps: !journal && !existsSync('/.dockerenv') && !existsSync('/run/.containerenv') };
}

/** JOURNAL_STREAM is "dev:inode" of the stream systemd connected; stderr redirected elsewhere does not match. */
function underJournald(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

interface Repeat {
  written: number;
  suppressed: number;
  timer: NodeJS.Timeout;
}

/**
 * One line per event, level-filtered, to stderr: text (`<time> <level> <msg>`, or `<6><msg>`
 * under journald) or json (one object per line: time, level, msg and the call site's fields).
 * Past REPEAT_BURST, a line written again within REPEAT_WINDOW_MS of its first is counted, and
 * the count comes out as one line when the window closes: a fault that repeats per packet (a
 * vanished tun, a hostile peer) costs a few lines per 10 s, not one per packet.
 */
export class Logger {
  private readonly repeats = new Map<string, Repeat>();

  constructor(
    public level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly style: LogStyle = PLAIN,
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.level];
  }

  private log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const key = `${level} ${msg}`;
    const seen = this.repeats.get(key);
    if (seen && seen.written >= REPEAT_BURST) {
      seen.suppressed++;
      return;
    }
    if (seen) seen.written++;
    else if (this.repeats.size < MAX_TRACKED) {
      const timer = setTimeout(() => this.closeWindow(key, level, msg, fields), REPEAT_WINDOW_MS).unref();
      this.repeats.set(key, { written: 1, suppressed: 0, timer });
    }
    this.emit(level, msg, fields);
  }

  private closeWindow(key: string, level: LogLevel, msg: string, fields?: LogFields): void {
    const r = this.repeats.get(key);
    this.repeats.delete(key);
    if (r && r.suppressed > 0) this.emit(level, `${msg} (${r.suppressed} more in the last ${REPEAT_WINDOW_MS / 1000} s)`, { ...fields, repeated: r.suppressed });
  }

  private emit(level: LogLevel, msg: string, fields?: LogFields): void {
    const { format, journal, timestamps } = this.style;
    const priority = journal ? `<${PRIORITY[level]}>` : '';
    if (format === 'json') {
      this.write(`${priority}${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
    } else {
      const head = journal ? '' : `${timestamps ? `${new Date().toISOString()} ` : ''}${level.padEnd(5)} `;
      this.write(`${priority}${head}${msg}\n`);
    }
  }

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
}
