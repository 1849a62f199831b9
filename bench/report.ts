/**
 * The tunnel benchmark's output: a markdown table of medians, the tvpn-to-best-other-tunnel
 * ratios per column, the handshake table, and a PNG bar chart (throughput, ping) drawn by gnuplot.
 */
import { execFileSync } from 'node:child_process';
import type { HandshakeResult } from './handshakes.js';

/** One system's medians over the repetitions that succeeded (NaN: not measured). */
export interface SystemResult {
  /** The --systems name; `system` is the row's label (with a version where known). */
  name: string;
  system: string;
  reps: number;
  gbps1: number;
  gbps4: number;
  pingMs: number;
  /** Idle ping minus veth's (the namespaces without a tunnel) in the same run. */
  addedRttMs: number;
  /** The same pings after the load runs: the daemons' code has run hot by then (V8 optimises it). */
  warmPingMs: number;
  /** During the 4-stream run, and the share of those pings lost. */
  loadPingMs: number;
  loadPingLossPct: number;
  cpuServer: number;
  cpuClient: number;
  rssServerMb: number;
  rssClientMb: number;
  /** Why some repetitions failed, if any did. */
  errors: string[];
}

/** Fills in the idle added RTT from the run's veth row (NaN without one, and for veth itself). */
export function withAddedRtt(rows: readonly Omit<SystemResult, 'addedRttMs'>[]): SystemResult[] {
  const veth = rows.find((r) => r.name === 'veth')?.pingMs ?? NaN;
  return rows.map((r) => ({ ...r, addedRttMs: r.name === 'veth' ? NaN : r.pingMs - veth }));
}

type Metric = 'gbps1' | 'gbps4' | 'pingMs' | 'addedRttMs' | 'warmPingMs' | 'loadPingMs';

/** The compared columns: the table's heading, the ratio lines' name, and which way is better. */
const METRICS: readonly { key: Metric; heading: string; name: string; digits: number; lowerIsBetter: boolean }[] = [
  { key: 'gbps1', heading: '1-stream Gbit/s', name: '1 stream', digits: 2, lowerIsBetter: false },
  { key: 'gbps4', heading: '4-stream Gbit/s', name: '4 streams', digits: 2, lowerIsBetter: false },
  { key: 'pingMs', heading: 'idle ping ms', name: 'idle ping', digits: 3, lowerIsBetter: true },
  { key: 'addedRttMs', heading: 'idle added RTT ms', name: 'idle added RTT', digits: 3, lowerIsBetter: true },
  { key: 'warmPingMs', heading: 'idle ping after load ms', name: 'idle ping after load', digits: 3, lowerIsBetter: true },
  { key: 'loadPingMs', heading: 'ping under load ms', name: 'ping under load', digits: 3, lowerIsBetter: true },
];

/** Issue 13's latency target: tvpn's idle added RTT within this factor of Debian 13's wireguard-go's. */
const ADDED_RTT_TARGET = { system: 'wireguard-go-trixie', factor: 1.5 };

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');

export function resultsTable(rows: readonly SystemResult[]): string {
  const lines = [
    `| system | ${METRICS.map((m) => m.heading).join(' | ')} | CPU server % | CPU client % | peak RSS server MB | peak RSS client MB |`,
    `|---|${METRICS.map(() => '--:|').join('')}--:|--:|--:|--:|`,
  ];
  for (const r of rows) {
    const failed = r.errors.length > 0 ? ` (${r.errors.length} failed)` : '';
    const lost = r.loadPingLossPct > 0 ? ` (${fmt(r.loadPingLossPct, 0)}% lost)` : '';
    const metrics = METRICS.map((m) => fmt(r[m.key], m.digits) + (m.key === 'loadPingMs' ? lost : '')).join(' | ');
    lines.push(`| ${r.system}${failed} | ${metrics} | ${fmt(r.cpuServer, 0)} | ${fmt(r.cpuClient, 0)} | ${fmt(r.rssServerMb, 1)} | ${fmt(r.rssClientMb, 1)} |`);
  }
  return lines.join('\n');
}

