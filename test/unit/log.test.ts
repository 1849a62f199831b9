import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Logger } from '../../src/daemon/log.js';

describe('Logger', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

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
