import type { LogLevel } from '../config/load.js';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Past the first REPEAT_BURST, a line repeated within this long is counted instead of written. */
const REPEAT_WINDOW_MS = 10_000;
/** Lines written as they come before a repeat is counted: a reconnect or two stays visible. */
const REPEAT_BURST = 5;
/** Distinct lines tracked at once: a flood of different lines cannot grow memory. */
const MAX_TRACKED = 256;

interface Repeat {
  written: number;
  suppressed: number;
  timer: NodeJS.Timeout;
}

/**
 * One line per event, level-filtered, to stderr (journald and docker logs add timestamps of
 * their own). Past REPEAT_BURST, a line written again within REPEAT_WINDOW_MS of its first is
 * counted, and the count comes out as one line when the window closes: a fault that repeats
 * per packet (a vanished tun, a hostile peer) costs a few lines per 10 s, not one per packet.
 */
export class Logger {
  private readonly repeats = new Map<string, Repeat>();

  constructor(
    public level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.level];
  }

  private log(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    const key = `${level} ${msg}`;
    const seen = this.repeats.get(key);
    if (seen && seen.written >= REPEAT_BURST) {
      seen.suppressed++;
      return;
    }
    if (seen) seen.written++;
    else if (this.repeats.size < MAX_TRACKED) {
      const timer = setTimeout(() => this.closeWindow(key, level, msg), REPEAT_WINDOW_MS).unref();
      this.repeats.set(key, { written: 1, suppressed: 0, timer });
    }
    this.emit(level, msg);
  }

  private closeWindow(key: string, level: LogLevel, msg: string): void {
    const r = this.repeats.get(key);
    this.repeats.delete(key);
    if (r && r.suppressed > 0) this.emit(level, `${msg} (${r.suppressed} more in the last ${REPEAT_WINDOW_MS / 1000} s)`);
  }

  private emit(level: LogLevel, msg: string): void {
    this.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`);
  }

  error(msg: string): void {
    this.log('error', msg);
  }
  warn(msg: string): void {
    this.log('warn', msg);
  }
  info(msg: string): void {
    this.log('info', msg);
  }
  debug(msg: string): void {
    this.log('debug', msg);
  }
}
