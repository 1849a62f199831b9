import { closeSync, constants, existsSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { Document, isMap, isScalar, isSeq, parseDocument, YAMLSeq, type Node, type Scalar, type YAMLMap } from 'yaml';
import { networkOf } from '../../net/cidr.js';
import { formatEndpoint, parseHostPort } from '../../net/endpoint.js';
import { formatRange, ipOf, ipText, rangeContains, type Ip, type IpRange } from '../../net/range.js';
import { ConfigError, fsReason } from '../../config/errors.js';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../config/keys.js';
import { readConfigFile } from '../../config/walk.js';
import {
  addressPlansOf,
  loadServerConfig,
  parseClientName,
  parseServerConfig,
  staticAddressProblem,
  type AddressPlan,
  type ServerConfig,
} from '../../config/server.js';
import { wgQuickConfig } from '../../config/wgquick.js';
import { advertisedTcp } from '../../config/tcp.js';
import { applyChange } from '../apply.js';
import { qrTerminal, writeQrPng } from '../qr.js';
import { chownLike, commentsAbove, lineStart, replaceFile } from '../serverfile.js';

export interface AddClientOptions {
  name: string;
  /** The server config to add to. */
  config: string;
  /** One address, or on a dual-stack server up to one of each family, comma-separated. */
  address?: string;
  /** Where to write the client config; default `<name>.yaml` (`<name>.conf` with wgQuick) in the current directory. */
  out?: string;
  /** host:port clients connect to; default the server config's `endpoint`, else its listen address if specific, else a placeholder. */
  endpoint?: string;
  /** A stock WireGuard client: write a wg-quick config instead of a tvpn one. */
  wgQuick?: boolean;
  /** Also make a preshared key, kept in `<name>.psk` beside the server config. */
  psk?: boolean;
}

export interface AddClientResult {
  /** The client's static addresses: one, or on a dual-stack server an IPv4 and an IPv6 one. */
  addresses: string[];
  clientFile: string;
  clientText: string;
  /** The server config as written. */
  config: ServerConfig;
  /** Things the user must know or do, one line each. */
  notes: string[];
}

/** Applies a parser to a command-line value, naming the option in its error. */
export function option<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw err instanceof Error ? new ConfigError(`${label}: ${err.message}`) : err;
  }
}

/** The lowest host address that is free and outside the pool, or null. */
function lowestStatic(plan: AddressPlan & { pool: IpRange }, taken: ReadonlyMap<string, string>): Ip | null {
  const { family } = plan.hosts.first;
  for (let value = plan.hosts.first.value; value <= plan.hosts.last.value; value++) {
    const ip = { family, value };
    if (rangeContains(plan.pool, ip)) value = plan.pool.last.value;
    else if (staticAddressProblem(ip, plan, taken) === null) return ip;
  }
  return null;
}

/**
 * Picks the new client's address of each of the server's families (--address's where it gives
 * one), and the pools as they are after any had to give its top address (null: none had to).
 */
function pickAddresses(config: ServerConfig, opts: AddClientOptions): { ips: Ip[]; fromPools: Ip[]; pools: string[] | null } {
  const plans = addressPlansOf(config);
  const taken = new Map(config.clients.flatMap((c) => [c.address, c.address6].flatMap((a) => (a === null ? [] : [[a, `client '${c.name}'`] as const]))));
  const given = opts.address === undefined ? [] : option('--address', () => opts.address!.split(',').map((a) => ipOf(a.trim())));
  if (given.length > plans.length || new Set(given.map((ip) => ip.family)).size < given.length) {
    throw new ConfigError(`--address: give one address${plans.length > 1 ? ', or one IPv4 and one IPv6 address separated by a comma' : ''}`);
  }
  const fromPools: Ip[] = [];
  const picked = plans.map((plan) => {
    const ip = given.find((g) => g.family === plan.server.family);
    const family = plan.server.family;
    if (ip !== undefined) {
      const problem = staticAddressProblem(ip, plan, taken);
      if (problem !== null) throw new ConfigError(`--address: ${problem}`);
      return { ip, pool: plan.pool };
    }
    const free = lowestStatic(plan, taken);
    if (free !== null) return { ip: free, pool: plan.pool };
    const { first, last } = plan.pool;
    if (first.value === last.value) {
      throw new ConfigError(`${opts.config}: no free IPv${family} address for a client in the subnet ${networkOf(plan.subnet.text)}; use a larger subnet`);
    }
    fromPools.push(last);
    return { ip: last, pool: { first, last: { ...last, value: last.value - 1n } } };
  });
  const stray = given.find((g) => !plans.some((p) => p.server.family === g.family));
  if (stray !== undefined) throw new ConfigError(`--address: the server has no IPv${stray.family} tunnel address (interface.address)`);
  return { ips: picked.map((p) => p.ip), fromPools, pools: fromPools.length > 0 ? picked.map((p) => formatRange(p.pool)) : null };
}

