/**
 * The tunnel benchmark's output: a markdown table of medians, the tvpn-to-best-other-tunnel
 * ratios, the handshake table, and a PNG bar chart drawn by gnuplot.
 */
import { execFileSync } from 'node:child_process';
import type { HandshakeResult } from './handshakes.js';

/** One system's medians over the repetitions that succeeded (NaN: not measured). */
export interface SystemResult {
  system: string;
  reps: number;
  gbps1: number;
  gbps4: number;
  pingMs: number;
  cpuServer: number;
  cpuClient: number;
  rssServerMb: number;
  rssClientMb: number;
  /** Why some repetitions failed, if any did. */
  errors: string[];
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');

export function resultsTable(rows: readonly SystemResult[]): string {
  const lines = [
    '| system | 1-stream Gbit/s | 4-stream Gbit/s | ping ms | CPU server % | CPU client % | peak RSS server MB | peak RSS client MB |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of rows) {
    const failed = r.errors.length > 0 ? ` (${r.errors.length} failed)` : '';
    lines.push(
      `| ${r.system}${failed} | ${fmt(r.gbps1, 2)} | ${fmt(r.gbps4, 2)} | ${fmt(r.pingMs, 3)} | ${fmt(r.cpuServer, 0)} | ${fmt(r.cpuClient, 0)} | ${fmt(r.rssServerMb, 1)} | ${fmt(r.rssClientMb, 1)} |`,
    );
  }
  return lines.join('\n');
}

/** tvpn against the best other tunnel (veth is the ceiling, not a tunnel), per metric. */
export function ratioLine(rows: readonly SystemResult[]): string {
  const tvpn = rows.find((r) => r.system === 'tvpn');
  const others = rows.filter((r) => r.system !== 'tvpn' && r.system !== 'veth');
  if (!tvpn || others.length === 0) return 'tvpn vs best other tunnel: not measured';
  const best = (key: 'gbps1' | 'gbps4' | 'pingMs', lowerIsBetter: boolean): string => {
    const valid = others.filter((r) => Number.isFinite(r[key]));
    if (valid.length === 0 || !Number.isFinite(tvpn[key])) return '–';
    const top = valid.reduce((a, b) => ((lowerIsBetter ? b[key] < a[key] : b[key] > a[key]) ? b : a));
    return `${(tvpn[key] / top[key]).toFixed(2)}x (best other: ${top.system})`;
  };
  return `tvpn vs best other tunnel: 1 stream ${best('gbps1', false)}, 4 streams ${best('gbps4', false)}, ping ${best('pingMs', true)} (ping: lower is better)`;
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

/**
 * Clustered bars (1 and 4 streams) per system with their values. veth is often an order of
 * magnitude above every tunnel, so the axis is scaled to the tunnels and bars beyond it are
 * cut at the top with their value printed there.
 */
export function plotPng(rows: readonly SystemResult[], path: string, title: string): void {
  const plotted = rows.filter((r) => Number.isFinite(r.gbps1) || Number.isFinite(r.gbps4));
  const tunnels = plotted.filter((r) => r.system !== 'veth').flatMap((r) => [r.gbps1, r.gbps4].filter(Number.isFinite));
  const all = plotted.flatMap((r) => [r.gbps1, r.gbps4].filter(Number.isFinite));
  const top = Math.max(...(tunnels.length > 0 ? tunnels : all), 0.1) * 1.3;
  const v = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '0');
  const data = plotted.map((r) => `"${r.system}" ${v(r.gbps1)} ${v(r.gbps4)}`).join('\n');
  // Two bars per cluster with gap 1: each is 1/3 wide, centred at x -/+ 1/6.
  const label = (col: number, dx: string): string =>
    `'' using ($0${dx}):($${col} > top ? top * 0.93 : $${col}):(sprintf($${col} > top ? "%.1f ↑" : "%.2f", $${col})) with labels offset 0,0.7 font ",10" notitle`;
  const script = `
set terminal pngcairo size 1000,560 font "DejaVu Sans,11"
set output '${path}'
set title "${title}"
set ylabel 'Gbit/s'
top = ${top}
set yrange [0:top]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.95 relative
set grid ytics
set key top right
set xtics nomirror
$data << EOD
${data}
EOD
plot $data using 2:xtic(1) title '1 stream' lc rgb '#4472c4', '' using 3 title '4 streams' lc rgb '#ed7d31', \\
  ${label(2, '-1./6')}, \\
  ${label(3, '+1./6')}
`;
  execFileSync('gnuplot', [], { input: script, timeout: 30_000, stdio: ['pipe', 'ignore', 'pipe'] });
}
