/**
 * The fleet's etcd over TLS with client certificates, as a deployment runs it: a one-member
 * etcd with --client-cert-auth in a namespace, certificates made by openssl, and the tvpn CLI
 * in that namespace adding and listing clients through fleet.etcd.{ca,cert,key}_file. Without
 * a client certificate etcd refuses it, and tvpn says so in one line.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { generatePrivateKey, writeKeyFile } from '../../src/config/keys.js';
import { createNetns, deleteNetns, type Netns } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, startProc, stopProc, until, type Proc } from '../helpers/tvpn.js';

const ETCD = '198.18.122.11';

describeRoot('fleet registry on etcd with TLS client certificates', () => {
  let ns: Netns;
  let dir: string;
  let etcd: Proc;
  const tvpn = (...args: string[]) =>
    ns.exec(process.execPath, [BIN, ...args]).then(
      (r) => ({ ok: true, out: r.stdout }),
      (e: Error) => ({ ok: false, out: e.message }),
    );
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const config = (name: string, tls: string): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      `interface: { address: 10.120.5.1/24 }\nprivate_key_file: s.key\nstate_dir: state\n` +
        `fleet: { name: vpn1, endpoint: '198.18.122.1:51820', etcd: { endpoints: ['https://${ETCD}:2379']${tls} } }\n`,
    );
    return path;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvf-tls-'));
    // A CA, etcd's certificate for its address, and a client certificate for the server vpn1.
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tvf test CA');
    for (const [name, ext] of [['etcd', `subjectAltName=IP:${ETCD}`], ['vpn1', 'extendedKeyUsage=clientAuth']] as const) {
      openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
    }
    execFileSync('chmod', ['600', join(dir, 'vpn1-key.pem')]);
    writeKeyFile(join(dir, 's.key'), generatePrivateKey());
    ns = await createNetns('tvfe', '-tls');
    await ns.ip(['addr', 'add', `${ETCD}/32`, 'dev', 'lo']);
    const etcdArgs = [
      '--name', 'm1', '--data-dir', join(dir, 'data'),
      '--listen-peer-urls', `http://${ETCD}:2380`, '--initial-advertise-peer-urls', `http://${ETCD}:2380`,
      '--initial-cluster', `m1=http://${ETCD}:2380`,
      '--listen-client-urls', `https://${ETCD}:2379`, '--advertise-client-urls', `https://${ETCD}:2379`,
      '--cert-file', join(dir, 'etcd.pem'), '--key-file', join(dir, 'etcd-key.pem'),
      '--client-cert-auth', '--trusted-ca-file', join(dir, 'ca.pem'),
    ];
    etcd = startProc(ns, 'etcd', etcdArgs);
    await until('etcd serving TLS', () => etcd.log().includes('ready to serve client requests'), 30_000);
  }, 60_000);

  afterAll(async () => {
    if (etcd) await stopProc(etcd, 'SIGKILL');
    if (ns) await deleteNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  test('with the CA and a client certificate: add-client and list-clients work on the registry', async () => {
    const yaml = config('tls.yaml', ", ca_file: ca.pem, cert_file: vpn1.pem, key_file: vpn1-key.pem");
    const added = await tvpn('add-client', 'laptop', '-c', yaml, '--out', join(dir, 'laptop.yaml'));
    expect(added).toEqual({ ok: true, out: expect.stringContaining("added client 'laptop' to the fleet (etcd prefix /tvpn/)") });
    const listed = await tvpn('list-clients', '-c', yaml, '--json');
    expect(JSON.parse(listed.out).clients.map((c: { name: string }) => c.name)).toEqual(['laptop']);
  });

  test('without a client certificate etcd refuses the connection, and tvpn says so in one line', async () => {
    const yaml = config('nocert.yaml', ', ca_file: ca.pem');
    const r = await tvpn('list-clients', '-c', yaml);
    expect(r.ok).toBe(false);
    const line = r.out.split('\n').find((l) => l.startsWith('tvpn: '));
    expect(line).toMatch(/^tvpn: fleet \(etcd https:\/\/198\.18\.122\.11:2379\): etcd has no quorum or cannot be reached \(https:\/\/198\.18\.122\.11:2379: .*bad certificate.*\); check fleet\.etcd's ca_file, cert_file and key_file$/);
    expect(r.out.trimEnd().endsWith(line!)).toBe(true); // the last line: nothing follows it
  }, 30_000);
});