/** Rows that are no tunnel to compare with: the bare veth (the ceiling) and tvpn's I/O without its protocol (a floor). */
const RELAY = 'node-relay';
const REFERENCES = new Set(['veth', RELAY]);

/** tvpn against the best other tunnel of the run (the references are not tunnels), a line per column. */
export function ratioLines(rows: readonly SystemResult[]): string[] {
  const tvpn = rows.find((r) => r.name === 'tvpn');
  // Over UDP: tvpn's TCP rows and OpenVPN's TCP anchor are compared among themselves (tcpLine).
  const others = rows.filter((r) => !r.name.startsWith('tvpn') && !REFERENCES.has(r.name) && !r.name.endsWith('-tcp'));
  if (!tvpn || others.length === 0) return ['tvpn vs best other tunnel: not measured'];
  const lines = METRICS.map(({ key, name, lowerIsBetter }) => {
    const valid = others.filter((r) => Number.isFinite(r[key]));
    if (valid.length === 0 || !Number.isFinite(tvpn[key])) return `- ${name}: –`;
    const top = valid.reduce((a, b) => ((lowerIsBetter ? b[key] < a[key] : b[key] > a[key]) ? b : a));
    return `- ${name}: ${(tvpn[key] / top[key]).toFixed(2)}x (best other: ${top.system})`;
  });
  const target = rows.find((r) => r.name === ADDED_RTT_TARGET.system);
  if (target) {
    // The RTT each adds to veth's, tvpn's over the target's: on the fresh tunnel, and after load.
    const veth = rows.find((r) => r.name === 'veth');
    const added = (r: SystemResult, key: 'pingMs' | 'warmPingMs'): number => (r[key] - (veth?.[key] ?? NaN)) / (target[key] - (veth?.[key] ?? NaN));
    const [fresh, after] = [added(tvpn, 'pingMs'), added(tvpn, 'warmPingMs')];
    if (Number.isFinite(fresh)) lines.push(`- idle added RTT vs ${target.system}: ${fresh.toFixed(2)}x (issue 13's target: at most ${ADDED_RTT_TARGET.factor}x)`);
    if (Number.isFinite(after)) lines.push(`- idle added RTT after load vs ${target.system}: ${after.toFixed(2)}x (for reference: the same daemons once their code is hot)`);
    const relay = rows.find((r) => r.name === RELAY);
    if (relay) {
      const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '–');
      lines.push(`- node-relay's idle added RTT vs ${target.system}: ${x(added(relay, 'pingMs'))} fresh, ${x(added(relay, 'warmPingMs'))} after load (the floor: tvpn's I/O and AEAD without its protocol)`);
    }
  }
  return ['tvpn vs the best other tunnel of this run, per column (throughput: higher is better; ping and RTT: lower is better):', ...lines];
}

/** Issue 16: tvpn over TCP and TLS against OpenVPN over TCP and against tvpn over UDP, one stream. */
export function tcpLines(rows: readonly SystemResult[]): string[] {
  const anchor = rows.find((r) => r.name === 'openvpn-tcp');
  const udp = rows.find((r) => r.name === 'tvpn');
  return rows
    .filter((r) => r.name === 'tvpn-tcp' || r.name === 'tvpn-tls')
    .map((r) => {
      const vs = [anchor && `${(r.gbps1 / anchor.gbps1).toFixed(2)}x OpenVPN over TCP`, udp && `${(r.gbps1 / udp.gbps1).toFixed(2)}x tvpn over UDP`];
      return `- ${r.name}, 1 stream: ${fmt(r.gbps1, 2)} Gbit/s, ${vs.filter(Boolean).join(', ') || 'no anchor in this run'}`;
    });
}

