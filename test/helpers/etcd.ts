/**
 * A real etcd cluster for the fleet tests: Debian's etcd-server, one member per address, all
 * inside a namespace the test made (the addresses are on one of its interfaces), each with
 * its own data directory under a mkdtemp. Members serve clients on their address (for tvpn
 * servers in other namespaces of the test) and on a unix socket in their directory, which is
 * how the test process itself talks to them: no traffic leaves the test's namespaces.
 * Members are stopped by PID; cleanup() stops all and removes the directory, also after a failure.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '../../src/lab/netns.js';
import { Etcd } from '../../src/daemon/server/fleet/etcd.js';
import { until } from './tvpn.js';

export interface EtcdMember {
  name: string;
  address: string;
  /** http://address:2379, for processes in the test's namespaces. */
  endpoint: string;
  /** unix:///dir/client:1, for the test process. */
  local: string;
  child: ChildProcess | null;
  log: string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  endpoints: string[];
  local: string[];
  /** A client of the whole cluster over the unix sockets (closed by cleanup). */
  client: Etcd;
  /** Stops member i by PID (SIGKILL by default) and waits for its exit. */
  stop(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member i again on its data directory. */
  start(i: number): void;
  /** Waits until member i answers a linearizable read (it is up and has a leader). */
  ready(i: number): Promise<void>;
  cleanup(): Promise<void>;
}

const PEER_PORT = 2380;
const CLIENT_PORT = 2379;

export async function startEtcdCluster(ns: Netns, addresses: string[]): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tvf-etcd-'));
  const members: EtcdMember[] = addresses.map((address, i) => ({
    name: `m${i + 1}`,
    address,
    endpoint: `http://${address}:${CLIENT_PORT}`,
    local: `unix://${join(dir, `m${i + 1}`, 'client:1')}`,
    child: null,
    log: '',
  }));
  const initialCluster = members.map((m) => `${m.name}=http://${m.address}:${PEER_PORT}`).join(',');
  const start = (i: number): void => {
    const m = members[i]!;
    const home = join(dir, m.name);
    mkdirSync(home, { recursive: true });
    rmSync(join(home, 'client:1'), { force: true }); // left by a killed member: would make the listen fail
    // etcd puts a unix listener named host:port in its working directory.
    const child = ns.spawn(
      'etcd',
      [
        '--name', m.name,
        '--data-dir', join(home, 'data'),
        '--listen-peer-urls', `http://${m.address}:${PEER_PORT}`,
        '--initial-advertise-peer-urls', `http://${m.address}:${PEER_PORT}`,
        '--listen-client-urls', `http://${m.address}:${CLIENT_PORT},unix://client:1`,
        '--advertise-client-urls', m.endpoint,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `tvf-${process.pid}`,
        '--heartbeat-interval', '100',
        '--election-timeout', '1000',
      ],
      { cwd: home },
    );
    child.stdout?.on('data', (d: Buffer) => (m.log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (m.log += d.toString()));
    m.child = child;
  };
  const stop = async (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const child = members[i]!.child;
    members[i]!.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  };
  const local = members.map((m) => m.local);
  const client = new Etcd({ endpoints: local, tls: null });
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.endpoint),
    local,
    client,
    stop,
    start,
    ready: async (i) => {
      const one = new Etcd({ endpoints: [local[i]!], tls: null, callTimeoutMs: 500 });
      try {
        await until(`etcd member ${members[i]!.name}`, async () => (await one.list('/', true)).revision > 0, 20_000);
      } finally {
        one.close();
      }
    },
    cleanup: async () => {
      client.close();
      for (let i = 0; i < members.length; i++) await stop(i, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    members.forEach((_, i) => start(i));
    await until('the etcd cluster to have a leader', async () => (await client.list('/', true)).revision > 0, 30_000);
    return cluster;
  } catch (err) {
    await cluster.cleanup();
    throw new Error(`${String(err)}\n${members.map((m) => `${m.name}: ${m.log.split('\n').slice(-5).join('\n')}`).join('\n')}`);
  }
}
