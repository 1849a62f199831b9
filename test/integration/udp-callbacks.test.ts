/**
 * Callbacks from the event loop: a child process (or its worker threads) polls UDP sockets
 * through the addon, and a callback that throws behaves as any uncaught exception.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('callbacks from the event loop', () => {
  const addon = fileURLToPath(new URL('../../native/build/Release/tvpn.node', import.meta.url));
  /** A child that polls a readable UDP socket with `handler` as the callback. */
  const child = (prelude: string, handler: string): SpawnSyncReturns<string> =>
    spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
        import { createRequire } from 'node:module';
        const io = createRequire(import.meta.url)(${JSON.stringify(addon)});
        const local = new Uint8Array(20); local.set([4, 0, 0, 0, 127, 0, 0, 1]);
        const s = io.openUdp(local, 0, false, false);
        const to = new Uint8Array(20); to.set(local); to[2] = s.port >> 8; to[3] = s.port & 255;
        s.send(new Uint8Array(64), 64, 0, Int32Array.of(8), to, 0, 1, false);
        ${prelude}
        s.poll(1, ${handler});
        setTimeout(() => { console.log('timeout'); process.exit(3); }, 5000);
        `,
      ],
      { encoding: 'utf8', timeout: 15_000 },
    );

  it('an exception thrown by a callback becomes an ordinary uncaught exception', () => {
    const r = child('', `() => { throw new Error('boom from a poll callback'); }`);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('boom from a poll callback');
  });

  it('a worker thread can exit while its sockets are still polling', () => {
    // Evaluated as a module, like the parent below (--input-type=module).
    const worker = `
      import { createRequire } from 'node:module';
      import { parentPort } from 'node:worker_threads';
      const io = createRequire(${JSON.stringify(addon)})(${JSON.stringify(addon)});
      const local = new Uint8Array(20); local.set([4, 0, 0, 0, 127, 0, 0, 1]);
      const s = io.openUdp(local, 0, false, true);
      s.poll(3, () => {});
      parentPort.postMessage(s.port);`;
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
        import { Worker } from 'node:worker_threads';
        for (let i = 0; i < 3; i++) {
          const w = new Worker(${JSON.stringify(worker)}, { eval: true });
          await new Promise((resolve) => w.once('message', () => w.terminate().then(resolve)));
        }
        console.log('workers done');
        `,
      ],
      { encoding: 'utf8', timeout: 15_000 },
    );
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('workers done');
    expect(r.status).toBe(0);
  });

  it('with an uncaughtException handler the process and the poll carry on', () => {
    const r = child(
      `let n = 0; process.on('uncaughtException', (e) => { if (++n === 3) { console.log('handled', n, e.message); process.exit(0); } });`,
      `function (events) { if (this !== s || events !== 1) process.exit(4); throw new Error('again'); }`,
    );
    expect(r.stdout.trim()).toBe('handled 3 again');
    expect(r.status).toBe(0);
  });
});
