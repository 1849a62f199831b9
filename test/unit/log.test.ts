import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fstatSync } from 'node:fs';
import { detectStyle, Logger, type LogStyle } from '../../src/daemon/log.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('Logger', () => {
  const capture = (): { log: Logger; lines: string[] } => {
    const lines: string[] = [];
    return { log: new Logger('info', (l) => lines.push(l.replace(/^\S+ /, '').trimEnd())), lines };
  };

  it('filters by level', () => {
    const { log, lines } = capture();
    log.debug('hidden');
    log.info('shown');
    log.error('also shown');
    expect(lines).toEqual(['info  shown', 'error also shown']);
  });

  it('writes a line repeated per packet 5 times, then its count when the 10 s window closes', () => {
    const { log, lines } = capture();
    const line = 'error cannot write to tun0: no such device';
    for (let i = 0; i < 500; i++) log.error('cannot write to tun0: no such device');
    log.warn('something else');
    expect(lines).toEqual([line, line, line, line, line, 'warn  something else']);
    vi.advanceTimersByTime(10_000);
    expect(lines.slice(6)).toEqual([`${line} (495 more in the last 10 s)`]);
    log.error('cannot write to tun0: no such device'); // a new window
    expect(lines).toHaveLength(8);
    vi.advanceTimersByTime(10_000);
    expect(lines).toHaveLength(8); // nothing was held back: no count line
  });

  it('tracks a bounded number of distinct lines: past that, lines are written, not counted', () => {
    const { log, lines } = capture();
    for (let i = 0; i < 300; i++) log.info(`peer ${i}`);
    for (let i = 0; i < 10; i++) log.info('peer 299'); // not tracked: every one written
    expect(lines).toHaveLength(310);
    for (let i = 0; i < 10; i++) log.info('peer 0'); // tracked: 4 more, then counted
    expect(lines).toHaveLength(314);
  });
});

describe('log styles', () => {
  const capture = (style: LogStyle): { log: Logger; lines: string[] } => {
    const lines: string[] = [];
    return { log: new Logger('debug', (l) => lines.push(l), style), lines };
  };
  const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

  it('under journald: each line starts with its syslog priority, no timestamp, no level word', () => {
    const { log, lines } = capture({ format: 'text', journal: true, timestamps: false });
    log.error('e');
    log.warn('w');
    log.info('handshake with one (198.18.83.2:40000)', { peer: 'one' });
    log.debug('d');
    expect(lines).toEqual(['<3>e\n', '<4>w\n', '<6>handshake with one (198.18.83.2:40000)\n', '<7>d\n']);
  });

  it('in a container: the level word without a timestamp', () => {
    const { log, lines } = capture({ format: 'text', journal: false, timestamps: false });
    log.warn('w');
    expect(lines).toEqual(['warn  w\n']);
  });

  it('json: one object per line with time, level, msg and the call site\'s fields; under journald behind the priority', () => {
    const { log, lines } = capture({ format: 'json', journal: false, timestamps: true });
    log.info('handshake with one (198.18.83.2:40000)', { peer: 'one', key: 'K=', endpoint: '198.18.83.2:40000' });
    log.warn('plain');
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toEqual({ time: expect.stringMatching(ISO), level: 'info', msg: 'handshake with one (198.18.83.2:40000)', peer: 'one', key: 'K=', endpoint: '198.18.83.2:40000' });
    expect(Object.keys(second!)).toEqual(['time', 'level', 'msg']);
    expect(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n'))).toBe(true);

    const journal = capture({ format: 'json', journal: true, timestamps: false });
    journal.log.error('x', { peer: 'one' });
    expect(journal.lines[0]).toMatch(/^<3>\{"time":"[^"]+","level":"error","msg":"x","peer":"one"\}\n$/);
  });

  it('json: a repeated line\'s count carries its fields and how many were held back', () => {
    const { log, lines } = capture({ format: 'json', journal: false, timestamps: true });
    for (let i = 0; i < 7; i++) log.error('tun gone', { peer: 'one' });
    vi.advanceTimersByTime(10_000);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ level: 'error', msg: 'tun gone (2 more in the last 10 s)', peer: 'one', repeated: 2 });
  });

  it('journald is detected only when JOURNAL_STREAM names our stderr', () => {
    const st = fstatSync(2, { bigint: true });
    expect(detectStyle('text', { JOURNAL_STREAM: `${st.dev}:${st.ino}` })).toEqual({ format: 'text', journal: true, timestamps: false });
    expect(detectStyle('json', { JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }).journal).toBe(false);
    expect(detectStyle('text', {}).journal).toBe(false);
  });
});
