import type { LogLevel } from '../config/load.js';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** One line per event, level-filtered, to stderr (journald and docker logs add timestamps of their own). */
export class Logger {
  constructor(
    public level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.level];
  }

  private log(level: LogLevel, msg: string): void {
    if (this.enabled(level)) this.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`);
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
