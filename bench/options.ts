/** The benchmark's command line: its options, --help, and usage errors (exit 2 in run.ts). */
import { parseArgs } from 'node:util';
import { SYSTEMS, type TunnelSystem } from './tunnels/index.js';

export const HELP = `usage: npm run bench -- [options]

tvpn side by side with the raw veth, OpenVPN 2.6 (AES-256-GCM, ChaCha20-Poly1305) and
wireguard-go (the system's and Debian 13's), each in fresh network namespaces: iperf3 TCP
with 1 and 4 streams, idle ping, ping under load (during the 4 streams), CPU and peak RSS,
plus the core's handshake rate and lookups with 10,000 peers, the server's packets/s with 1
and 2 workers in process, and a server with 4 clients sending at once. Needs root; installs missing
tools with apt and fetches Debian 13's wireguard-go into /var/cache/tvpn-bench once.
Runs the compiled tree: npx tsc -p tsconfig.build.json first after changing src/ or bench/.

  --reps N          repetitions, 1..20 (default 3, or 1 with --quick); medians are reported
  --quick           1 repetition of 3 s iperf3 runs, a smoke run: writes bench/results/quick.*
  --systems A,B     only these (writes partial.*; a full run writes latest.*), of:
                    ${SYSTEMS.map((s) => s.name).join(', ')}
  --net N           underlay 198.18.N.0/24 and tunnel 198.19.N.0/24 in the namespaces, 0..255 (default 61)
  --handshakes      only the in-process numbers: handshakes and lookups with 10,000 peers,
                    and the server's receive path with 1 and 2 workers (no root needed)
  --clients         only the 4-client run (server workers 1 and 2); a full run includes it
  --soak MINUTES    only the tvpn memory soak, 1..120 minutes: writes soak.md
  -h, --help        this text

Tunnel runs also keep every repetition in bench/results/raw-*.json.`;

/** A bad command line: run.ts prints it on one line and exits 2. */
export class UsageError extends Error {}

export interface Options {
  reps: number;
  seconds: number;
  quick: boolean;
  systems: TunnelSystem[];
  handshakesOnly: boolean;
  clientsOnly: boolean;
  soakMinutes: number | null;
  /** N of the namespaces' 198.18.N.0/24 underlay and 198.19.N.0/24 tunnel. */
  net: number;
}

/** The options, or 'help' for --help. */
export function parseOptions(argv: string[]): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        reps: { type: 'string' },
        quick: { type: 'boolean', default: false },
        systems: { type: 'string' },
        handshakes: { type: 'boolean', default: false },
        clients: { type: 'boolean', default: false },
        soak: { type: 'string' },
        net: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    // node's own messages ("Unknown option '--x'", "Option '--reps <value>' argument missing") are clear enough.
    throw new UsageError((err as Error).message.split('. ')[0]!);
  }
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  const reps = Number(values.reps ?? (quick ? 1 : 3));
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new UsageError(`--reps must be 1..20, not ${values.reps}`);
  const names = values.systems?.split(',') ?? SYSTEMS.map((s) => s.name);
  const unknown = names.filter((n) => !SYSTEMS.some((s) => s.name === n));
  if (unknown.length > 0) throw new UsageError(`unknown system ${unknown.join(', ')}; known: ${SYSTEMS.map((s) => s.name).join(', ')}`);
  const soak = values.soak === undefined ? null : Number(values.soak);
  if (soak !== null && !(soak >= 1 && soak <= 120)) throw new UsageError(`--soak takes minutes, 1..120, not ${values.soak}`);
  const net = Number(values.net ?? 61);
  if (!Number.isInteger(net) || net < 0 || net > 255) throw new UsageError(`--net must be 0..255, not ${values.net}`);
  return { net, reps, seconds: quick ? 3 : 10, quick, systems: SYSTEMS.filter((s) => names.includes(s.name)), handshakesOnly: values.handshakes ?? false, clientsOnly: values.clients ?? false, soakMinutes: soak };
}
