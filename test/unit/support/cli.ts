import { vi } from 'vitest';
import { run } from '../../../src/cli/main.js';

/** Runs the CLI in-process, capturing what it writes. */
export async function tvpn(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const capture = (into: string[]) => (chunk: string | Uint8Array): boolean => {
    into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  };
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(capture(out));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(capture(err));
  try {
    const code = await run(['node', 'tvpn', ...args]);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

