/**
 * The two-container test for real: the project's Dockerfile built into an image, a server and
 * a client container started by docker-compose.yml on an internal container network, each with
 * its own tun0, traffic through the tunnel. test/docker/run.sh does the work (its own dockerd,
 * a debootstrap base, teardown on every exit path); this file runs it once and reports each of
 * its checks as a test.
 *
 * Needs root, /dev/net/tun, and docker.io, debootstrap, docker-compose and tcpdump or apt-get
 * to install them; skipped with the reason otherwise, or with TVPN_DOCKER_TEST=0.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { ROOT } from '../helpers/tvpn.js';

const SCRIPT = join(ROOT, 'test/docker/run.sh');
/** The script stops itself (and cleans up) at its own deadline; this is the backstop. */
const DEADLINE_S = 420;
const KILL_AFTER_MS = (DEADLINE_S + 60) * 1000;

/** Each check the script prints as `ok <id> - ...` or `not ok <id> - ...`, in order. */
const CHECKS: ReadonlyArray<readonly [id: string, what: string]> = [
  ['image', 'the Dockerfile builds on the locally made base without apt; the image runs tvpn'],
  ['configs', "configs/docker with keys from the image's tvpn genkey pass tvpn check"],
  ['init', "the README's docker run ... tvpn init and add-client fill a config folder that passes tvpn check"],
  ['tun', 'tun0 up in both containers, the client address from the server pool, MTU pushed'],
  ['route', 'the pushed route is in the client container via tun0'],
  ['ping', 'ping through the tunnel both ways'],
  ['transfer', '50 MB over TCP through the tunnel intact'],
  ['wire', 'only the tunnel UDP on the container network, no cleartext'],
  ['show', 'tvpn show --json in the server container reports the client and the transfer'],
  ['restart', 'a recreated server container: the client reconnects and keeps its leased address'],
  ['stop', 'docker stop: both daemons exit 0'],
  ['teardown', 'nothing left: containers, network, images, dockerd, data root; host firewall unchanged'],
];

const check = spawnSync('bash', [SCRIPT, '--check'], { encoding: 'utf8', timeout: 10_000 });
const skipReason = check.status === 0 ? null : (check.stdout || check.stderr || `exit ${check.status}`).trim();

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  seconds: number;
}

function runScript(): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    // Its own process group, so that the backstop can end whatever is left of it.
    const child = spawn('bash', [SCRIPT], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, TVPN_DOCKER_DEADLINE: String(DEADLINE_S) },
    });
    let output = '';
    const take = (d: Buffer): void => {
      output += d.toString();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    // SIGTERM to the script alone runs its cleanup; SIGKILL to the group only if that hangs.
    const term = setTimeout(() => child.kill('SIGTERM'), KILL_AFTER_MS);
    const kill = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, KILL_AFTER_MS + 90_000);
    child.on('close', (code, signal) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code, signal, output, seconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

if (skipReason !== null) {
  describe.skip(`tvpn in Docker containers [skipped: ${skipReason}]`, () => {
    test('the Docker test (test/docker/run.sh)', () => {});
  });
} else {
  describe('tvpn in Docker containers: the image, server and client containers (test/docker/run.sh)', () => {
    let run: Run;

    beforeAll(async () => {
      run = await runScript();
      const timing = run.output.split('\n').find((l) => l.includes('timing:'));
      process.stdout.write(`docker test: exit ${run.code ?? run.signal} after ${run.seconds}s${timing ? `\n${timing}` : ''}\n`);
    }, KILL_AFTER_MS + 120_000);

    /** The line the script printed for this check, or an explanation of why there is none. */
    const lineOf = (id: string): string => {
      const line = run.output.split('\n').find((l) => l.startsWith(`ok ${id} - `) || l.startsWith(`not ok ${id} - `));
      if (line) return line;
      const tail = run.output.trimEnd().split('\n').slice(-40).join('\n');
      return `(no result for '${id}': the script stopped before it, exit ${run.code ?? run.signal})\n${tail}`;
    };

    for (const [id, what] of CHECKS) {
      test(`${id}: ${what}`, () => {
        const line = lineOf(id);
        expect(line.startsWith(`ok ${id} - `), line).toBe(true);
      });
    }

    test('the script exits 0', () => {
      const tail = run.output.trimEnd().split('\n').slice(-40).join('\n');
      expect(run.code, tail).toBe(0);
    });
  });
}
