/**
 * Soak: tvpn server and client in a namespace pair under iperf3 load for N minutes (30 s runs,
 * alternating one stream client→server and four streams server→client, so both directions and
 * several rekeys happen), each daemon's VmRSS sampled every 10 s. Reports RSS after the first
 * minute, at the end, their ratio (target: within 10%) and the peak VmHWM (target ≤ 80 MB).
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createNetnsPair } from '../src/lab/netns.js';
import { stopProc } from '../test/helpers/tvpn.js';
import { iperf, median, memoryMb, startIperfServer } from './measure.js';
import { tvpn } from './tunnels/tvpn.js';

const SAMPLE_MS = 10_000;
const CHUNK_S = 30;

interface Sample {
  seconds: number;
  server: number;
  client: number;
}

export async function runSoak(minutes: number, tmp: string, say: (line: string) => void): Promise<string> {
  const pair = await createNetnsPair({ prefix: 'tvsoak', index: 62, ipv6: false });
  try {
    const tunnel = await tvpn.up(pair, mkdtempSync(join(tmp, 'soak-')));
    const pids = tunnel.pids!;
    const iperfServer = await startIperfServer(pair.a, tunnel.serverAddr);
    const t0 = performance.now();
    const elapsed = (): number => (performance.now() - t0) / 1000;
    const samples: Sample[] = [];
    const sample = (): void => void samples.push({ seconds: elapsed(), server: memoryMb(pids.server, 'VmRSS'), client: memoryMb(pids.client, 'VmRSS') });
    sample();
    const sampler = setInterval(sample, SAMPLE_MS);
    const gbps: number[] = [];
    try {
      for (let i = 0; elapsed() < minutes * 60 - 2; i++) {
        const seconds = Math.min(CHUNK_S, Math.floor(minutes * 60 - elapsed()));
        gbps.push(await iperf(pair.b, tunnel.serverAddr, seconds, i % 2 ? 4 : 1, i % 2 === 1));
        say(`  soak ${Math.round(elapsed())} s: ${gbps.at(-1)!.toFixed(2)} Gbit/s, RSS server ${samples.at(-1)!.server.toFixed(1)} MB, client ${samples.at(-1)!.client.toFixed(1)} MB`);
      }
    } finally {
      clearInterval(sampler);
    }
    sample();
    const peak = { server: memoryMb(pids.server, 'VmHWM'), client: memoryMb(pids.client, 'VmHWM') };
    await stopProc(iperfServer);
    await tunnel.stop();

    const first = samples.find((s) => s.seconds >= 60) ?? samples.at(-1)!;
    const last = samples.at(-1)!;
    const row = (side: 'server' | 'client'): string => {
      const ratio = last[side] / first[side];
      const ok = Math.abs(ratio - 1) <= 0.1 && peak[side] <= 80 ? 'yes' : 'NO';
      return `| ${side} | ${first[side].toFixed(1)} | ${last[side].toFixed(1)} | ${ratio.toFixed(3)} | ${peak[side].toFixed(1)} | ${ok} |`;
    };
    return [
      `tvpn soak: ${minutes} min of iperf3 load (${CHUNK_S} s runs alternating 1 stream up / 4 streams down; median ${median(gbps).toFixed(2)} Gbit/s), VmRSS every ${SAMPLE_MS / 1000} s`,
      '',
      '| daemon | RSS at 1 min MB | RSS at end MB | end / 1 min | peak RSS (VmHWM) MB | within 10% and ≤ 80 MB |',
      '|---|--:|--:|--:|--:|:-:|',
      row('server'),
      row('client'),
      '',
      `RSS samples (MB), server: ${samples.map((s) => s.server.toFixed(1)).join(' ')}`,
      '',
      `RSS samples (MB), client: ${samples.map((s) => s.client.toFixed(1)).join(' ')}`,
    ].join('\n');
  } finally {
    await pair.cleanup();
  }
}