export function handshakeTable(h: HandshakeResult): string {
  return [
    `| tvpn core, ${h.peers.toLocaleString('en-US')} peers, one core | result |`,
    '|---|--:|',
    `| handshakes completed by the responder (initiation in, response out) | ${Math.round(h.handshakesPerSecond).toLocaleString('en-US')} /s (target ≥ 2,000) |`,
    `| allowed-IPs lookup of a destination | ${h.allowedIpsNs.toFixed(0)} ns |`,
    `| static-key lookup (peer by public key) | ${h.staticKeyNs.toFixed(0)} ns |`,
  ].join('\n');
}

interface Bar {
  key: Metric;
  title: string;
  color: string;
}

/** Two bars per system, each with its value on top; values past `top` are cut there, marked ↑. */
function barPanel(rows: readonly SystemResult[], ylabel: string, bars: readonly [Bar, Bar], top: number, digits: number): string {
  const v = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : '-'); // '-': missing, no bar or label
  const data = rows.map((r) => bars.map((b) => v(r[b.key])).join(' ')).join('\n');
  // Two bars per cluster with gap 1: each is 1/3 wide, centred at x -/+ 1/6.
  const label = (col: number, dx: string): string =>
    `'' using ($0${dx}):($${col} > top ? top * 0.93 : $${col}):(sprintf($${col} > top ? "%.${digits - 1}f ↑" : "%.${digits}f", $${col})) with labels offset 0,0.7 font ",9" notitle`;
  const block = `$${bars[0].key}`;
  return `
set ylabel '${ylabel}'
top = ${top}
set yrange [0:top]
${block} << EOD
${data}
EOD
plot ${block} using 1 title '${bars[0].title}' lc rgb '${bars[0].color}', '' using 2 title '${bars[1].title}' lc rgb '${bars[1].color}', \\
  ${label(1, '-1./6')}, \\
  ${label(2, '+1./6')}
`;
}

/** The axis top for some values: 30% above the largest, so the value labels fit. */
const axisTop = (xs: readonly number[], floor: number): number => Math.max(...xs.filter(Number.isFinite), floor) * 1.3;

/**
 * Two panels: clustered throughput bars (1 and 4 streams) and ping bars (idle and under load)
 * per system, with their values. veth is often an order of magnitude above every tunnel, so
 * the throughput axis is scaled to the tunnels and bars beyond it are cut with their value.
 */
export function plotPng(rows: readonly SystemResult[], path: string, title: string): void {
  const plotted = rows.filter((r) => r.name !== RELAY && (Number.isFinite(r.gbps1) || Number.isFinite(r.gbps4)));
  const tunnels = plotted.filter((r) => r.name !== 'veth');
  const gbps = (rs: readonly SystemResult[]): number[] => rs.flatMap((r) => [r.gbps1, r.gbps4]);
  const gbpsTop = axisTop(gbps(tunnels.length > 0 ? tunnels : plotted), 0.1);
  const pingTop = axisTop(plotted.flatMap((r) => [r.pingMs, r.loadPingMs]), 0.1);
  // "wireguard-go 0.0.20231211 (Debian 13)": name, version and release on lines of their own.
  const xtics = plotted.map((r, i) => `"${r.system.replace(/"/g, "'").replace(' (', '\\n(').replace(/^(\S+) /, '$1\\n')}" ${i}`).join(', ');
  const script = `
set terminal pngcairo size 1100,960 font "DejaVu Sans,11"
set output '${path}'
set datafile missing '-'
set bmargin 4
set lmargin 10
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.95 relative
set grid ytics
set key above
set xtics nomirror (${xtics})
set multiplot layout 2,1 title "${title}"
${barPanel(plotted, 'Gbit/s', [{ key: 'gbps1', title: '1 stream', color: '#4472c4' }, { key: 'gbps4', title: '4 streams', color: '#ed7d31' }], gbpsTop, 2)}
${barPanel(plotted, 'ping ms', [{ key: 'pingMs', title: 'idle', color: '#70ad47' }, { key: 'loadPingMs', title: 'under load (4 streams)', color: '#a5a5a5' }], pingTop, 3)}
unset multiplot
`;
  execFileSync('gnuplot', [], { input: script, timeout: 30_000, stdio: ['pipe', 'ignore', 'pipe'] });
}