/** A server config client entry as written. */
type Entry = Record<string, string | string[] | boolean>;

/** One value, or a flow list of two (a dual-stack `pool`), as it goes in the file. */
const oneOrList = (items: string[]): string => (items.length === 1 ? items[0]! : `[${items.join(', ')}]`);

const POOL_NOTE = "dynamic addresses; narrowed by 'tvpn add-client' to make room for static ones";

/** The entry as a YAML node, its list of addresses in flow style: [10.8.0.2, fd00:8::2]. */
function entryNode(doc: Document, entry: Entry): YAMLMap {
  const node = doc.createNode(entry) as YAMLMap;
  for (const pair of node.items) if (isSeq(pair.value)) pair.value.flow = true;
  return node;
}

/** Through the Document API: keeps comments and structure, but re-spaces the file (comment columns, flow padding). */
function rerender(doc: Document, entry: Entry, pools: string[] | null): string {
  const root = doc.contents as YAMLMap;
  if (pools !== null) {
    const current = root.get('pool', true);
    const pool = doc.createNode(pools.length === 1 ? pools[0] : pools, { flow: true });
    if (isScalar(current) && pools.length === 1) current.value = pools[0]; // in place, keeping its comments
    else if (current !== undefined) root.set('pool', pool);
    else {
      const pair = doc.createPair('pool', pool);
      (pair.key as Scalar).commentBefore = ` ${POOL_NOTE}`;
      const at = root.items.findIndex((p) => isScalar(p.key) && p.key.value === 'clients');
      root.items.splice(at < 0 ? root.items.length : at, 0, pair);
    }
  }
  const existing = root.get('clients', true);
  const clients = isSeq(existing) ? existing : new YAMLSeq();
  if (!isSeq(existing)) root.set('clients', clients);
  clients.flow = false; // `clients: []` would otherwise put the entry on one line
  clients.items.push(entryNode(doc, entry));
  return doc.toString({ lineWidth: 0 });
}

/**
 * The server config text with the client appended (and the pool set if given). In the usual
 * layout, a block list of clients, the new text is spliced in at positions the Document API
 * gives, so every other byte (aligned comments included) stays as it was; other layouts
 * (no clients yet, flow style) are re-rendered through the Document API.
 */
