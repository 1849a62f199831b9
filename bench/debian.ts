/**
 * A package from another Debian suite, unpacked into a cache without touching the system's
 * packages: apt-get runs with its own state, cache, sources and preferences (the system's
 * apt.conf.d, a proxy say, still applies) against the archive and keyring that the system's
 * own apt sources name, so this repository names no host. Later runs reuse the cache.
 *
 *   /var/cache/tvpn-bench/apt-SUITE/           apt's private state and the downloaded .deb
 *   /var/cache/tvpn-bench/PACKAGE-SUITE/       the package's files (dpkg-deb -x)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './measure.js';

const CACHE = '/var/cache/tvpn-bench';
const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** /etc/os-release as key → value (VERSION_ID "12", VERSION_CODENAME "bookworm"). */
export function osRelease(): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of readFileSync('/etc/os-release', 'utf8').matchAll(/^(\w+)=("?)(.*)\2$/gm)) fields[m[1]!] = m[3]!;
  return fields;
}

interface Archive {
  uri: string;
  keyring: string;
}

/** The archive behind the system's own suite: deb822 sources.list.d/*.sources first, then a one-line sources.list. */
function systemArchive(): Archive {
  const codename = osRelease().VERSION_CODENAME;
  const dir = '/etc/apt/sources.list.d';
  const keyring = (signedBy: string | undefined): string => (signedBy?.startsWith('/') ? signedBy : DEBIAN_KEYRING); // an inline key block: Debian's keyring
  for (const file of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sources')) : []) {
    for (const stanza of readFileSync(join(dir, file), 'utf8').split(/\n\s*\n/)) {
      const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*)$`, 'mi').exec(stanza)?.[1]?.trim();
      const words = (name: string): string[] => field(name)?.split(/\s+/) ?? [];
      if (field('Enabled') === 'no' || !words('Types').includes('deb') || !words('Suites').includes(codename ?? '')) continue;
      const uri = words('URIs')[0];
      if (uri) return { uri, keyring: keyring(field('Signed-By')) };
    }
  }
  const list = existsSync('/etc/apt/sources.list') ? readFileSync('/etc/apt/sources.list', 'utf8') : '';
  for (const m of list.matchAll(/^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/gm)) {
    if (m[3] === codename) return { uri: m[2]!, keyring: keyring(/signed-by=(\S+)/.exec(m[1] ?? '')?.[1]) };
  }
  throw new Error(`no apt source for this system's suite ${codename ?? '?'} in ${dir}/*.sources or /etc/apt/sources.list`);
}

/** `-o` options that give apt-get a world of its own under `dir` (lists, cache, empty dpkg status, no pins). */
function privateApt(dir: string): string[] {
  return [
    `Dir::State=${dir}/state`,
    `Dir::State::status=${dir}/state/status`,
    `Dir::Cache=${dir}/cache`,
    `Dir::Etc::SourceList=${dir}/sources.list`,
    'Dir::Etc::SourceParts=-',
    `Dir::Etc::Preferences=${dir}/preferences`,
    'Dir::Etc::PreferencesParts=-',
    'Acquire::Languages=none',
  ].flatMap((o) => ['-o', o]);
}

/**
 * `pkg` from `suite` of the system's Debian archive, unpacked; downloaded only when the cache
 * lacks it. Returns where its files are and its Debian version (e.g. 0.0.20231211-1+b9).
 */
export async function debianPackage(pkg: string, suite: string, say: (line: string) => void): Promise<{ root: string; version: string }> {
  const apt = join(CACHE, `apt-${suite}`);
  const root = join(CACHE, `${pkg}-${suite}`);
  const debIn = (): string | undefined => readdirSync(apt).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  let deb = existsSync(root) && existsSync(apt) ? debIn() : undefined;
  if (!deb) {
    const { uri, keyring } = systemArchive();
    say(`fetching ${pkg} from Debian ${suite} (${uri}) into ${root}`);
    for (const sub of ['state/lists/partial', 'cache/archives/partial']) mkdirSync(join(apt, sub), { recursive: true });
    writeFileSync(join(apt, 'state', 'status'), '');
    writeFileSync(join(apt, 'sources.list'), `deb [signed-by=${keyring}] ${uri} ${suite} main\n`);
    const opts = privateApt(apt);
    await sh('apt-get', [...opts, '-qq', 'update'], { timeoutMs: 300_000 });
    for (const old of readdirSync(apt).filter((f) => f.endsWith('.deb'))) rmSync(join(apt, old));
    await sh('apt-get', [...opts, '-qq', 'download', pkg], { timeoutMs: 300_000, cwd: apt });
    deb = debIn();
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${apt}`);
    // Unpacked beside the cache, then renamed: an interrupted run leaves nothing that looks complete.
    rmSync(`${root}.new`, { recursive: true, force: true });
    await sh('dpkg-deb', ['-x', join(apt, deb), `${root}.new`], { timeoutMs: 60_000 });
    rmSync(root, { recursive: true, force: true });
    renameSync(`${root}.new`, root);
  }
  const version = (await sh('dpkg-deb', ['-f', join(apt, deb), 'Version'], { timeoutMs: 10_000 })).trim();
  return { root, version };
}
