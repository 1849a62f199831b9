/** `tvpn reload -c server.yaml`: the running server re-reads its config, as on SIGHUP. */
import type { Command } from 'commander';
import { loadServerConfig } from '../../config/server.js';
import { describeReload, reloadServer } from '../apply.js';

export function register(program: Command): void {
  program
    .command('reload')
    .description('make the running server apply its edited config (clients, push, log_level) without a restart')
    .requiredOption('-c, --config <file>', 'the server config')
    .action(async (opts: { config: string }) => {
      const lines = describeReload(await reloadServer(loadServerConfig(opts.config)));
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    });
}
