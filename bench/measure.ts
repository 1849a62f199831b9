/**
 * What the tunnel benchmark measures and how: iperf3 TCP throughput, ping RTT (idle and under
 * load), a daemon's CPU time (utime+stime from /proc/PID/stat) and memory (VmRSS, VmHWM from
 * /proc/PID/status), plus the tools it needs, installed with apt when missing. Every command
 * here has a time limit; iperf3 and ping run inside the benchmark's own namespaces only.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Netns } from '../src/lab/netns.js';
import { startProc, until, type Proc } from '../test/helpers/tvpn.js';

export const IPERF_PORT = 5201;

/** Command → Debian package, for everything the tunnel benchmark runs. */
const TOOLS: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  ping: 'iputils-ping',
  iperf3: 'iperf3',
  openvpn: 'openvpn',
  openssl: 'openssl',
  'wireguard-go': 'wireguard-go',
  wg: 'wireguard-tools',
  gnuplot: 'gnuplot-nox',
};

const have = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Runs a command on the host (not in a namespace) with a time limit; its stdout. */
export function sh(cmd: string, args: string[], opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: { ...process.env, ...opts.env }, cwd: opts.cwd }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout)),
    ),
  );
}

/** Installs the Debian packages of missing tools (apt-get update once, only if one is missing). */
export async function ensureTools(say: (line: string) => void): Promise<void> {
  const missing = Object.entries(TOOLS)
    .filter(([cmd]) => !have(cmd))
    .map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  say(`installing ${missing.join(' ')} with apt-get`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await sh('apt-get', ['update', '-qq'], { timeoutMs: 300_000, env });
  await sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { timeoutMs: 600_000, env });
  const still = Object.keys(TOOLS).filter((cmd) => !have(cmd));
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}

/** First line of `cmd --version`-like output, for the report's environment line. */
export function toolVersion(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? '?';
  } catch (err) {
    // wireguard-go --version exits 0, openvpn --version exits 1: both print what we want.
    const out = String((err as { stdout?: unknown }).stdout ?? '');
    return pattern.exec(out)?.[1] ?? '?';
  }
}

/** An iperf3 server bound to `host` inside ns; it serves one test at a time until stopped. */
export async function startIperfServer(ns: Netns, host: string, port = IPERF_PORT): Promise<Proc> {
  // --forceflush: its stdout is a pipe, and the listening line must arrive before the client starts.
  const server = startProc(ns, 'iperf3', ['-s', '-B', host, '-p', String(port), '--forceflush']);
  await until('iperf3 server', () => server.log().includes('Server listening'), 10_000);
  return server;
}

interface IperfJson {
  end?: { sum_received?: { bits_per_second?: number } };
  error?: string;
}

/** TCP from ns to host (or back with reverse) for `seconds` with `streams` parallel streams; received Gbit/s. */
export async function iperf(ns: Netns, host: string, seconds: number, streams: number, reverse = false, port = IPERF_PORT): Promise<number> {
  const args = ['-c', host, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J', '--connect-timeout', '3000'];
  if (reverse) args.push('-R');
  // iperf3 exits non-zero on failure but still prints its JSON with an "error" member.
  const { stdout } = await ns.exec('iperf3', args, { timeoutMs: (seconds + 20) * 1000 }).catch((err: Error) => ({ stdout: err.message }));
  let result: IperfJson;
  try {
    result = JSON.parse(stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 -P ${streams}: ${stdout.slice(0, 300)}`);
  }
  const bps = result.end?.sum_received?.bits_per_second;
  if (result.error || bps === undefined) throw new Error(`iperf3 -P ${streams}: ${result.error ?? 'no result'}`);
  return bps / 1e9;
}

export interface PingStats {
  avgMs: number;
  lossPct: number;
}

/** ping's summary lines; it exits 0 once any reply came back (no -c with -w, or all -c replies). */
async function ping(ns: Netns, host: string, args: string[], timeoutMs: number): Promise<PingStats> {
  const { stdout } = await ns.exec('ping', ['-q', ...args, host], { timeoutMs });
  const avg = /= [\d.]+\/([\d.]+)\//.exec(stdout)?.[1];
  const loss = /([\d.]+)% packet loss/.exec(stdout)?.[1];
  if (!avg || !loss) throw new Error(`ping ${host}: no rtt line in ${stdout.trim()}`);
  return { avgMs: Number(avg), lossPct: Number(loss) };
}

/** Average RTT in ms of `count` pings 50 ms apart (root may use intervals under 200 ms). */
export async function pingAvg(ns: Netns, host: string, count = 20): Promise<number> {
  return (await ping(ns, host, ['-c', String(count), '-i', '0.05', '-w', '10'], 15_000)).avgMs;
}

/**
 * Pings every 100 ms while something else loads the path for `seconds`: from 0.5 s in to 0.5 s
 * before the end, so TCP's start and finish stay out. Lost pings do not fail it (under load a
 * queue may drop some); their share is returned with the average.
 */
export async function pingDuring(ns: Netns, host: string, seconds: number): Promise<PingStats> {
  await new Promise((resolve) => setTimeout(resolve, 500));
  return ping(ns, host, ['-i', '0.1', '-w', String(Math.max(1, seconds - 1))], (seconds + 10) * 1000);
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime: fields 14 and 15
}

/** A /proc/PID/status memory field (VmRSS: now, VmHWM: peak so far) in MB. */
export function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(kb) / 1024;
}

/** CPU use of some processes over an interval, as % of one core each. */
export class CpuMeter {
  private readonly start: number[];
  private readonly t0 = performance.now();

  constructor(private readonly pids: readonly number[]) {
    this.start = pids.map(cpuSeconds);
  }

  percent(): number[] {
    const wall = (performance.now() - this.t0) / 1000;
    return this.pids.map((pid, i) => ((cpuSeconds(pid) - this.start[i]!) / wall) * 100);
  }
}

/** Busy and total jiffies of all CPUs so far (/proc/stat; idle and iowait count as not busy). */
function cpuJiffies(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3]! - fields[4]!, total };
}

/** How busy the whole machine is over `ms`, in % of all cores. */
export async function machineBusy(ms = 1000): Promise<number> {
  const a = cpuJiffies();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = cpuJiffies();
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : 0;
}

/**
 * Waits (up to maxWaitMs) for the machine to be quiet before a measurement: on a shared box
 * another job's load would show up as a slow tunnel. Returns the last busy reading.
 */
export async function waitQuiet(thresholdPct: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let busy = await machineBusy();
  while (busy > thresholdPct && Date.now() < deadline) busy = await machineBusy();
  return busy;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