function editServerConfig(text: string, entry: Entry, pools: string[] | null): string {
  const doc: Document = parseDocument(text);
  const root = doc.contents;
  if (!isMap(root)) throw new Error('server config is not a mapping'); // loadServerConfig has vetted it
  const clientsKey = root.items.find((p) => isScalar(p.key) && p.key.value === 'clients')?.key as Scalar | undefined;
  const clients = root.get('clients', true);
  const poolNode = root.get('pool', true);
  const last = isSeq(clients) ? (clients.items.at(-1) as Node | undefined) : undefined;
  const poolSpliceable = pools === null || poolNode === undefined || (isScalar(poolNode) && typeof poolNode.value === 'string' && pools.length === 1);
  if (root.flow || !isSeq(clients) || clients.flow || !clients.range || !last?.range || !clientsKey?.range || !poolSpliceable) {
    return rerender(doc, entry, pools);
  }
  const pool = pools === null ? null : oneOrList(pools);
  const edits: { at: number; end: number; text: string }[] = [];
  const at = clients.range[1];
  const indent = ' '.repeat(clients.range[0] - lineStart(text, clients.range[0]));
  const blankBetweenItems = text.slice(0, lineStart(text, last.range[0])).endsWith('\n\n');
  const list = new Document(new YAMLSeq());
  (list.contents as YAMLSeq).items.push(entryNode(list, entry));
  const item = list.toString().replace(/^(?=.)/gm, indent);
  edits.push({ at, end: at, text: `${at > 0 && text[at - 1] !== '\n' ? '\n' : ''}${blankBetweenItems ? '\n' : ''}${item}` });
  if (pool !== null && isScalar(poolNode) && poolNode.range) {
    edits.push({ at: poolNode.range[0], end: poolNode.range[1], text: pool });
  } else if (pool !== null) {
    // Above the comment lines that introduce `clients:`, which belong to it.
    const keyLine = lineStart(text, clientsKey.range[0]);
    const keyIndent = ' '.repeat(clientsKey.range[0] - keyLine);
    const above = commentsAbove(text, keyLine);
    edits.push({ at: above, end: above, text: `${keyIndent}# ${POOL_NOTE}\n${keyIndent}pool: ${pool}\n` });
  }
  // Apply from the end so earlier offsets stay valid.
  return edits.sort((a, b) => b.at - a.at).reduce((t, e) => t.slice(0, e.at) + e.text + t.slice(e.end), text);
}

function clientConfigText(opts: {
  name: string;
  serverFile: string;
  endpoint: string;
  placeholder: boolean;
  serverKey: string;
  presharedKey: string | null;
  privateKey: string;
  /** The server's TCP listener (issue 16): the client falls back to it when UDP is blocked. */
  tcp: { endpoint: string; tls: boolean } | null;
  /** The other servers of a fleet. */
  fleet?: { endpoint: string; public_key: string }[];
}): string {
  const psk = opts.presharedKey === null ? {} : { preshared_key: opts.presharedKey };
  const tcp = opts.tcp && { endpoint: opts.tcp.endpoint, ...(opts.tcp.tls && { tls: true }) };
  const server = { endpoint: opts.endpoint, public_key: opts.serverKey, ...psk, ...(tcp && { tcp }), ...(opts.fleet?.length && { fleet: opts.fleet }) };
  const doc = new Document({ server, private_key: opts.privateKey });
  doc.commentBefore = [
    ` tvpn client config for '${opts.name}', made by 'tvpn add-client' from ${opts.serverFile}.`,
    " It holds the client's private key: keep it secret (mode 0600). Check it with 'tvpn check -c FILE'.",
    ' Optional settings (see configs/client.yaml): interface, accept, routes, keepalive, log_level.',
  ].join('\n');
  if (opts.placeholder) {
    const server = doc.get('server', true);
    const endpoint = isMap(server) ? server.get('endpoint', true) : undefined;
    if (isScalar(endpoint)) endpoint.comment = " replace <server-host> with the server's DNS name or public IP address";
  }
  return doc.toString();
}

function writeNew(path: string, text: string): void {
  try {
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const fix = (err as NodeJS.ErrnoException).code === 'EEXIST' ? '; remove it or pass --out with another path' : '';
    throw new ConfigError(`cannot write ${path}: ${fsReason(err)}${fix}`);
  }
}

/** wg-quick and the WireGuard apps name the tunnel after the file, and accept only such names. */
const WG_TUNNEL_NAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

