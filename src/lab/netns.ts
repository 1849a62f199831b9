/**
 * Throwaway network namespaces for `tvpn demo`, the tests and the benchmarks (needs root).
 *
 * A pair is two fresh namespaces joined by a veth pair created directly inside them (nothing
 * is created in the root namespace), with lo up, underlay addresses from 198.18.0.0/15
 * (RFC 2544 benchmarking space) and 2001:2::/48 (its IPv6 counterpart, RFC 5180), and
 * permanent neighbour entries for the peer, so no first datagram waits for ARP or ND:
 *
 *   a: veth "veth-a"  198.18.N.1/24  2001:2:0:N::1/64
 *   b: veth "veth-b"  198.18.N.2/24  2001:2:0:N::2/64        (N = options.index, default 1)
 *
 * With ipv6: false the veth has IPv6 disabled (no link-local address, no IPv6 packets).
 *
 * Names are `${prefix}-${pid}-${random}-a|b`, so parallel runs never collide, and the pid
 * lets cleanupStale() remove what a killed run left behind.
 *
 * API:
 *   const pair = await createNetnsPair({ prefix: 'tvio' });      // or withNetnsPair(opts, fn)
 *   pair.a.name, pair.a.ifname, pair.a.addr, pair.a.addr6         // and the same for pair.b
 *   await pair.a.exec('ping', ['-c1', pair.b.addr]) // a command inside; rejects on failure
 *   await pair.a.ip(['route'])               // ip -n NAME route
 *   const child = pair.b.spawn('node', [...]) // long-running process inside, killed at cleanup
 *   const sock = pair.a.run(() => UdpSocket.open({ address: pair.a.addr }))
 *                                            // synchronous code in this process, inside a;
 *                                            // sockets and TUN devices made there stay there
 *   await pair.cleanup()                     // kills children by PID, deletes both namespaces
 *
 * withNetnsPair(options, fn, { timeoutMs }) creates a pair, runs fn(pair) with a time limit
 * and always cleans up. Cleanup also runs from a process 'exit' handler for whatever is left
 * (a crashed test, an interrupted benchmark). Children are killed by PID only, never by name.
 */
import { type ChildProcess, execFile, execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { runInNetns } from '../io/netns.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command after this long (default 20 s). */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
}

const liveNamespaces = new Set<string>();
const children = new Map<number, ChildProcess>();
let exitHookInstalled = false;

/** Last resort at process exit: synchronous, best effort. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of children.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const name of liveNamespaces) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 5000 });
      } catch {
        // already gone
      }
    }
  });
}

function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  installExitHook();
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim() || err.message;
        reject(new Error(`${cmd} ${args.join(' ')} failed: ${detail}`));
      } else {
        resolve({ stdout: String(stdout), stderr: String(stderr) });
      }
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    track(child);
  });
}

/** Registers a child for the exit hook, which kills what is still running by PID. */
function track(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  children.set(pid, child);
  child.once('exit', () => children.delete(pid));
}

export class Netns {
  constructor(readonly name: string) {}

  /** Runs a command inside the namespace (ip netns exec) and collects its output. */
  exec(cmd: string, args: readonly string[] = [], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Runs an ip command on the namespace (ip -n NAME ...). */
  ip(args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args], opts);
  }

  /**
   * Starts a long-running process inside the namespace (ip netns exec replaces itself with
   * the command, so the PID is the command's). It is killed at cleanup if still running.
   */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    installExitHook();
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...opts });
    track(child);
    return child;
  }

  /** Runs synchronous code in this process with the thread inside the namespace. */
  run<T>(fn: () => T): T {
    return runInNetns(this.name, fn);
  }
}

/** One side of a pair: a namespace with its veth end and underlay addresses. */
class NetnsEnd extends Netns {
  constructor(
    name: string,
    /** The veth end inside this namespace. */
    readonly ifname: string,
    readonly addr: string,
    readonly addr6: string,
  ) {
    super(name);
  }
}

export interface NetnsPair {
  readonly a: NetnsEnd;
  readonly b: NetnsEnd;
  /** Kills the children started in either namespace and deletes both; idempotent. */
  cleanup(): Promise<void>;
}

export interface NetnsPairOptions {
  /** Namespace name prefix, e.g. 'tvio' (lower-case letters, digits, '-'). */
  prefix: string;
  /** N in 198.18.N.1-2/24 and 2001:2:0:N::1-2/64 (0..255, default 1). */
  index?: number;
  /** IPv6 on the veth (default true); false disables it there, link-local included. */
  ipv6?: boolean;
}

function uniqueBase(prefix: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(prefix)) throw new TypeError(`invalid namespace prefix ${JSON.stringify(prefix)}`);
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Creates one empty namespace with lo up, registered for cleanup. */
export async function createNetns(prefix: string, suffix = ''): Promise<Netns> {
  const name = uniqueBase(prefix) + suffix;
  liveNamespaces.add(name); // before it exists: an exit while ip runs must still remove it
  await run('ip', ['netns', 'add', name]);
  const ns = new Netns(name);
  await ns.ip(['link', 'set', 'lo', 'up']);
  return ns;
}

