/** The I/O layer: TUN devices, UDP sockets, packet batches, link configuration. */
export { type BatchRange, createBatch, DEFAULT_BATCH_SLOTS, DEFAULT_SLOT_SIZE, type PacketBatch } from './batch.js';
export {
  copyEndpoint,
  decodeEndpoint,
  ENDPOINT_SIZE,
  type Endpoint,
  encodeEndpoint,
  endpointEquals,
  endpointFamily,
  formatEndpoint,
  parseEndpoint,
} from './endpoint.js';
export type { Polled, TunDevice, UdpBind } from './device.js';
export { IoError } from './errors.js';
export {
  addAddress,
  addRoute,
  configureLink,
  deleteAddress,
  deleteRoute,
  type IpOptions,
  type LinkSettings,
  type RouteOptions,
  type RoutePath,
  routeGet,
  setLinkDown,
  setLinkUp,
  setMtu,
  setTxQueueLen,
} from './netconf.js';
export { runInNetns } from './netns.js';
export { checkInterfaceName, Tun, type TunOptions, type TunStats } from './tun.js';
export { DEFAULT_SOCKET_BUFFER, type SendOptions, type UdpBindOptions, UdpSocket, type UdpStats } from './udp.js';