/**
 * `tvpn add-client NAME -c server.yaml`: makes the client a key pair and a static address,
 * appends its entry to the server config, and writes a ready client config.
 *
 * Address: --address if given (checked like any static address), else the lowest free host
 * address outside the pool. With no room outside the pool (the usual case with the default
 * pool, the rest of the subnet), the top address of the pool is taken and the pool shrunk by
 * one, writing `pool:` into the server config; a note says so.
 *
 * With wgQuick the entry is a stock one and the client config a wg-quick file carrying what
 * the server would push. With psk a preshared key goes to `<name>.psk` beside the server
 * config (referenced from the entry) and inline into the client config.
 *
 * The server config is edited in place (see editServerConfig) and re-validated before it is
 * replaced atomically. The client config holds the client's private key inline, so it is one
 * file to hand over; hence it is written with mode 0600, and never over an existing file.
 */
export function addClient(opts: AddClientOptions): AddClientResult {
  const name = option('client name', () => parseClientName(opts.name));
  const given = opts.endpoint === undefined ? undefined : option('--endpoint', () => parseHostPort(opts.endpoint!, { ipOnly: false }));
  const wgQuick = opts.wgQuick === true;
  const { text, mode } = readConfigFile(opts.config);
  const config = parseServerConfig(text, opts.config, mode);
  const endpoint = given ?? config.endpoint;
  if (config.clients.some((c) => c.name === name)) {
    throw new ConfigError(`${opts.config}: a client named '${name}' already exists; pick another name or remove the old entry first`);
  }
  const { ips, fromPools, pools } = pickAddresses(config, opts);
  const addresses = ips.map(ipText);
  const notes: string[] = [];
  if (pools !== null) {
    notes.push(`no free address outside the pool, so took ${fromPools.map(ipText).join(' and ')} from its top; the pool is now ${oneOrList(pools)}`);
  }

  const privateKey = generatePrivateKey();
  const presharedKey = opts.psk === true ? generatePresharedKey() : null;
  const pskFile = `${name}.psk`; // relative, so the server config stays movable with its key files
  const entry: Entry = {
    name,
    public_key: encodeKey(publicKeyOf(privateKey)),
    ...(presharedKey !== null && { preshared_key_file: pskFile }),
    address: addresses.length === 1 ? addresses[0]! : addresses,
    ...(wgQuick && { stock: true }),
  };
  const serverText = editServerConfig(text, entry, pools);

  // A server listening on a specific address is reachable there; on all addresses, only the user knows.
  const placeholder = endpoint === undefined && (config.listen.host === '0.0.0.0' || config.listen.host === '::');
  const advertised = endpoint ?? config.listen;
  const endpointText = placeholder ? `<server-host>:${config.listen.port}` : formatEndpoint({ ip: advertised.host, port: advertised.port });
  const clientFile = opts.out ?? `${name}.${wgQuick ? 'conf' : 'yaml'}`;
  if (placeholder) {
    const key = wgQuick ? 'Endpoint' : 'server.endpoint';
    notes.push(`set ${key} in ${clientFile} to the server's public address (or pass --endpoint HOST:PORT)`);
  }
  const tunnel = basename(clientFile).replace(/\.conf$/, '');
  if (wgQuick && !WG_TUNNEL_NAME.test(tunnel)) {
    const fix = "at most 15 letters, digits, '_=+.-' plus .conf";
    notes.push(`wg-quick and the WireGuard apps take the tunnel name from the file name; rename ${clientFile} to ${fix}`);
  }
  const clientText = wgQuick
    ? wgQuickConfig({ server: config, privateKey, addresses, presharedKey, endpoint: endpointText })
    : clientConfigText({
        name,
        serverFile: basename(opts.config),
        endpoint: endpointText,
        placeholder,
        serverKey: encodeKey(publicKeyOf(config.privateKey)),
        presharedKey: presharedKey === null ? null : encodeKey(presharedKey),
        privateKey: encodeKey(privateKey),
        // The TCP listener on the host clients reach over UDP, unless tcp.endpoint says where.
        tcp: advertisedTcp(config.tcp, placeholder ? '<server-host>' : advertised.host),
      });

  // Undone on failure: files for a client the server does not know are useless.
  const written: string[] = [];
  try {
    if (presharedKey !== null) {
      const path = join(dirname(opts.config), pskFile);
      writeKeyFile(path, presharedKey);
      written.push(path);
      const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        chownLike(fd, opts.config);
      } finally {
        closeSync(fd);
      }
    }
    const next = parseServerConfig(serverText, opts.config, mode); // never write a config tvpn would refuse (this reads the psk file)
    writeNew(clientFile, clientText);
    written.push(clientFile);
    replaceFile(opts.config, serverText, mode);
    return { addresses, clientFile, clientText, config: next, notes };
  } catch (err) {
    for (const path of written) unlinkSync(path);
    throw err;
  }
}

