/**
 * One underlay LAN for tests with more than two hosts: a namespace holding a bridge, and a
 * namespace per host joined to it by a veth pair made directly inside the two namespaces
 * (nothing in the root namespace). Addresses are the caller's, from its own subnet.
 *
 *   const lan = await createLan('tvf', ['198.18.121.11']);   // addresses on the bridge itself
 *   const s1 = await lan.host('s1', '198.18.121.1');          // a namespace with eth0 on the bridge
 *   await lan.cleanup();   // kills their children by PID, deletes every namespace
 */
import { createNetns, deleteNetns, type Netns } from '../../src/lab/netns.js';

export interface Lan {
  /** The bridge's namespace; `addresses` are on the bridge itself (e.g. for etcd members). */
  bridge: Netns;
  host(name: string, address: string): Promise<Netns>;
  cleanup(): Promise<void>;
}

export async function createLan(prefix: string, addresses: string[], prefixLen = 24): Promise<Lan> {
  const bridge = await createNetns(prefix, '-lan');
  const hosts: Netns[] = [];
  const lan: Lan = {
    bridge,
    host: async (name, address) => {
      const ns = await createNetns(prefix, `-${name}`);
      hosts.push(ns);
      const port = `p-${name}`;
      await bridge.ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await bridge.ip(['-batch', '-'], { input: `link set ${port} master br0\nlink set ${port} up\n` });
      await ns.ip(['-batch', '-'], { input: `addr add ${address}/${prefixLen} dev eth0\nlink set eth0 up\n` });
      return ns;
    },
    cleanup: () => deleteNetns(...hosts, bridge),
  };
  try {
    const cmds = ['link add br0 type bridge', ...addresses.map((a) => `addr add ${a}/${prefixLen} dev br0`), 'link set br0 up'];
    await bridge.ip(['-batch', '-'], { input: cmds.join('\n') + '\n' });
    return lan;
  } catch (err) {
    await lan.cleanup();
    throw err;
  }
}
