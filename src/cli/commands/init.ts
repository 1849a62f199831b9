/**
 * `tvpn init`: a working server config and a fresh key, so that `tvpn add-client` and
 * `tvpn server` work right away (configs/server.yaml is an example with placeholders).
 */
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { ConfigError, fsReason } from '../../config/errors.js';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../config/keys.js';
import { parseServerConfig } from '../../config/server.js';
import { hostRange, parseInterfaceAddress, type InterfaceAddress } from '../../net/cidr.js';
import { formatRange, ipOf, rangeContains } from '../../net/range.js';
import { parseHostPort } from '../../net/endpoint.js';
import { PACKAGE_ROOT } from '../../version.js';
import { option } from './add-client.js';

interface InitOptions {
  /** The server config to write; its key goes beside it as server.key. */
  config: string;
  address: string;
  listen: string;
  endpoint?: string;
  stateDir: string;
}

const INIT_DEFAULTS = { config: 'server.yaml', address: '10.8.0.1/24', listen: '0.0.0.0:51820', stateDir: '/var/lib/tvpn' };

const KEY_FILE = 'server.key';

/** Points editors at this installation's schema: the config is written on the host that has it. */
const SCHEMA_MODELINE = `# yaml-language-server: $schema=${pathToFileURL(join(PACKAGE_ROOT, 'schema', 'server.schema.json')).href}`;

/** One YAML scalar, quoted where YAML needs it ('[::]:51820' would read as a list). */
const yaml = (value: string): string => stringify(value).trimEnd();

/** The half of the subnet's hosts without the server: the other half is for the static addresses add-client gives. */
function initialPool(address: InterfaceAddress): string | null {
  const { first, last } = hostRange(address);
  const half = (last.value - first.value + 1n) / 2n;
  if (half < 2n) return null;
  const upper = { first: { ...first, value: last.value - half + 1n }, last };
  const lower = { first, last: { ...first, value: first.value + half - 1n } };
  return formatRange(rangeContains(upper, ipOf(address.ip)) ? lower : upper);
}

function configText(opts: InitOptions, address: InterfaceAddress, publicKey: string): string {
  const pool = initialPool(address);
  const endpoint = opts.endpoint === undefined
    ? "# endpoint: vpn.example.com:51820  # the public host:port 'tvpn add-client' writes into client configs"
    : `endpoint: ${yaml(opts.endpoint)}  # what 'tvpn add-client' writes into client configs`;
  return [
    SCHEMA_MODELINE,
    "# tvpn server config, made by 'tvpn init'. Check it with 'tvpn check -c FILE'; every key",
    '# (push routes and DNS, pool, client_to_client, ...) is explained in configs/server.yaml.',
    'interface:',
    '  name: tun0',
    `  address: ${yaml(opts.address)}  # the server's tunnel address; its prefix is the VPN subnet`,
    `listen: ${yaml(opts.listen)}`,
    endpoint,
    `private_key_file: ${KEY_FILE}  # public key ${publicKey}`,
    ...(pool === null ? [] : [`pool: ${pool}  # dynamic addresses; 'tvpn add-client' gives static ones outside it`]),
    `state_dir: ${yaml(opts.stateDir)}  # address leases; must be writable`,
    "# One entry per client: 'tvpn add-client NAME -c FILE' adds them.",
    'clients: []',
    '',
  ].join('\n');
}

/** Writes the key (mode 0600) and the config, never over existing files; returns the public key. */
function init(opts: InitOptions): string {
  const address = option('--address', () => parseInterfaceAddress(opts.address));
  option('--listen', () => parseHostPort(opts.listen, { ipOnly: true }));
  if (opts.endpoint !== undefined) option('--endpoint', () => parseHostPort(opts.endpoint!, { ipOnly: false }));
  const keyFile = join(dirname(opts.config), KEY_FILE);
  for (const path of [opts.config, keyFile]) {
    if (existsSync(path)) throw new ConfigError(`${path} already exists; tvpn init never overwrites: remove it or pass -c with another path`);
  }
  const privateKey = generatePrivateKey();
  const publicKey = encodeKey(publicKeyOf(privateKey));
  const text = configText(opts, address, publicKey);
  writeKeyFile(keyFile, privateKey);
  try {
    parseServerConfig(text, opts.config); // never leave a config tvpn would refuse
    writeFileSync(opts.config, text, { flag: 'wx' });
  } catch (err) {
    unlinkSync(keyFile);
    throw err instanceof ConfigError ? err : new ConfigError(`cannot write ${opts.config}: ${fsReason(err)}`);
  }
  return publicKey;
}

export function register(program: Command): void {
  const d = INIT_DEFAULTS;
  program
    .command('init')
    .description('write a working server config and a new server key (server.key beside it, mode 0600)')
    .option('-c, --config <file>', 'the server config to write', d.config)
    .option('--address <cidr>', "the server's tunnel address; its prefix is the VPN subnet", d.address)
    .option('--listen <host:port>', 'UDP address to listen on', d.listen)
    .option('--endpoint <host:port>', "the server's public address, for the client configs add-client writes")
    .option('--state-dir <dir>', 'where address leases are kept (writable)', d.stateDir)
    .action((opts: InitOptions) => {
      const publicKey = init(opts);
      const keyFile = join(dirname(opts.config), KEY_FILE);
      process.stdout.write(`wrote ${opts.config} and ${keyFile} (mode 0600); server public key ${publicKey}\n`);
      process.stdout.write(`next: tvpn add-client NAME -c ${opts.config}${opts.endpoint === undefined ? ' --endpoint HOST:PORT' : ''}\n`);
    });
}
