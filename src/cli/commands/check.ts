import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { loadClientConfig } from '../../config/client.js';
import { detectConfigKind } from '../../config/kind.js';
import { encodeKey } from '../../config/keys.js';
import { loadServerConfig, type ServerConfig } from '../../config/server.js';
import { formatEndpoint } from '../../net/endpoint.js';
import { readStoredLeases } from '../../daemon/server/leases.js';

/**
 * Validates a config file and returns its one-line summary (after a line per warning); throws
 * ConfigError. Without a kind, the keys decide (config/kind.ts).
 */
function checkConfig(path: string, kind: 'server' | 'client' = detectConfigKind(path)): string {
  if (kind === 'client') {
    const c = loadClientConfig(path);
    const tcp = c.server.tcp ? `, ${c.server.transport === 'tcp' ? 'over' : 'falling back to'} ${c.server.tcp.tls ? 'TLS' : 'TCP'} ${formatEndpoint({ ip: c.server.tcp.host, port: c.server.tcp.port })}` : '';
    return warned(c.warnings) + `${path}: ok (client ${c.interface.name}, server ${formatEndpoint({ ip: c.server.host, port: c.server.port })}${tcp})`;
  }
  const s = loadServerConfig(path);
  const clients = s.fleet ? `fleet ${s.fleet.name}, clients in etcd under ${s.fleet.prefix}` : `${s.clients.length} client${s.clients.length === 1 ? '' : 's'}`;
  const { address, address6 } = s.interface;
  const addresses = [address, address6].flatMap((a) => (a ? [a.text] : [])).join(' ');
  const pools = [s.pool, s.pool6].flatMap((p) => (p ? [`${p.first}-${p.last}`] : [])).join(' ');
  const tcp = s.tcp ? `, ${s.tcp.tls ? 'TLS' : 'TCP'} ${formatEndpoint({ ip: s.tcp.listen.host, port: s.tcp.listen.port })}` : '';
  return warned([...s.warnings, ...leaseConflicts(s)]) + `${path}: ok (server ${s.interface.name} ${addresses}, ${clients}, pool ${pools}${tcp})`;
}

/**
 * Static addresses that the state directory's leases give to another client (the pool moved
 * under them): a running server refuses such a reload while the holder is connected, and a
 * restart moves the holder to a new address. Unreadable state is not the config's fault.
 */
function leaseConflicts(s: ServerConfig): string[] {
  const leases = readStoredLeases(join(s.stateDir, 'leases.json')) ?? [];
  const holders = new Map(leases.map((l) => [l.address, l]));
  return s.clients.flatMap((c) => [c.address, c.address6].flatMap((address) => {
    const held = address === null ? undefined : holders.get(address);
    if (!held || held.key === encodeKey(c.publicKey)) return [];
    return [
      `client ${c.name}: address ${address} is leased to ${held.name || held.key} (${join(s.stateDir, 'leases.json')}); ` +
        `a running server refuses this on reload while ${held.name || 'that client'} is connected, and a restart gives ${held.name || 'it'} a new address`,
    ];
  }));
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