async function killChildren(names: ReadonlySet<string>): Promise<void> {
  const mine = [...children.values()].filter((c) => {
    const args = c.spawnargs;
    return args[1] === 'netns' && args[2] === 'exec' && names.has(args[3] ?? '');
  });
  await Promise.all(
    mine.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** Kills the namespaces' children by PID and deletes the namespaces; idempotent. */
export async function deleteNetns(...namespaces: Netns[]): Promise<void> {
  const names = new Set(namespaces.map((n) => n.name));
  await killChildren(names);
  for (const name of names) {
    if (!liveNamespaces.has(name)) continue;
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
    liveNamespaces.delete(name);
  }
}

/** The two ends of underlay N: 198.18.N.1-2 and 2001:2:0:N::1-2 on veth-<suffix>. */
function ends(aName: string, bName: string, index: number, aIf: string, bIf: string): [NetnsEnd, NetnsEnd] {
  if (!Number.isInteger(index) || index < 0 || index > 255) throw new RangeError(`index must be 0..255, not ${index}`);
  const n = index.toString(16);
  return [new NetnsEnd(aName, aIf, `198.18.${index}.1`, `2001:2:0:${n}::1`), new NetnsEnd(bName, bIf, `198.18.${index}.2`, `2001:2:0:${n}::2`)];
}

async function addNetns(name: string): Promise<void> {
  liveNamespaces.add(name); // before it exists: an exit while ip runs must still remove it
  await run('ip', ['netns', 'add', name]);
}

export async function createNetnsPair(opts: NetnsPairOptions): Promise<NetnsPair> {
  const base = uniqueBase(opts.prefix);
  const [a, b] = ends(`${base}-a`, `${base}-b`, opts.index ?? 1, 'veth-a', 'veth-b');
  try {
    for (const ns of [a, b]) await addNetns(ns.name);
    await joinVeth(a, b, opts.ipv6 ?? true);
    return { a, b, cleanup: () => deleteNetns(a, b) };
  } catch (err) {
    await deleteNetns(a, b);
    throw err;
  }
}

/**
 * A hub namespace joined to `spokes` namespaces, each by its own veth pair on underlay
 * index + k (hub 198.18.(index+k).1 on veth-k, spoke k .2 on veth-hub). IPv4 only. For
 * one server and several clients: hubEnds[k] is the hub's side facing spoke k.
 */
export interface NetnsStar {
  readonly hub: Netns;
  /** The hub's side of each link (same namespace, one veth each). */
  readonly hubEnds: readonly NetnsEnd[];
  readonly spokes: readonly NetnsEnd[];
  cleanup(): Promise<void>;
}

export async function createNetnsStar(opts: { prefix: string; index: number; spokes: number }): Promise<NetnsStar> {
  const base = uniqueBase(opts.prefix);
  const hub = new Netns(`${base}-hub`);
  const links = Array.from({ length: opts.spokes }, (_, k) => ends(hub.name, `${base}-${k}`, opts.index + k, `veth-${k}`, 'veth-hub'));
  const all = [hub, ...links.map(([, s]) => s)];
  try {
    for (const ns of all) await addNetns(ns.name);
    for (const [h, s] of links) await joinVeth(h, s, false);
    return { hub, hubEnds: links.map(([h]) => h), spokes: links.map(([, s]) => s), cleanup: () => deleteNetns(...all) };
  } catch (err) {
    await deleteNetns(...all);
    throw err;
  }
}

/** A veth pair between a and b (made inside them), addressed, up, with permanent neighbour entries. */
async function joinVeth(a: NetnsEnd, b: NetnsEnd, ipv6: boolean): Promise<void> {
  await run('ip', ['link', 'add', a.ifname, 'netns', a.name, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.name]);
  for (const e of [a, b]) {
    // Without IPv6 the veth must not even get a link-local address: no router
    // solicitations or MLD reports on the wire.
    if (!ipv6) e.run(() => writeFileSync(`/proc/sys/net/ipv6/conf/${e.ifname}/disable_ipv6`, '1'));
    const cmds = ['link set lo up', `addr add ${e.addr}/24 dev ${e.ifname}`];
    if (ipv6) cmds.push(`addr add ${e.addr6}/64 dev ${e.ifname} nodad`);
    cmds.push(`link set ${e.ifname} up`);
    await e.ip(['-batch', '-'], { input: cmds.join('\n') + '\n' });
  }
  // Permanent neighbour entries: no datagram is lost to ARP/ND resolution of a new peer.
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    const { stdout } = await peer.ip(['-j', 'link', 'show', peer.ifname]);
    const mac = (JSON.parse(stdout) as { address: string }[])[0]?.address;
    if (!mac) throw new Error(`cannot read the MAC address of ${peer.ifname} in ${peer.name}`);
    const cmds = [`neigh replace ${peer.addr} lladdr ${mac} dev ${self.ifname} nud permanent`];
    if (ipv6) cmds.push(`neigh replace ${peer.addr6} lladdr ${mac} dev ${self.ifname} nud permanent`);
    await self.ip(['-batch', '-'], { input: cmds.join('\n') + '\n' });
  }
}

/** Creates a pair, runs fn with a time limit (default 60 s) and always cleans up. */
export async function withNetnsPair<T>(opts: NetnsPairOptions, fn: (pair: NetnsPair) => Promise<T>, limits: { timeoutMs?: number } = {}): Promise<T> {
  const pair = await createNetnsPair(opts);
  const timeoutMs = limits.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(pair),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`netns test timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await pair.cleanup();
  }
}

/**
 * Deletes namespaces named `${prefix}-${pid}-...` whose creating process is gone (left by a
 * run that was killed before it could clean up). Live runs' namespaces are left alone.
 */
export async function cleanupStale(prefix: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  const re = new RegExp(`^(${prefix.replace(/[^a-z0-9-]/g, '')}-(\\d+)-[0-9a-f]+\\S*)`);
  const removed: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = re.exec(line.trim());
    if (!m?.[1] || !m[2]) continue;
    const pid = Number(m[2]);
    try {
      process.kill(pid, 0);
      continue; // its creator still runs
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    await run('ip', ['netns', 'del', m[1]]).catch(() => undefined);
    removed.push(m[1]);
  }
  return removed;
}
