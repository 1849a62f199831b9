/**
 * The fleet's etcd client against a real 3-member cluster (in a namespace of its own): the
 * compare-and-set that leases addresses, a watch that survives the loss of the member it
 * is connected to without losing or repeating an event, compaction reported, lease keep-alive
 * moving to another member, and calls refused with StoreUnavailable while quorum is lost.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Etcd } from '../../src/daemon/server/fleet/etcd.js';
import { StoreUnavailable, type StoreEvent } from '../../src/daemon/server/fleet/store.js';
import { FleetLeases } from '../../src/daemon/server/fleet/addresses.js';
import { Layout } from '../../src/daemon/server/fleet/layout.js';
import { Mirror, type Change } from '../../src/daemon/server/fleet/mirror.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/config/keys.js';
import { Logger } from '../../src/daemon/log.js';
import { createNetns, deleteNetns, type Netns } from '../../src/lab/netns.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { describeRoot } from '../helpers/root.js';
import { until } from '../helpers/tvpn.js';
import { sleep } from '../helpers/wait.js';

const ADDRESSES = ['198.18.120.11', '198.18.120.12', '198.18.120.13'];

describeRoot('fleet store on a real etcd cluster', () => {
  let ns: Netns;
  let cluster: EtcdCluster;
  /** A client with member 1 first, so killing member 1 breaks its streams. */
  let etcd: Etcd;

  beforeAll(async () => {
    ns = await createNetns('tvfe');
    await ns.ip(['-batch', '-'], { input: ADDRESSES.map((a) => `addr add ${a}/32 dev lo`).join('\n') + '\n' });
    cluster = await startEtcdCluster(ns, ADDRESSES);
    etcd = new Etcd({ endpoints: cluster.local, tls: null });
  }, 60_000);

  afterAll(async () => {
    etcd?.close();
    await cluster?.cleanup();
    if (ns) await deleteNetns(ns);
  });

  test('create-if-absent: of 20 concurrent claims of one key exactly one wins', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => etcd.createIfAbsent([{ key: '/cas/a', value: `c${i}` }, { key: `/cas/by/c${i}`, value: 'a' }])));
    const winners = results.flatMap((r, i) => (r === true ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const r of results) if (r !== true) expect(r).toEqual([expect.objectContaining({ key: '/cas/a', value: `c${winners[0]}` })]);
    expect((await etcd.list('/cas/by/')).kvs.map((kv) => kv.key)).toEqual([`/cas/by/c${winners[0]}`]);
  });

  test('50 simulated clients connecting at once across 3 servers: no address twice, in etcd and in every server', async () => {
    const layout = new Layout('/sim/');
    const log = new Logger('error', () => undefined);
    // Each server with its own client of the cluster, starting at another member.
    const servers = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const store = new Etcd({ endpoints: [...cluster.local.slice(i), ...cluster.local.slice(0, i)], tls: null });
        const mirror = new Mirror(store, layout.prefix, () => undefined, () => undefined);
        await mirror.start();
        const leases = new FleetLeases({ store, layout, mirror, ranges: [{ first: '10.120.1.10', last: '10.120.1.250' }], onSettled: () => undefined, log });
        return { store, mirror, leases };
      }),
    );
    try {
      const keys = Array.from({ length: 50 }, () => encodeKey(publicKeyOf(generatePrivateKey())));
      keys.forEach((k, i) => servers[i % 3]!.leases.acquire(k, `sim${i}`, Date.now(), 4));
      await until('every client leased', () => keys.every((k, i) => servers[i % 3]!.leases.leaseOf(k, 4) !== null), 20_000);
      const given = keys.map((k, i) => servers[i % 3]!.leases.leaseOf(k, 4)!);
      expect(new Set(given).size).toBe(50);
      const inEtcd = (await etcd.list(layout.leases())).kvs;
      expect(inEtcd).toHaveLength(50);
      expect(new Map(inEtcd.map((kv) => [JSON.parse(kv.value).key as string, kv.key.slice(layout.leases().length)]))).toEqual(new Map(keys.map((k, i) => [k, given[i]!])));
      // Every server's mirror comes to the same table through its watch.
      await until('the mirrors to agree', () => servers.every((s) => keys.every((k, i) => s.leases.leaseOf(k, 4) === given[i])), 5000);
    } finally {
      for (const s of servers) {
        s.leases.stop();
        s.mirror.stop();
        s.store.close();
      }
    }
  });

  test('a watch resumes on another member when its own is killed: every event once, in order', async () => {
    const { revision } = await etcd.list('/w/');
    const seen: StoreEvent[] = [];
    const w = etcd.watch('/w/', revision + 1, { events: (e) => seen.push(...e), compacted: () => seen.push({ type: 'delete', key: 'COMPACTED', value: '', modRevision: 0 }) });
    for (let i = 0; i < 5; i++) await etcd.put({ key: `/w/${i}`, value: `${i}` });
    await until('the first events', () => seen.length === 5);
    await cluster.stop(0);
    // Written through the other members while the watch reconnects.
    for (let i = 5; i < 10; i++) await cluster.client.put({ key: `/w/${i}`, value: `${i}` });
    await until('the events after the reconnect', () => seen.length >= 10, 15_000);
    await sleep(300);
    expect(seen.map((e) => e.key)).toEqual(Array.from({ length: 10 }, (_, i) => `/w/${i}`));
    const revisions = seen.map((e) => e.modRevision);
    expect([...revisions].sort((a, b) => a - b)).toEqual(revisions);
    w.cancel();
    cluster.start(0);
    await cluster.ready(0);
  }, 60_000);

  test('a mirror whose member was down while the history was compacted lists again and reports the difference', async () => {
    const only1 = new Etcd({ endpoints: [cluster.local[0]!], tls: null });
    await cluster.client.put({ key: '/m/kept', value: '1' });
    await cluster.client.put({ key: '/m/deleted', value: '1' });
    const changes: Change[] = [];
    const notes: string[] = [];
    const mirror = new Mirror(only1, '/m/', (c) => changes.push(...c), (n) => notes.push(n));
    try {
      await mirror.start();
      changes.length = 0; // the first list reports what it found
      await cluster.stop(0);
      await cluster.client.put({ key: '/m/kept', value: '2' });
      await cluster.client.delete(['/m/deleted']);
      await cluster.client.put({ key: '/m/new', value: '3' });
      await cluster.client.compact((await cluster.client.list('/m/')).revision);
      cluster.start(0);
      await until('the re-list', () => mirror.values.get('/m/new') === '3', 20_000);
      expect(notes[0]).toMatch(/^etcd history compacted past revision \d+: listing \/m\/ again$/);
      expect(Object.fromEntries(mirror.values)).toEqual({ '/m/kept': '2', '/m/new': '3' });
      expect(changes).toEqual([{ key: '/m/kept', value: '2' }, { key: '/m/new', value: '3' }, { key: '/m/deleted', value: null }]);
      await cluster.client.put({ key: '/m/after', value: '4' });
      await until('the new watch', () => mirror.values.has('/m/after'), 5000);
    } finally {
      mirror.stop();
      only1.close();
      if (cluster.members[0]!.child === null) cluster.start(0);
      await cluster.ready(0);
    }
  }, 60_000);

  test('a watch from a compacted revision says so (the caller lists again)', async () => {
    await etcd.put({ key: '/c/a', value: '1' });
    const { revision } = await etcd.list('/c/');
    await etcd.put({ key: '/c/a', value: '2' });
    await etcd.compact(revision + 1);
    let compacted = false;
    etcd.watch('/c/', revision, { events: () => undefined, compacted: () => (compacted = true) });
    await until('compaction reported', () => compacted, 5000);
  });

  test('lease keep-alive moves to another member; a lease not kept alive expires with its keys', async () => {
    const kept = await etcd.grantLease(2);
    const dropped = await etcd.grantLease(2);
    let lost = '';
    const k = etcd.keepAlive(kept, 2, (why) => (lost = why));
    await etcd.put({ key: '/l/kept', value: 'x', lease: kept });
    await etcd.put({ key: '/l/dropped', value: 'x', lease: dropped });
    await sleep(1000);
    await cluster.stop(0);
    await sleep(4000);
    expect(lost).toBe('');
    expect((await cluster.client.list('/l/')).kvs.map((kv) => kv.key)).toEqual(['/l/kept']);
    k.stop();
    await until('the kept key to expire once no longer kept', async () => (await cluster.client.list('/l/')).kvs.length === 0, 6000);
    cluster.start(0);
    await cluster.ready(0);
  }, 30_000);

  test('without quorum calls fail with StoreUnavailable; with quorum back they work again', async () => {
    await cluster.stop(1);
    await etcd.put({ key: '/q/one-down', value: 'x' }); // one member lost: no effect
    await cluster.stop(2);
    const t0 = Date.now();
    await expect(etcd.put({ key: '/q/two-down', value: 'x' })).rejects.toBeInstanceOf(StoreUnavailable);
    expect(Date.now() - t0).toBeLessThan(8000);
    cluster.start(1);
    cluster.start(2);
    await until('quorum back', async () => (await etcd.put({ key: '/q/back', value: 'x' }), true), 20_000);
    // A write that timed out without quorum has no known outcome in etcd: the leader may still
    // commit it once quorum is back, so /q/two-down may or may not be there.
    expect((await etcd.list('/q/')).kvs.map((kv) => kv.key).filter((k) => k !== '/q/two-down')).toEqual(['/q/back', '/q/one-down']);
  }, 60_000);
});
