/**
 * `tvpn demo`: on one machine, as root, a server and a client in two fresh network
 * namespaces joined by a veth pair (198.18.99.0/24): handshake, pushed address, round trips
 * and a short TCP throughput figure through the tunnel, then everything is removed again.
 * Both are measured by Node itself, so iproute2's `ip` is the only command it needs (minimal
 * Debian installs lack ping).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../config/errors.js';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../config/keys.js';
import { createNetnsPair } from '../../lab/netns.js';
import { PACKAGE_ROOT } from '../../version.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'tvpn');
const SECONDS = 3;

// Bounded TCP load: the source stops after SECONDS or 4 GiB, whichever comes first.
const SINK = `const s=require('net').createServer(c=>{let n=0;const t=Date.now();c.on('data',d=>n+=d.length);c.on('end',()=>{console.log(JSON.stringify({bytes:n,ms:Date.now()-t}));s.close()})});s.listen(5201,'10.8.0.1',()=>console.error('ready'));setTimeout(()=>process.exit(3),30000).unref()`;
const SOURCE = `const c=require('net').connect(5201,'10.8.0.1',()=>{const b=Buffer.alloc(65536,7);const end=Date.now()+${SECONDS}*1000;let n=0;const go=()=>{while(Date.now()<end&&n<4*2**30){n+=b.length;if(!c.write(b))return c.once('drain',go)}c.end()};go()});c.on('error',e=>{console.error(e.message);process.exit(2)})`;

// Round trips: a UDP echo on the server's tunnel address, 5 probes 200 ms apart, each given 1 s.
const ECHO = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(5202,'10.8.0.1',()=>console.error('ready'))`;
const PROBE = `const s=require('dgram').createSocket('udp4');const rtts=[];let i=0,t=0n,timer;const next=()=>{if(i++===5){console.log(JSON.stringify(rtts));return s.close()}t=process.hrtime.bigint();s.send('x',5202,'10.8.0.1');timer=setTimeout(next,1000)};s.on('message',()=>{clearTimeout(timer);rtts.push(Number(process.hrtime.bigint()-t)/1e6);setTimeout(next,200)});next()`;

/** The namespaces and veth need iproute2: said up front, not as a failed spawn halfway. */
function requireIpCommand(): void {
  const found = (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'ip')));
  if (!found) throw new Error("tvpn demo needs the 'ip' command to make network namespaces (on Debian: apt-get install iproute2)");
}

/** Echoes a child's output lines, labelled (the daemons' timestamps dropped) or as they are. */
function echoLines(child: ChildProcess, label: string, onLine: (line: string) => void): void {
  let rest = '';
  const feed = (d: Buffer): void => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(label ? `  [${label}] ${l.replace(/^\S+Z /, '')}` : l);
  };
  child.stdout?.on('data', feed);
  child.stderr?.on('data', feed);
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
  requireIpCommand();
  if (process.getuid?.() !== 0) throw new ConfigError('tvpn demo needs root: it creates network namespaces and tun devices (run it with sudo)');
  say('Setting up two network namespaces joined by a veth pair (server 198.18.99.1, client 198.18.99.2)...');
  const lab = await createNetnsPair({ prefix: 'tvpn-demo', index: 99, ipv6: false });
  const dir = mkdtempSync(join(tmpdir(), 'tvpn-demo-'));
  const stop = (): void => void lab.cleanup().then(() => process.exit(130));
  process.once('SIGINT', stop);
  try {
    // The pushed route needs forwarding on the server side, as on a real server.
    await lab.a.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const [sk, ck] = [generatePrivateKey(), generatePrivateKey()];
    const [serverKey, clientKey, serverCfg, clientCfg] = ['server.key', 'client.key', 'server.yaml', 'client.yaml'].map((f) => join(dir, f)) as [string, string, string, string];
    writeKeyFile(serverKey, sk);
    writeKeyFile(clientKey, ck);
    writeFileSync(
      serverCfg,
      `interface: { name: tun0, address: 10.8.0.1/24, mtu: 1420 }\nlisten: ${lab.a.addr}:51820\nprivate_key_file: ${serverKey}\nstate_dir: ${join(dir, 'state')}\n` +
        `push: { routes: [10.20.0.0/16], dns: [], keepalive: 25 }\nclients:\n  - { name: demo-client, public_key: ${encodeKey(publicKeyOf(ck))} }\n`,
    );
    writeFileSync(
      clientCfg,
      `interface: { name: tun0 }\nserver: { endpoint: ${lab.a.addr}:51820, public_key: ${encodeKey(publicKeyOf(sk))} }\nprivate_key_file: ${clientKey}\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
    );
    let clientLog = '';
    echoLines(lab.a.spawn(process.execPath, [BIN, 'server', '-c', serverCfg]), 'server', say);
    await new Promise((r) => setTimeout(r, 300));
    echoLines(lab.b.spawn(process.execPath, [BIN, 'client', '-c', clientCfg]), 'client', (l) => {
      clientLog += l + '\n';
      say(l);
    });
    await waitFor('the client to receive its configuration', () => /config \d+ applied/.test(clientLog), 20_000);

    const address = /address (\S+)\/\d+ on tun0/.exec(clientLog)?.[1] ?? '?';
    say(`\nRound trips through the tunnel (UDP echo, client ${address} -> server 10.8.0.1):`);
    let echoReady = false;
    echoLines(lab.a.spawn(process.execPath, ['-e', ECHO]), '', (l) => (echoReady ||= l === 'ready'));
    await waitFor('the UDP echo', () => echoReady, 5000);
    const rtts = JSON.parse((await lab.b.exec(process.execPath, ['-e', PROBE])).stdout) as number[];
    const f = (n: number): string => n.toFixed(2);
    const stats = rtts.length === 0 ? '' : `, rtt min/avg/max ${f(Math.min(...rtts))}/${f(rtts.reduce((a, b) => a + b) / rtts.length)}/${f(Math.max(...rtts))} ms`;
    say(`  5 sent, ${rtts.length} answered${stats}`);

    say(`\nTCP throughput through the tunnel (${SECONDS} s, one stream):`);
    let result = '';
    let ready = false;
    echoLines(lab.a.spawn(process.execPath, ['-e', SINK]), '', (l) => (l === 'ready' ? (ready = true) : (result += l)));
    await waitFor('the TCP sink', () => ready, 5000);
    await lab.b.exec(process.execPath, ['-e', SOURCE]);
    await waitFor('the transfer', () => result.includes('bytes'), 10_000);
    const { bytes, ms } = JSON.parse(result) as { bytes: number; ms: number };
    say(`  ${((bytes * 8) / (ms / 1000) / 1e9).toFixed(2)} Gbit/s (${(bytes / 2 ** 20).toFixed(0)} MiB in ${(ms / 1000).toFixed(1)} s)`);

    say('\ntvpn show (server):');
    say((await lab.a.exec(process.execPath, [BIN, 'show'])).stdout.replace(/^/gm, '  ').trimEnd());
  } finally {
    say('\nRemoving the namespaces, tun devices and processes...');
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
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
