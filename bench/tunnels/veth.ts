/** No tunnel: iperf3 straight over the veth, the ceiling every tunnel is measured against. */
import type { TunnelSystem } from './common.js';

export const veth: TunnelSystem = {
  name: 'veth',
  up: (pair) => Promise.resolve({ serverAddr: pair.a.addr, pids: null, stop: () => Promise.resolve() }),
};
