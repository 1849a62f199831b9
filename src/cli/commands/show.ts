/** `tvpn show [--json]`: the running daemon's peers, endpoints, handshakes and counters. */
import type { Command } from 'commander';
import { detectConfigKind } from '../../config/kind.js';
import { defaultStatusSocket } from '../../config/load.js';
import { loadClientConfig } from '../../config/client.js';
import { loadServerConfig } from '../../config/server.js';
import { formatStatus, queryStatus } from '../../daemon/status.js';

export function register(program: Command): void {
  program
    .command('show')
    .description('show the running daemon: peers, endpoints, latest handshakes, transfer')
    .option('-c, --config <file>', 'the daemon\'s config (finds its status socket)')
    .option('-i, --interface <name>', 'the daemon\'s interface name (default tun0)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config?: string; interface?: string; json?: boolean }) => {
      const socket = opts.config
        ? (detectConfigKind(opts.config) === 'server' ? loadServerConfig(opts.config) : loadClientConfig(opts.config)).statusSocket
        : defaultStatusSocket(opts.interface ?? 'tun0');
      const status = await queryStatus(socket);
      process.stdout.write(opts.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
    });
}
