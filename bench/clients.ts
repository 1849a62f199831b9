/**
 * A tvpn server with 4 clients, each in its own namespace on its own veth (a star: underlay
 * 198.18.62-65.0/24, tunnel 198.19.62.0/24), all sending one iperf3 TCP stream to the server
 * at once: the sum, and the server's CPU, with the server's `workers` at 1 and at 2. The
 * clients keep the default. On a 2-core machine the 4 client daemons, 4 iperf3 pairs and the
 * server share the cores, so this shows what the workers cost or bring when cores are short,
 * not what a dedicated server gains (the in-process figures in workers.ts are for that).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../src/config/keys.js';
import { createNetnsStar } from '../src/lab/netns.js';
import { stopProc, until, type Proc } from '../test/helpers/tvpn.js';
import { CpuMeter, IPERF_PORT, iperf, median, startIperfServer } from './measure.js';
import { TUNNEL_MTU } from './tunnels/common.js';
import { startTvpn } from './tunnels/tvpn.js';

export interface ClientsResult {
  clients: number;
  reps: number;
  /** By server workers: median summed Gbit/s, and the server's CPU % of one core. */
  rows: { workers: number; gbps: number; cpuServer: number }[];
}

const CLIENTS = 4;
const INDEX = 62;
const SERVER_ADDR = `198.19.${INDEX}.1`;

/** One run: the star, the daemons, 4 concurrent iperf3 streams; torn down whatever happens. */
async function runOnce(workers: number, seconds: number, tmp: string): Promise<{ gbps: number; cpuServer: number }> {
  const star = await createNetnsStar({ prefix: 'tvclients', index: INDEX, spokes: CLIENTS });
  const procs: Proc[] = [];
  try {
    const dir = mkdtempSync(join(tmp, `clients-w${workers}-`));
    const serverKey = generatePrivateKey();
    writeKeyFile(join(dir, 'server.key'), serverKey);
    const clientKeys = star.spokes.map(() => generatePrivateKey());
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: ${SERVER_ADDR}/24, mtu: ${TUNNEL_MTU} }\nlisten: 0.0.0.0:51820\nprivate_key_file: server.key\nstate_dir: state\nworkers: ${workers}\n` +
        `push: { routes: [], dns: [], keepalive: 25 }\nclients:\n` +
        clientKeys.map((k, i) => `  - { name: c${i}, public_key: ${encodeKey(publicKeyOf(k))}, address: 198.19.${INDEX}.${10 + i} }\n`).join(''),
    );
    const server = startTvpn(star.hub, ['server', '-c', join(dir, 'server.yaml')]);
    procs.push(server);
    const logs = (): string => procs.map((p) => p.log().slice(-1500)).join('\n---\n');
    await until('tvpn server', () => server.log().includes('listening on'), 15_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${logs()}`)));
    const iperfs = await Promise.all(star.spokes.map((_, i) => startIperfServer(star.hub, SERVER_ADDR, IPERF_PORT + i)));
    procs.push(...iperfs);
    const clients = star.spokes.map((ns, i) => {
      writeKeyFile(join(dir, `c${i}.key`), clientKeys[i]!);
      writeFileSync(
        join(dir, `c${i}.yaml`),
        `interface: { name: tun0 }\nserver: { endpoint: ${star.hubEnds[i]!.addr}:51820, public_key: ${encodeKey(publicKeyOf(serverKey))} }\n` +
          `private_key_file: c${i}.key\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
      );
      return startTvpn(ns, ['client', '-c', join(dir, `c${i}.yaml`)]);
    });
    procs.push(...clients);
    await Promise.all(clients.map((c, i) => until(`client c${i} configured`, () => c.log().includes('config 1 applied'), 20_000))).catch((err: Error) =>
      Promise.reject(new Error(`${err.message}\n${logs()}`)),
    );
    const cpu = new CpuMeter([server.child.pid!]);
    const gbps = await Promise.all(star.spokes.map((ns, i) => iperf(ns, SERVER_ADDR, seconds, 1, false, IPERF_PORT + i)));
    return { gbps: gbps.reduce((a, b) => a + b, 0), cpuServer: cpu.percent()[0]! };
  } finally {
    await Promise.all(procs.map((p) => stopProc(p).catch(() => undefined)));
    await star.cleanup();
  }
}

/** Alternates workers 1 and 2 for `reps` repetitions each; medians. */
export async function runClients(reps: number, seconds: number, tmp: string, say: (line: string) => void): Promise<ClientsResult> {
  const runs = new Map<number, { gbps: number; cpuServer: number }[]>([
    [1, []],
    [2, []],
  ]);
  for (let r = 0; r < reps; r++) {
    for (const [workers, list] of runs) {
      const one = await runOnce(workers, seconds, tmp);
      say(`  ${CLIENTS} clients, server workers ${workers}, rep ${r + 1}/${reps}: ${one.gbps.toFixed(2)} Gbit/s, server CPU ${one.cpuServer.toFixed(0)}%`);
      list.push(one);
    }
  }
  return {
    clients: CLIENTS,
    reps,
    rows: [...runs].map(([workers, list]) => ({ workers, gbps: median(list.map((x) => x.gbps)), cpuServer: median(list.map((x) => x.cpuServer)) })),
  };
}

export function clientsTable(c: ClientsResult): string {
  const base = c.rows[0]!.gbps;
  return [
    `| tvpn server, ${c.clients} clients, 1 iperf3 stream each at once (median of ${c.reps}) | sum Gbit/s | ratio | server CPU % |`,
    '|---|--:|--:|--:|',
    ...c.rows.map((r) => `| server workers: ${r.workers} | ${r.gbps.toFixed(2)} | ${(r.gbps / base).toFixed(2)}x | ${r.cpuServer.toFixed(0)} |`),
  ].join('\n');
}
