/** `tvpn remove-client NAME -c server.yaml`: the client's entry goes, and the running server reloads. */
import type { Command } from 'commander';
import { readConfigFile } from '../../config/walk.js';
import { loadServerConfig, parseServerConfig, type ServerConfig } from '../../config/server.js';
import { applyChange } from '../apply.js';
import { removeClientEntry, replaceFile } from '../serverfile.js';

/**
 * Removes the entry from the server config (the rest of the file kept byte for byte), after
 * checking tvpn still takes the result. Key files and the client's profile are left alone.
 * Returns the edited config and the line for the user.
 */
export function removeClient(name: string, config: string): { cfg: ServerConfig; message: string } {
  const { text, mode } = readConfigFile(config);
  const clients = parseServerConfig(text, config, mode).clients;
  const edited = removeClientEntry(text, name, config); // throws, naming the clients there are, if it is not one
  const entry = clients.find((c) => c.name === name)!;
  const cfg = parseServerConfig(edited, config, mode);
  replaceFile(config, edited, mode);
  const address = entry.address ? ` (${entry.address})` : '';
  return {
    cfg,
    message: `removed client '${name}'${address} from ${config}; its key files and client profile are left alone: delete them if they are no longer needed`,
  };
}

export function register(program: Command): void {
  program
    .command('remove-client')
    .description('remove a client from a server config, and from the running server')
    .argument('<name>', 'the client\'s name')
    .requiredOption('-c, --config <file>', 'the server config to remove it from')
    .option('--no-reload', 'only edit the file; do not make the running server reload it')
    .action(async (name: string, opts: { config: string; reload: boolean }) => {
      const fleet = loadServerConfig(opts.config);
      if (fleet.fleet) return void process.stdout.write(`${await (await import('../fleet.js')).fleetRemoveClient({ ...fleet, fleet: fleet.fleet }, name)}\n`);
      const { cfg, message } = removeClient(name, opts.config);
      process.stdout.write(`${message}\n`);
      await applyChange(cfg, opts.reload);
    });
}
