/**
 * Driving real tvpn (and other) processes inside test namespaces: start and stop by PID,
 * wait for log lines, ping, and bounded TCP transfers checked end to end by SHA-256.
 * Spawned children belong to the netns harness, which kills them at cleanup.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Netns } from '../../src/lab/netns.js';
import { sleep } from './wait.js';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin/tvpn');
const FIXTURES = join(ROOT, 'test/integration/fixtures');

export interface Proc {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  log: () => string;
}

/** Polls cond (sync or async) until it is truthy; a thrown error counts as not yet. */
export async function until<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

export function startProc(ns: Netns, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc {
  const child = ns.spawn(cmd, args, env ? { env: { ...process.env, ...env } } : {});
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, log: () => out };
}

/** `tvpn ARGS` inside ns (the compiled CLI from dist/). */
export const startTvpn = (ns: Netns, args: string[], env?: NodeJS.ProcessEnv): Proc => startProc(ns, process.execPath, [BIN, ...args], env);

/** `tvpn ARGS` inside ns, once it has logged `line`. */
export async function startTvpnUntil(ns: Netns, args: string[], line: string): Promise<Proc> {
  const p = startTvpn(ns, args);
  await until(`tvpn ${args[0]} to log '${line}'`, () => p.log().includes(line));
  return p;
}

/** SIGTERM (or another signal) and the exit code. */
export function stopProc(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve(p.child.exitCode);
  return new Promise((resolve) => {
    p.child.once('exit', (code) => resolve(code));
    p.child.kill(signal);
  });
}

export const pings = (ns: Netns, to: string, count = 3): Promise<boolean> =>
  ns.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '1', to]).then(
    () => true,
    () => false,
  );

/** The first IPv4 address of dev in ns, as "a.b.c.d/len", or null. */
export async function addrOf(ns: Netns, dev: string): Promise<string | null> {
  const { stdout } = await ns.ip(['-j', '-4', 'addr', 'show', 'dev', dev]);
  const a = (JSON.parse(stdout) as { addr_info: { local: string; prefixlen: number }[] }[])[0]?.addr_info[0];
  return a ? `${a.local}/${a.prefixlen}` : null;
}

export interface TransferResult {
  bytes: number;
  sha256: string;
}

/**
 * Sends `bytes` over TCP from `from` to a sink listening on host:port in `to`, optionally
 * paced (Mbit/s); `during` runs while it flows. Resolves with what both ends computed.
 */
export async function tcpTransfer(
  opts: { to: Netns; host: string; port: number; from: Netns; bytes: number; marker?: string; mbps?: number },
  during?: () => Promise<void>,
): Promise<{ sent: TransferResult; received: TransferResult }> {
  const sink = startProc(opts.to, process.execPath, [join(FIXTURES, 'tcp-sink.mjs'), opts.host, String(opts.port)]);
  await until('the TCP sink to listen', () => sink.log().includes('listening'));
  const args = [join(FIXTURES, 'tcp-source.mjs'), opts.host, String(opts.port), String(opts.bytes), opts.marker ?? '', String(opts.mbps ?? 0)];
  const source = opts.from.exec(process.execPath, args, { timeoutMs: 100_000 });
  await during?.();
  const sent = JSON.parse((await source).stdout) as TransferResult;
  const line = await until('the sink to finish', () => sink.log().split('\n').find((l) => l.includes('sha256')), 30_000);
  return { sent, received: JSON.parse(line) as TransferResult };
}
