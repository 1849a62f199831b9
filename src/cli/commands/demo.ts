/**
 * `tvpn demo`: on one machine, as root, a server and a client in two fresh network
 * namespaces joined by a veth pair (198.18.99.0/24): handshake, pushed address, ping and a
 * short TCP throughput figure through the tunnel, then everything is removed again.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../config/errors.js';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../config/keys.js';
import { PACKAGE_ROOT } from '../../version.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'tvpn');
const SECONDS = 3;

// Bounded TCP load: the source stops after SECONDS or 4 GiB, whichever comes first.
const SINK = `const s=require('net').createServer(c=>{let n=0;const t=Date.now();c.on('data',d=>n+=d.length);c.on('end',()=>{console.log(JSON.stringify({bytes:n,ms:Date.now()-t}));s.close()})});s.listen(5201,'10.8.0.1',()=>console.error('ready'));setTimeout(()=>process.exit(3),30000).unref()`;
const SOURCE = `const c=require('net').connect(5201,'10.8.0.1',()=>{const b=Buffer.alloc(65536,7);const end=Date.now()+${SECONDS}*1000;let n=0;const go=()=>{while(Date.now()<end&&n<4*2**30){n+=b.length;if(!c.write(b))return c.once('drain',go)}c.end()};go()});c.on('error',e=>{console.error(e.message);process.exit(2)})`;

function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout)))),
  );
}

class Lab {
  readonly server: string;
  readonly client: string;
  private readonly children: ChildProcess[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'tvpn-demo-'));

  constructor() {
    const base = `tvpn-demo-${process.pid}`;
    this.server = `${base}-server`;
    this.client = `${base}-client`;
  }

  file(name: string, text: string, mode = 0o600): string {
    const path = join(this.dir, name);
    writeFileSync(path, text, { mode });
    return path;
  }

  async up(): Promise<void> {
    await sh('ip', ['netns', 'add', this.server]);
    await sh('ip', ['netns', 'add', this.client]);
    await sh('ip', ['link', 'add', 'veth-s', 'netns', this.server, 'type', 'veth', 'peer', 'name', 'veth-c', 'netns', this.client]);
    for (const [ns, dev, addr] of [
      [this.server, 'veth-s', '198.18.99.1/24'],
      [this.client, 'veth-c', '198.18.99.2/24'],
    ] as const) {
      await sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // The pushed route needs forwarding on the server side, as on a real server.
    await sh('ip', ['netns', 'exec', this.server, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }

  /** A process inside a namespace whose output lines are echoed with a label (or collected). */
  start(ns: string, label: string, args: string[], onLine: (line: string) => void): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let rest = '';
    const feed = (d: Buffer): void => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) onLine(label ? `  [${label}] ${l.replace(/^\S+Z /, '')}` : l);
    };
    child.stdout?.on('data', feed);
    child.stderr?.on('data', feed);
    return child;
  }

  async down(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 3000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    for (const ns of [this.server, this.client]) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = setInterval(() => {
      if (cond()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(poll);
        reject(new Error(`demo: timed out waiting for ${what}`));
      }
    }, 50);
  });
}

async function demo(say: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) throw new ConfigError('tvpn demo needs root: it creates network namespaces and tun devices (run it with sudo)');
  const lab = new Lab();
  const stop = (): void => void lab.down().then(() => process.exit(130));
  process.once('SIGINT', stop);
  try {
    say('Setting up two network namespaces joined by a veth pair (server 198.18.99.1, client 198.18.99.2)...');
    await lab.up();
    const [sk, ck] = [generatePrivateKey(), generatePrivateKey()];
    const [serverKey, clientKey, state] = [join(lab.dir, 'server.key'), join(lab.dir, 'client.key'), join(lab.dir, 'state')];
    writeKeyFile(serverKey, sk);
    writeKeyFile(clientKey, ck);
    const serverCfg = lab.file(
      'server.yaml',
      `interface: { name: tun0, address: 10.8.0.1/24, mtu: 1420 }\nlisten: 198.18.99.1:51820\nprivate_key_file: ${serverKey}\nstate_dir: ${state}\n` +
        `push: { routes: [10.20.0.0/16], dns: [], keepalive: 25 }\nclients:\n  - { name: demo-client, public_key: ${encodeKey(publicKeyOf(ck))} }\n`,
    );
    const clientCfg = lab.file(
      'client.yaml',
      `interface: { name: tun0 }\nserver: { endpoint: 198.18.99.1:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\nprivate_key_file: ${clientKey}\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
    );
    let clientLog = '';
    lab.start(lab.server, 'server', [process.execPath, BIN, 'server', '-c', serverCfg], say);
    await new Promise((r) => setTimeout(r, 300));
    lab.start(lab.client, 'client', [process.execPath, BIN, 'client', '-c', clientCfg], (l) => {
      clientLog += l + '\n';
      say(l);
    });
    await waitFor('the client to receive its configuration', () => /config \d+ applied/.test(clientLog), 20_000);

    const address = /address (\S+)\/\d+ on tun0/.exec(clientLog)?.[1] ?? '?';
    say(`\nPing through the tunnel (client ${address} -> server 10.8.0.1):`);
    const ping = await sh('ip', ['netns', 'exec', lab.client, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.8.0.1']).catch((e: Error) => e.message);
    say(ping.split('\n').filter((l) => /packets transmitted|rtt|not found|failed/.test(l)).map((l) => `  ${l}`).join('\n') || `  ${ping}`);

    say(`\nTCP throughput through the tunnel (${SECONDS} s, one stream):`);
    let result = '';
    let ready = false;
    lab.start(lab.server, '', [process.execPath, '-e', SINK], (l) => (l === 'ready' ? (ready = true) : (result += l)));
    await waitFor('the TCP sink', () => ready, 5000);
    await sh('ip', ['netns', 'exec', lab.client, process.execPath, '-e', SOURCE]);
    await waitFor('the transfer', () => result.includes('bytes'), 10_000);
    const { bytes, ms } = JSON.parse(result) as { bytes: number; ms: number };
    say(`  ${((bytes * 8) / (ms / 1000) / 1e9).toFixed(2)} Gbit/s (${(bytes / 2 ** 20).toFixed(0)} MiB in ${(ms / 1000).toFixed(1)} s)`);

    say('\ntvpn show (server):');
    say((await sh('ip', ['netns', 'exec', lab.server, process.execPath, BIN, 'show'])).replace(/^/gm, '  ').trimEnd());
  } finally {
    say('\nRemoving the namespaces, tun devices and processes...');
    await lab.down();
    process.removeListener('SIGINT', stop);
    say('Done: nothing is left behind.');
  }
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('as root: a server and a client in two throwaway network namespaces, handshake, ping and throughput, then clean up')
    .action(() => demo((line) => process.stdout.write(line + '\n')));
}
