/** The netns harness (root): it cleans up its namespaces and children when the work times out. */
import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { withNetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { sleep } from '../helpers/wait.js';

describeRoot('the namespace harness', () => {
  it('removes its namespaces and kills its children when the work times out', async () => {
    let names: string[] = [];
    let pid: number | undefined;
    const work = withNetnsPair(
      { prefix: 'tvio', index: 3 },
      async (p) => {
        names = [p.a.name, p.b.name];
        pid = p.b.spawn('sleep', ['30']).pid;
        await p.a.ip(['link', 'show', p.a.ifname]);
        await sleep(30_000);
      },
      { timeoutMs: 1500 },
    );
    await expect(work).rejects.toThrow('netns test timed out after 1500 ms');
    const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const name of names) expect(listed).not.toContain(name);
    expect(pid).toBeGreaterThan(0);
    expect(() => process.kill(pid!, 0)).toThrow();
  });
});
