/**
 * wireguard-go (Debian's userspace implementation) on both ends, configured with wg: the
 * system's package (installed by apt with the other tools) and Debian 13's, fetched into a
 * cache by bench/debian.ts. Its UAPI sockets live in /var/run/wireguard, shared by every
 * namespace, so interface names are unique per start; a socket left by a killed run is removed
 * at exit.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Netns } from '../../src/lab/netns.js';
import { startProc, until, type Proc } from '../../test/helpers/tvpn.js';
import { errorMessage } from '../../src/errors.js';
import { debianPackage, osRelease } from '../debian.js';
import { daemonTunnel, logsOf, TUNNEL_MTU, tunnelAddr, untilPing, type SystemInfo, type TunnelSystem } from './common.js';

const PORT = '51820';
const started = new Set<string>();
process.on('exit', () => {
  for (const ifname of started) rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
});

async function startWireguardGo(ns: Netns, binary: string): Promise<{ proc: Proc; ifname: string }> {
  const ifname = `wgb${randomBytes(4).toString('hex')}`;
  started.add(ifname);
  // Default log level (errors only): debug logging costs throughput.
  const proc = startProc(ns, binary, [ifname], { WG_PROCESS_FOREGROUND: '1', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' });
  await until(`${ifname} UAPI`, async () => (await ns.exec('wg', ['show', ifname])).stdout.includes(ifname), 10_000).catch((err: Error) =>
    Promise.reject(new Error(`${err.message}\n${proc.log()}`)),
  );
  return { proc, ifname };
}

/** One end: its key, listen port, the other end as its only peer, address and MTU. */
async function configure(ns: Netns, ifname: string, keyFile: string, peer: { key: string; endpoint: string; allowed: string }, addr: string): Promise<void> {
  await ns.exec('wg', ['set', ifname, 'private-key', keyFile, 'listen-port', PORT, 'peer', peer.key, 'allowed-ips', peer.allowed, 'endpoint', peer.endpoint]);
  await ns.ip(['addr', 'add', `${addr}/24`, 'dev', ifname]);
  await ns.ip(['link', 'set', ifname, 'mtu', String(TUNNEL_MTU), 'up']);
}

/** Where a build is and which Debian package (release, version) it came from. */
interface Build {
  binary: string;
  debian: string;
  packageVersion: string;
}

/**
 * The row name carries the package's upstream version. The binary's own --version can lag it:
 * upstream did not bump version.go for its 0.0.20231211 snapshot, which says 0.0.20230223.
 */
function describe(b: Build): SystemInfo {
  let out: string;
  try {
    out = execFileSync(b.binary, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // A build for a newer Debian may want a newer libc than this system has; the loader's message names the version.
    throw new Error(`${b.binary} does not run here: ${String((err as { stderr?: unknown }).stderr ?? '').trim() || errorMessage(err)}`);
  }
  const reported = /wireguard-go v?(\S+)/.exec(out)?.[1] ?? '?';
  const upstream = b.packageVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
  return { label: `wireguard-go ${upstream} (Debian ${b.debian})`, version: `wireguard-go ${upstream} (Debian ${b.debian}${reported === upstream ? '' : `; its --version says ${reported}`})` };
}

function wireguardGo(name: string, locate: (say: (line: string) => void) => Promise<Build>): TunnelSystem {
  let binary: string | undefined;
  return {
    name,
    async prepare(say) {
      const build = await locate(say);
      binary = build.binary;
      return describe(build);
    },
    async up(pair, dir) {
      if (!binary) throw new Error(`${name}: prepare() first`);
      const [serverKey, clientKey] = [generatePrivateKey(), generatePrivateKey()];
      writeKeyFile(join(dir, 'server.key'), serverKey);
      writeKeyFile(join(dir, 'client.key'), clientKey);
      const [serverAddr, clientAddr] = [tunnelAddr(pair, 1), tunnelAddr(pair, 2)];
      const [server, client] = await Promise.all([startWireguardGo(pair.a, binary), startWireguardGo(pair.b, binary)]);
      await configure(pair.a, server.ifname, join(dir, 'server.key'), { key: encodeKey(publicKeyOf(clientKey)), endpoint: `${pair.b.addr}:${PORT}`, allowed: `${clientAddr}/32` }, serverAddr);
      await configure(pair.b, client.ifname, join(dir, 'client.key'), { key: encodeKey(publicKeyOf(serverKey)), endpoint: `${pair.a.addr}:${PORT}`, allowed: `${serverAddr}/32` }, clientAddr);
      await untilPing(pair, serverAddr, () => logsOf(server.proc, client.proc));
      return daemonTunnel(serverAddr, server.proc, client.proc);
    },
  };
}

/** The system's own package (Debian 12's on this machine), from PATH. */
export const wireguardGoSystem = wireguardGo('wireguard-go', () =>
  Promise.resolve({
    binary: 'wireguard-go',
    debian: osRelease().VERSION_ID ?? '?',
    packageVersion: execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'wireguard-go'], { encoding: 'utf8', timeout: 5000 }),
  }),
);

/**
 * Debian 13's, GSO/GRO included. Go, but linked against libc (it needs GLIBC_2.34 at most, so
 * Debian 12's 2.36 runs it); describe() says what is missing where a libc is too old.
 */
export const wireguardGoTrixie = wireguardGo('wireguard-go-trixie', async (say) => {
  const { root, version } = await debianPackage('wireguard-go', 'trixie', say);
  return { binary: join(root, 'usr', 'bin', 'wireguard-go'), debian: '13', packageVersion: version };
});
