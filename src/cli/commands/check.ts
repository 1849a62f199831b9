import { Option, type Command } from 'commander';
import { loadClientConfig } from '../../config/client.js';
import { detectConfigKind } from '../../config/load.js';
import { loadServerConfig } from '../../config/server.js';
import { formatEndpoint } from '../../wireguard/endpoint.js';

/**
 * Validates a config file and returns its one-line summary (after a line per warning); throws
 * ConfigError. Without a kind, a file with a top-level 'server' key is a client config,
 * anything else a server config.
 */
export function checkConfig(path: string, kind: 'server' | 'client' = detectConfigKind(path)): string {
  if (kind === 'client') {
    const c = loadClientConfig(path);
    return warned(c.warnings) + `${path}: ok (client ${c.interface.name}, server ${formatEndpoint({ ip: c.server.host, port: c.server.port })})`;
  }
  const s = loadServerConfig(path);
  const clients = `${s.clients.length} client${s.clients.length === 1 ? '' : 's'}`;
  return warned(s.warnings) + `${path}: ok (server ${s.interface.name} ${s.interface.address.text}, ${clients}, pool ${s.pool.first}-${s.pool.last})`;
}

const warned = (warnings: string[]): string => warnings.map((w) => `warning: ${w}\n`).join('');

export function register(program: Command): void {
  program
    .command('check')
    .description('validate a server or client config file and print a one-line summary')
    .requiredOption('-c, --config <file>', 'the config file')
    .addOption(new Option('--server', 'read it as a server config (default: detected)').conflicts('client'))
    .addOption(new Option('--client', 'read it as a client config (default: detected)').conflicts('server'))
    .action((opts: { config: string; server?: boolean; client?: boolean }) => {
      const kind = opts.client === true ? 'client' : opts.server === true ? 'server' : undefined;
      process.stdout.write(`${checkConfig(opts.config, kind)}\n`);
    });
}
