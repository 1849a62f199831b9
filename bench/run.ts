/**
 * `npm run bench`: tvpn side by side with the raw veth, OpenVPN 2.6 and wireguard-go (the
 * system's and Debian 13's), plus the core's handshake rate and peer lookups with 10,000 peers.
 * `npm run bench -- --help` lists the options (bench/options.ts).
 *
 * Each system runs in a fresh tvbench-* namespace pair (underlay 198.18.61.0/24, tunnel
 * 198.19.61.0/24, or N for 61 with --net N); repetitions interleave the systems so drift hits all alike. Everything
 * started is stopped by PID and the namespaces are removed, also on failure or Ctrl-C.
 * Writes bench/results/latest.md and latest.png (quick.* with --quick, partial.* with
 * --systems, soak.md with --soak; raw-*.json keeps every repetition).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/version.js';
import { cleanupStale, createNetnsPair } from '../src/lab/netns.js';
import { stopProc } from '../test/helpers/tvpn.js';
import { clientsTable, runClients, type ClientsResult } from './clients.js';
import { runHandshakes, type HandshakeResult } from './handshakes.js';
import { runWorkers, workersTable, type WorkersResult } from './workers.js';
import { CpuMeter, ensureTools, iperf, median, memoryMb, pingAvg, pingDuring, startIperfServer, toolVersion, waitQuiet } from './measure.js';
import { HELP, parseOptions, UsageError, type Options } from './options.js';
import { handshakeTable, plotPng, ratioLines, resultsTable, tcpLines, withAddedRtt, type SystemResult } from './report.js';
import { runSoak } from './soak.js';
import { SYSTEMS, type SystemInfo, type Tunnel, type TunnelSystem } from './tunnels/index.js';
import { errorMessage } from '../src/errors.js';

const RESULTS = join(PACKAGE_ROOT, 'bench', 'results');
/** Machine load (% of all cores) above which a repetition waits, then is flagged as disturbed. */
const QUIET_PCT = 15;
const say = (line: string): void => console.log(line);

/** Sources newer than their compiled output: the bench would measure old code. */
function staleOutputs(): string[] {
  const stale: string[] = [];
  for (const top of ['src', 'bench']) {
    for (const rel of readdirSync(join(PACKAGE_ROOT, top), { recursive: true, encoding: 'utf8' })) {
      if (!rel.endsWith('.ts')) continue;
      const js = join(PACKAGE_ROOT, 'dist', top, rel.replace(/\.ts$/, '.js'));
      try {
        if (statSync(js).mtimeMs >= statSync(join(PACKAGE_ROOT, top, rel)).mtimeMs) continue;
      } catch {
        // not compiled at all
      }
      stale.push(join(top, rel));
    }
  }
  return stale;
}

interface RepResult {
  gbps1: number;
  gbps4: number;
  pingMs: number;
  warmPingMs: number; // the same, after the load runs
  loadPingMs: number; // during the 4-stream run
  loadPingLossPct: number;
  cpu: number[]; // server, client (% of one core, over both iperf3 runs)
  rssMb: number[]; // server, client peak (VmHWM)
  busyBefore: number; // % of the machine other processes used just before it
}

