/**
 * A server and a client daemon on the fakes: FakeTun and FakeNet for their I/O, FakeHostNet
 * for what they change on the host, logs kept in memory, a temporary state directory and
 * status sockets named for this process. The clock is the daemons' own (clock.ts), moved on
 * with advanceClock where a test needs protocol deadlines to pass.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseClientConfig, type ClientConfig } from '../../../src/config/client.js';
import { encodeKey, publicKeyOf } from '../../../src/config/keys.js';
import { parseServerConfig, type ServerConfig } from '../../../src/config/server.js';
import { advanceClock } from '../../../src/daemon/clock.js';
import { Client } from '../../../src/daemon/client/client.js';
import type { DataPathIo } from '../../../src/daemon/datapath.js';
import { Logger } from '../../../src/daemon/log.js';
import { Server } from '../../../src/daemon/server/server.js';
import type { UdpBindOptions } from '../../../src/io/udp.js';
import { afterEach, beforeEach } from 'vitest';
import { sleep, waitFor } from '../../helpers/wait.js';
import { ipv4 } from './sim.js';
import { FakeNet, type FakeUdp } from './bindtest.js';
import { FakeHostNet } from './hosttest.js';
import { FakeTun } from './tuntest.js';

export const SERVER_IP = '192.0.2.1';
export const CLIENT_IP = '192.0.2.2';

/** For a test file: a new Lab before each test (handed to `use`), closed after it. */
export function labPerTest(use: (lab: Lab) => void): void {
  let lab: Lab;
  beforeEach(() => use((lab = new Lab())));
  afterEach(() => lab.close());
}

/** Sends a packet from the client's host into the tunnel and waits for it on the server's tun. */
export async function clientToServer(lab: Lab, text: string): Promise<void> {
  lab.clientIo.tun!.inject(ipv4('10.8.0.2', '10.8.0.1', text));
  const tun = lab.serverIo.tun!;
  await waitFor(`'${text}' on the server's tun`, () => tun.written.some((p) => new TextDecoder().decode(p.subarray(20)) === text));
}

/** One host's tun and sockets on the fake network; the latest of each is kept for the test. */
export class FakeIo implements DataPathIo {
  tun: FakeTun | null = null;
  udp: FakeUdp | null = null;

  constructor(
    private readonly net: FakeNet,
    readonly ip: string,
  ) {}

  openTun(name: string): FakeTun {
    return (this.tun = new FakeTun(name));
  }

  openUdp(opts: UdpBindOptions): FakeUdp {
    return (this.udp = this.net.bind(this.ip, opts.port ?? 0));
  }
}

/** A logger whose lines stay in memory. */
export function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger('debug', (line) => lines.push(line.trimEnd())), lines };
}

export const key = (n: number): Uint8Array => new Uint8Array(32).fill(n);
/** Abstract names: nothing on disk, and other test runs on this host never collide. */
const statusSocket = (): string => `'@tvpn-unit-${process.pid}-${randomBytes(4).toString('hex')}'`;

export class Lab {
  readonly net = new FakeNet();
  readonly dir = mkdtempSync(join(tmpdir(), 'tvpn-daemon-'));
  readonly serverIo = new FakeIo(this.net, SERVER_IP);
  readonly clientIo = new FakeIo(this.net, CLIENT_IP);
  readonly serverHost = new FakeHostNet();
  readonly clientHost = new FakeHostNet();
  readonly serverLog = memoryLog();
  readonly clientLog = memoryLog();
  server: Server | null = null;
  /** The config the server was last started with. */
  serverCfg: ServerConfig | null = null;
  client: Client | null = null;
  /** Clients started by startOther. */
  readonly others: Client[] = [];
  readonly clientCfg: ClientConfig;
  /** The server's interface.address as written in its config (YAML). */
  serverAddress = '10.8.0.1/24';
  /** The server's, the same in each serverConfig (a reload cannot move it). */
  readonly serverSocket = statusSocket();

  constructor() {
    this.clientCfg = parseClientConfig(
      `interface: { name: tun0 }\nserver: { endpoint: '${SERVER_IP}:51820', public_key: ${encodeKey(publicKeyOf(key(1)))} }\n` +
        `private_key: ${encodeKey(key(2))}\nkeepalive: 0\nstatus_socket: ${statusSocket()}\n`,
      join(this.dir, 'client.yaml'),
    );
  }

  /** The server's config text with this push section (YAML flow mapping); client 'laptop' (`laptop`: more of its keys), then `more` (YAML list items). */
  serverText(push: string, more = '', laptop = ''): string {
    return (
      `interface: { name: tun0, address: ${this.serverAddress} }\nlisten: '${SERVER_IP}:51820'\nprivate_key: ${encodeKey(key(1))}\n` +
        `state_dir: state\nstatus_socket: ${this.serverSocket}\npush: ${push}\n` +
        `clients:\n  - { name: laptop, public_key: ${encodeKey(publicKeyOf(key(2)))}${laptop} }\n${more}`
    );
  }

  serverConfig(push: string, more = '', laptop = ''): ServerConfig {
    return parseServerConfig(this.serverText(push, more, laptop), join(this.dir, 'server.yaml'));
  }

  async startServer(push: string, more = '', laptop = ''): Promise<Server> {
    this.serverCfg = this.serverConfig(push, more, laptop);
    return (this.server = await Server.start(this.serverCfg, this.serverLog.log, { io: this.serverIo, host: this.serverHost }));
  }

  async startClient(): Promise<Client> {
    return (this.client = await Client.start(this.clientCfg, this.clientLog.log, { io: this.clientIo, host: this.clientHost }));
  }

  /**
   * Another client machine at ip: with the laptop's profile (one key on two machines) unless
   * privateKey is given. Its log lines are returned; it stops with the lab.
   */
  async startOther(ip: string, privateKey?: Uint8Array): Promise<string[]> {
    const { log, lines } = memoryLog();
    const cfg = { ...this.clientCfg, statusSocket: statusSocket().slice(1, -1), ...(privateKey ? { privateKey } : {}) };
    this.others.push(await Client.start(cfg, log, { io: new FakeIo(this.net, ip), host: new FakeHostNet() }));
    return lines;
  }

  /** Starts both and waits until the client has applied config 1. */
  async connect(push: string): Promise<void> {
    await this.startServer(push);
    await this.startClient();
    await this.serverLogged('laptop applied config 1 (10.8.0.2)');
  }

  /** Waits until the server's log has a line containing text. */
  serverLogged(text: string, timeoutMs?: number): Promise<void> {
    return waitFor(`server log: ${text}`, () => this.serverLog.lines.some((l) => l.includes(text)), timeoutMs);
  }

  clientLogged(text: string, timeoutMs?: number): Promise<void> {
    return waitFor(`client log: ${text}`, () => this.clientLog.lines.some((l) => l.includes(text)), timeoutMs);
  }

  /** Moves the daemons' clock on in steps, letting timers and datagrams run in between. */
  async advance(ms: number, step = 1000): Promise<void> {
    for (let done = 0; done < ms; done += step) {
      advanceClock(Math.min(step, ms - done));
      await sleep(2);
    }
  }

  async close(): Promise<void> {
    for (const c of this.others) await c.stop();
    await this.client?.stop();
    await this.server?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
