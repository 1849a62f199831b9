/**
 * The systemd units' essentials without systemd (packaging/systemd/): the server as an
 * unprivileged uid holding CAP_NET_ADMIN alone, ambient so that ip inherits it, under
 * no_new_privs (User=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=), and
 * the client as a root limited to CAP_NET_ADMIN (tvpn-client@.service). The server logs as
 * under journald (JOURNAL_STREAM), and root edits its config with add-client meanwhile.
 *
 *   server ns (a) ── veth 198.18.83.0/24 ── client ns (b)
 *
 * Needs root, setpriv and the compiled CLI (npx tsc -p tsconfig.build.json).
 */
import { chownSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Status } from '../../src/daemon/status.js';
import { createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { tempCopyForAnyUser } from '../helpers/copy.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, pings, startProc, stopProc, until, type Proc } from '../helpers/tvpn.js';

/** An otherwise unused uid, standing in for the units' system user tvpn. */
const UID = 64123;
const AS_UID = [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--no-new-privs'];
const NET_ADMIN_ONLY = ['--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin'];
/** Command and arguments running argv with JOURNAL_STREAM naming its stderr, as systemd sets it for a unit logging to the journal. */
const underJournald = (argv: string[]): [string, string[]] => ['sh', ['-c', 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"', 'sh', ...argv]];

describeRoot('tvpn as a hardened service: unprivileged server, root client limited to CAP_NET_ADMIN', () => {
  const keys = { server: generatePrivateKey(), client: generatePrivateKey() };
  let dir: string;
  let tvpn: string;
  let pair: NetnsPair;
  let server: Proc;
  let client: Proc;

  beforeAll(async () => {
    const made = tempCopyForAnyUser('tvpn-service-');
    dir = made.dir;
    tvpn = join(made.copy, 'bin/tvpn');
    // The README's layout: /etc/tvpn is root's, the server's config and key its user's.
    const etc = join(dir, 'etc');
    mkdirSync(etc, { mode: 0o755 });
    writeKeyFile(join(etc, 'server.key'), keys.server);
    writeKeyFile(join(etc, 'root.key'), keys.server);
    const serverYaml = (key: string, state: string): string =>
      `interface: { name: tun0, address: 10.8.0.1/24 }\nlisten: 0.0.0.0:51820\nprivate_key_file: ${key}\npool: 10.8.0.10-10.8.0.20\n` +
      `state_dir: ${join(dir, state)}\nclients:\n  - { name: one, public_key: ${encodeKey(publicKeyOf(keys.client))} }\n`;
    const configs = [['server.yaml', 'server.key', 'state'], ['root-key.yaml', 'root.key', 'state'], ['root-state.yaml', 'server.key', 'root-state']] as const;
    for (const [file, key, state] of configs) {
      writeFileSync(join(etc, file), serverYaml(key, state), { mode: 0o600 });
      chownSync(join(etc, file), UID, UID);
    }
    chownSync(join(etc, 'server.key'), UID, UID);
    // StateDirectory=tvpn: created for the service's user, mode 0700.
    mkdirSync(join(dir, 'state'), { mode: 0o700 });
    chownSync(join(dir, 'state'), UID, UID);
    writeKeyFile(join(dir, 'client.key'), keys.client);
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: 198.18.83.1:51820, public_key: ${encodeKey(publicKeyOf(keys.server))} }\nprivate_key_file: client.key\n`,
    );
    pair = await createNetnsPair({ prefix: 'tvsvc', index: 83, ipv6: false });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([client, server].filter(Boolean).map((d) => stopProc(d)));
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The server as UID with `caps`, to its exit: code and output. */
  const failedStart = async (caps: string[], config: string): Promise<[number | null, string]> => {
    const p = startProc(pair.a, ...underJournald(['setpriv', ...AS_UID, ...caps, process.execPath, tvpn, 'server', '-c', join(dir, 'etc', config)]));
    const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
    return [code, p.log()];
  };

  test('what the uid lacks is said in one line: CAP_NET_ADMIN, a key root owns, a state_dir it cannot write', async () => {
    expect(await failedStart(['--inh-caps=-all', '--bounding-set=-all'], 'server.yaml')).toEqual([
      1,
      '<3>tvpn: cannot create tun0: operation not permitted (need root or CAP_NET_ADMIN)\n', // an error to journald
    ]);
    const [keyCode, keyLog] = await failedStart(NET_ADMIN_ONLY, 'root-key.yaml');
    expect([keyCode, keyLog]).toEqual([2, expect.stringMatching(/^<3>tvpn: .*root\.key: permission denied; tvpn runs as uid 64123: make the key that user's \(chown\)\n$/)]);
    const [stateCode, stateLog] = await failedStart(NET_ADMIN_ONLY, 'root-state.yaml');
    expect([stateCode, stateLog]).toEqual([1, expect.stringMatching(/^<3>tvpn: state_dir \S+root-state: permission denied for user uid 64123; make it that user's/)]);
  });

  test('the server runs as its uid, the client connects, ping works both ways, root\'s show answers', async () => {
    server = startProc(pair.a, ...underJournald(['setpriv', ...AS_UID, ...NET_ADMIN_ONLY, process.execPath, tvpn, 'server', '-c', join(dir, 'etc/server.yaml')]));
    await until('the server to listen', () => server.log().includes('listening on'));
    expect(server.log()).toMatch(/^<6>server tun0 10\.8\.0\.1\/24 listening on 0\.0\.0\.0:51820, /);
    client = startProc(pair.b, 'setpriv', ['--no-new-privs', '--inh-caps=-all', '--bounding-set=-all,+net_admin', process.execPath, BIN, 'client', '-c', join(dir, 'client.yaml')]);
    await until('the client to apply its config', () => client.log().includes('config 1 applied'));

    expect(await pings(pair.b, '10.8.0.1')).toBe(true);
    expect(await pings(pair.a, '10.8.0.10')).toBe(true);
    const status = JSON.parse((await pair.a.exec(process.execPath, [BIN, 'show', '--json'])).stdout) as Status;
    expect(status.peers[0]).toMatchObject({ name: 'one', address: '10.8.0.10', control: true });
    // Another user with CAP_NET_ADMIN is let in by the unprivileged daemon, which may not stat
    // that user's /proc/PID/ns/user (no ptrace access) and compares the uid maps instead.
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const netAdmin = await pair.a.exec('setpriv', [...asNobody, '--inh-caps=+net_admin', '--ambient-caps=+net_admin', process.execPath, tvpn, 'show', '--json']);
    expect((JSON.parse(netAdmin.stdout) as Status).peers[0]!.name).toBe('one');
    const plain = await pair.a.exec('setpriv', [...asNobody, process.execPath, tvpn, 'show']).then(
      () => 'answered',
      (err: Error) => err.message,
    );
    expect(plain).toContain(`permission denied: tvpn show needs root, the daemon's user (uid ${UID}) or CAP_NET_ADMIN`);

    const leases = statSync(join(dir, 'state/leases.json'));
    expect([leases.uid, leases.mode & 0o777]).toEqual([UID, 0o600]);
  }, 40_000);

  test('a client added by root (with a preshared key) reaches the server on SIGHUP; SIGTERM undoes everything and exits 0', async () => {
    await pair.a.exec(process.execPath, [BIN, 'add-client', 'two', '-c', join(dir, 'etc/server.yaml'), '--psk', '--out', join(dir, 'two.yaml')]);
    server.child.kill('SIGHUP');
    await until('the reload', () => server.log().match(/reload.*/)?.[0]);
    expect(server.log()).toContain('client two added');
    expect(await pings(pair.b, '10.8.0.1', 1)).toBe(true);
    expect(await stopProc(server)).toBe(0);
    expect(server.log()).toContain('server stopped');
    expect(server.log().split('\n').filter((l) => !/^<[67]>/.test(l))).toEqual(['']); // nothing above info, all prefixed
    await expect(pair.a.ip(['link', 'show', 'tun0'])).rejects.toThrow();
  }, 30_000);
});