/** One repetition of one system in a fresh namespace pair: ping, 1 stream, 4 streams with pings. */
async function measureOnce(system: TunnelSystem, opts: Options, tmp: string): Promise<RepResult> {
  const busyBefore = await waitQuiet(QUIET_PCT, 30_000);
  const seconds = opts.seconds;
  const pair = await createNetnsPair({ prefix: 'tvbench', index: opts.net, ipv6: false });
  let tunnel: Tunnel | undefined;
  try {
    tunnel = await system.up(pair, mkdtempSync(join(tmp, `${system.name}-`)));
    const iperfServer = await startIperfServer(pair.a, tunnel.serverAddr);
    const pingMs = await pingAvg(pair.b, tunnel.serverAddr);
    const pids = tunnel.pids ? [tunnel.pids.server, tunnel.pids.client] : [];
    const cpu = new CpuMeter(pids);
    const gbps1 = await iperf(pair.b, tunnel.serverAddr, seconds, 1);
    const [gbps4, loaded] = await Promise.all([iperf(pair.b, tunnel.serverAddr, seconds, 4), pingDuring(pair.b, tunnel.serverAddr, seconds)]);
    const cpuPct = cpu.percent();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // queues drain
    const warmPingMs = await pingAvg(pair.b, tunnel.serverAddr);
    const result = { gbps1, gbps4, pingMs, warmPingMs, loadPingMs: loaded.avgMs, loadPingLossPct: loaded.lossPct, cpu: cpuPct, rssMb: pids.map((pid) => memoryMb(pid, 'VmHWM')), busyBefore };
    await stopProc(iperfServer);
    return result;
  } finally {
    await tunnel?.stop().catch(() => undefined);
    await pair.cleanup();
  }
}

function summarise(name: string, label: string, reps: RepResult[], errors: string[]): Omit<SystemResult, 'addedRttMs'> {
  const m = (f: (r: RepResult) => number | undefined): number => median(reps.map(f).filter((x): x is number => x !== undefined));
  return {
    name,
    system: label,
    reps: reps.length,
    gbps1: m((r) => r.gbps1),
    gbps4: m((r) => r.gbps4),
    pingMs: m((r) => r.pingMs),
    warmPingMs: m((r) => r.warmPingMs),
    loadPingMs: m((r) => r.loadPingMs),
    loadPingLossPct: m((r) => r.loadPingLossPct),
    cpuServer: m((r) => r.cpu[0]),
    cpuClient: m((r) => r.cpu[1]),
    rssServerMb: m((r) => r.rssMb[0]),
    rssClientMb: m((r) => r.rssMb[1]),
    errors,
  };
}