export function register(program: Command): void {
  program
    .command('add-client')
    .description('add a client to a server config: new key pair, static address, and a ready client config')
    .argument('<name>', 'the client\'s name (letters, digits, "_", ".", "@", "-")')
    .requiredOption('-c, --config <file>', 'the server config to add it to')
    .option('--address <ip[,ip6]>', 'static tunnel address, one of each family on a dual-stack server (default: the lowest free one outside the pool)')
    .option('--out <file>', 'where to write the client config (default: <name>.yaml, or <name>.conf with --wg-quick)')
    .option('--endpoint <host:port>', "the server's public address for the client config (default: the server config's endpoint)")
    .option('--wg-quick', 'a stock WireGuard client (official apps, wg-quick): write a wg-quick .conf')
    .option('--psk', 'also make a preshared key (<name>.psk beside the server config)')
    .option('--qr', 'with --wg-quick: also print the profile as a QR code for the WireGuard apps')
    .option('--qr-png <file>', 'with --wg-quick: also write the profile as a QR code PNG (mode 0600)')
    .option('--no-reload', 'only edit the file; do not make the running server reload it')
    .action(async (name: string, opts: Omit<AddClientOptions, 'name'> & { qr?: boolean; qrPng?: string; reload: boolean }) => {
      if ((opts.qr || opts.qrPng !== undefined) && !opts.wgQuick) {
        throw new ConfigError('--qr and --qr-png need --wg-quick: the WireGuard apps scan wg-quick profiles');
      }
      if (opts.qrPng !== undefined && existsSync(opts.qrPng)) throw new ConfigError(`--qr-png: ${opts.qrPng} already exists; remove it or pick another path`);
      const cfg = loadServerConfig(opts.config);
      if (cfg.fleet) {
        const serverKey = encodeKey(publicKeyOf(cfg.privateKey));
        const profile = (endpoint: string, presharedKey: string | null, privateKey: string, fleet: { endpoint: string; public_key: string }[]): string =>
          clientConfigText({
            name,
            serverFile: basename(opts.config),
            endpoint,
            placeholder: false,
            serverKey,
            presharedKey,
            privateKey,
            fleet,
            tcp: advertisedTcp(cfg.tcp, parseHostPort(endpoint, { ipOnly: false }).host),
          });
        const { lines, clientText } = await (await import('../fleet.js')).fleetAddClient({ ...cfg, fleet: cfg.fleet }, name, opts, writeNew, profile);
        process.stdout.write(lines.map((l) => `${l}\n`).join(''));
        return showQr(opts, clientText);
      }
      const result = addClient({ ...opts, name });
      const wrote = `wrote ${result.clientFile} (mode 0600: it holds the client's private key)`;
      process.stdout.write(`added client '${name}' (${result.addresses.join(', ')}) to ${opts.config}; ${wrote}\n`);
      for (const note of result.notes) process.stderr.write(`tvpn: note: ${note}\n`);
      await showQr(opts, result.clientText);
      await applyChange(result.config, opts.reload);
    });
}

/** --qr-png and --qr: the profile as a QR code for the WireGuard apps. */
async function showQr(opts: { qr?: boolean; qrPng?: string }, clientText: string): Promise<void> {
  if (opts.qrPng !== undefined) {
    await writeQrPng(opts.qrPng, clientText);
    process.stdout.write(`wrote ${opts.qrPng} (mode 0600: the QR code holds the private key too)\n`);
  }
  if (opts.qr) process.stdout.write(await qrTerminal(clientText));
}