/** Where and what was measured; `infos` add the versions systems reported in prepare(). */
function environment(opts: Options, infos: readonly SystemInfo[]): string {
  let commit = '?';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--', 'src', 'native'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).trim()) commit += '+changes';
  } catch {
    // not a git checkout
  }
  const versions = [
    `OpenVPN ${toolVersion('openvpn', ['--version'], /^OpenVPN (\S+)/m)}`,
    ...infos.flatMap((i) => i.version ?? []),
    `iperf3 ${toolVersion('iperf3', ['--version'], /^iperf (\S+)/m)}`,
  ];
  return (
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; Linux ${release()}; Node ${process.version}; ${cpus()[0]?.model ?? '?'} × ${cpus().length} ` +
    `(both ends and iperf3 share them); tvpn ${commit}; ${versions.join(', ')}; median of ${opts.reps} run(s), iperf3 TCP ${opts.seconds} s client→server, MTU 1420`
  );
}

const NOTES =
  'CPU: utime+stime of each daemon over both iperf3 runs, % of one core (200% = both cores). Peak RSS: VmHWM at the end of a repetition. ' +
  'Idle ping: average of 20 at 50 ms intervals on the idle tunnel just brought up; idle added RTT: that minus veth\'s; idle ping after load: the same 1 s after the load runs. ' +
  'Ping under load: average of pings every 100 ms during the 4-stream run (from 0.5 s in to 0.5 s before its end), of those that came back; the share lost is given where any were. ' +
  'veth is the same namespaces without a tunnel (the ceiling); node-relay is tvpn\'s tun, UDP and AEAD relaying packets with no protocol (bench/tunnels/relayd.ts, not plotted: the floor of a data path in Node).';

/** What runs in this process, without namespaces: the handshake capacity and the workers. */
interface InProcess {
  handshakes: HandshakeResult;
  workers: WorkersResult;
}

function runInProcess(): InProcess {
  say(`in process: handshakes and lookups with 10,000 peers, the receive path with 1 and 2 workers...`);
  const r = { handshakes: runHandshakes(), workers: runWorkers() };
  printHandshakes(r.handshakes);
  const w = r.workers;
  say(`workers: ${Math.round(w.pps1 / 1000)}k packets/s with 1, ${Math.round(w.pps2 / 1000)}k with 2 (${(w.pps2 / w.pps1).toFixed(2)}x; the AEAD alone ${(w.aead2 / w.aead1).toFixed(2)}x)`);
  return r;
}

const inProcessTables = (r: InProcess): string => `${handshakeTable(r.handshakes)}\n\n${workersTable(r.workers)}`;

async function benchTunnels(opts: Options, infos: ReadonlyMap<string, SystemInfo>, tmp: string, inProcess: InProcess): Promise<void> {
  await cleanupStale('tvbench');
  const env0 = environment(opts, [...infos.values()]); // before: the tree measured is the one at the start
  const reps = new Map<string, RepResult[]>(opts.systems.map((s) => [s.name, []]));
  const errors = new Map<string, string[]>(opts.systems.map((s) => [s.name, []]));
  for (let rep = 1; rep <= opts.reps; rep++) {
    for (const system of opts.systems) {
      const t0 = performance.now();
      try {
        const r = await measureOnce(system, opts, tmp);
        reps.get(system.name)!.push(r);
        say(
          `  ${rep}/${opts.reps} ${system.name.padEnd(19)} ${r.gbps1.toFixed(2)} / ${r.gbps4.toFixed(2)} Gbit/s, ping ${r.pingMs.toFixed(3)} ms idle (${r.warmPingMs.toFixed(3)} after load), ` +
            `${r.loadPingMs.toFixed(3)} ms under load${r.loadPingLossPct > 0 ? ` (${r.loadPingLossPct}% lost)` : ''}, ` +
            `CPU ${r.cpu.map((c) => c.toFixed(0)).join('/') || '–'} %, RSS ${r.rssMb.map((x) => x.toFixed(1)).join('/') || '–'} MB (${((performance.now() - t0) / 1000).toFixed(0)} s)` +
            (r.busyBefore > QUIET_PCT ? `, DISTURBED: the machine was ${r.busyBefore.toFixed(0)}% busy before it` : ''),
        );
      } catch (err) {
        const msg = errorMessage(err);
        errors.get(system.name)!.push(msg);
        say(`  ${rep}/${opts.reps} ${system.name}: FAILED: ${msg}`);
      }
    }
  }
  const rows = withAddedRtt(opts.systems.map((s) => summarise(s.name, infos.get(s.name)?.label ?? s.name, reps.get(s.name)!, errors.get(s.name)!)));
  const all = [...reps.values()].flat();
  const disturbed = all.filter((r) => r.busyBefore > QUIET_PCT).length;
  const quiet = `other load just before each repetition: max ${Math.max(0, ...all.map((r) => r.busyBefore)).toFixed(0)}% of the machine`;
  const env = `${env0}; ${quiet}${disturbed > 0 ? ` (WARNING: ${disturbed} of ${all.length} repetitions started on a busy machine)` : ''}`;
  // The 4-client run belongs to a full run (a partial or quick one compares tunnels only).
  let clients: ClientsResult | null = null;
  if (!opts.quick && opts.systems.length === SYSTEMS.length) {
    say(`tvpn server with 4 clients, workers 1 and 2, ${opts.reps} repetition(s)`);
    clients = await runClients(opts.reps, opts.seconds, tmp, say);
  }
  const ratios = [...ratioLines(rows), ...tcpLines(rows)];
  // Only a full run of every system replaces the committed latest.*.
  const base = opts.quick ? 'quick' : opts.systems.length < SYSTEMS.length ? 'partial' : 'latest';
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `raw-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ env, reps: Object.fromEntries(reps), errors: Object.fromEntries(errors), ...inProcess, clients }, null, 2) + '\n');
  const md = [
    `## tvpn vs OpenVPN 2.6 and wireguard-go${opts.quick ? ' (quick smoke run, not representative)' : ''}`,
    '',
    resultsTable(rows),
    '',
    ...ratios,
    '',
    NOTES,
    '',
    env,
    '',
    inProcessTables(inProcess),
    ...(clients ? ['', clientsTable(clients)] : []),
    '',
  ].join('\n');
  writeFileSync(join(RESULTS, `${base}.md`), md);
  const png = join(RESULTS, `${base}.png`);
  try {
    plotPng(rows, png, `iperf3 TCP ${opts.seconds} s and pings through each tunnel, median of ${opts.reps}, one 2-core machine`);
  } catch (err) {
    say(`chart: ${errorMessage(err)}`);
  }
  say('');
  say(resultsTable(rows));
  say('');
  say(inProcessTables(inProcess) + '\n');
  if (clients) say(clientsTable(clients) + '\n');
  say(`wrote ${join(RESULTS, `${base}.md`)} and ${png}`);
  say(ratios.join('\n'));
}

function printHandshakes(h: HandshakeResult): void {
  say(`handshakes: ${Math.round(h.handshakesPerSecond)} /s over ${h.timed} initiations (${h.verified} sampled completed); lookups with ${h.peers} peers: allowed-IPs ${h.allowedIpsNs.toFixed(0)} ns, static key ${h.staticKeyNs.toFixed(0)} ns`);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts === 'help') return say(HELP);
  const stale = staleOutputs();
  if (stale.length > 0) say(`warning: dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run npx tsc -p tsconfig.build.json`);

  if (opts.handshakesOnly) return say(inProcessTables(runInProcess()));
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, tun devices, apt); --handshakes alone does not');

  // Ctrl-C or a kill: exit through the harness's exit hook, which kills by PID and removes the namespaces.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  const tmp = mkdtempSync(join(tmpdir(), 'tvpn-bench-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  await ensureTools(say);
  const infos = new Map<string, SystemInfo>();
  if (opts.soakMinutes === null && !opts.clientsOnly) {
    for (const s of opts.systems) if (s.prepare) infos.set(s.name, await s.prepare(say));
  }
  // A hard limit, counted from here (apt and downloads are done): twice the expected time.
  const clientsS = opts.reps * 2 * (opts.seconds + 30);
  const tunnelsS = opts.clientsOnly ? 0 : opts.reps * opts.systems.length * (2 * opts.seconds + 20);
  const expectedS = opts.soakMinutes !== null ? opts.soakMinutes * 60 + 60 : tunnelsS + clientsS + 120;
  setTimeout(() => {
    console.error(`bench: over its ${2 * expectedS} s limit, stopping`);
    process.exit(1);
  }, 2 * expectedS * 1000).unref();

  if (opts.soakMinutes !== null) {
    await cleanupStale('tvsoak');
    say(`tvpn soak for ${opts.soakMinutes} min`);
    const env = environment({ ...opts, reps: 1 }, []).split('; median')[0];
    const md = await runSoak(opts.soakMinutes, tmp, say);
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, 'soak.md'), `## tvpn memory soak\n\n${md}\n\n${env}\n`);
    say('\n' + md + `\nwrote ${join(RESULTS, 'soak.md')}`);
    return;
  }

  if (opts.clientsOnly) {
    await cleanupStale('tvclients');
    return say('\n' + clientsTable(await runClients(opts.reps, opts.seconds, tmp, say)));
  }
  const inProcess = runInProcess();
  say(`tunnels: ${opts.systems.map((s) => s.name).join(', ')}; ${opts.reps} repetition(s) of idle ping, iperf3 ${opts.seconds} s x1, and x4 with pings`);
  await benchTunnels(opts, infos, tmp, inProcess);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message} (npm run bench -- --help lists the options)`);
      process.exit(2);
    }
    console.error(`bench: ${errorMessage(err)}`);
    process.exit(1);
  },
);
