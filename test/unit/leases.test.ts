import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeasePool } from '../../src/daemon/server/leases.js';
import { prepareStateDir } from '../../src/daemon/server/statefile.js';

/** Lets a test make writes fail halfway, as a full disk would. */
const fsFault = vi.hoisted(() => ({ failWrites: false }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    writeSync: (fd: number, data: Uint8Array, offset: number): number => {
      if (!fsFault.failWrites) return fs.writeSync(fd, data, offset);
      fs.writeSync(fd, data, offset, 10);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    },
  };
});

/** A syntactically valid WireGuard public key (base64 of 32 bytes). */
const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tvpn-leases-'));
  file = join(dir, 'state', 'leases.json');
});
afterEach(() => {
  fsFault.failWrites = false;
  rmSync(dir, { recursive: true, force: true });
});

type PoolOptions = Partial<Omit<ConstructorParameters<typeof LeasePool>[0], 'ranges'> & { first: string; last: string }>;
const pool = ({ first = '10.8.0.1', last = '10.8.0.6', ...opts }: PoolOptions = {}): LeasePool =>
  new LeasePool({ ranges: [{ first, last }], reserved: ['10.8.0.1', '10.8.0.3/32'], file, ...opts });

describe('LeasePool', () => {
  it('reserve(): an address reserved later leaves the pool, and a lease on it is dropped', () => {
    const p = pool();
    expect(p.acquire(key(1), 'c1', 1000, 4)).toBe('10.8.0.2');
    expect(p.reserve('10.8.0.4')).toBeNull();
    expect(p.reserve('10.8.0.2')).toBe(key(1));
    expect(p.leaseOf(key(1), 4)).toBeNull();
    expect(p.acquire(key(2), 'c2', 2000, 4)).toBe('10.8.0.5');
    expect(p.acquire(key(1), 'c1', 3000, 4)).toBe('10.8.0.6');
    expect(JSON.parse(readFileSync(file, 'utf8')).leases.map((l: { address: string }) => l.address)).toEqual(['10.8.0.5', '10.8.0.6']);
  });

  it('hands out the lowest free address, skipping reserved ones', () => {
    const p = pool({ file: null });
    expect([1, 2, 3, 4].map((n) => p.acquire(key(n), `c${n}`, 1000, 4))).toEqual(['10.8.0.2', '10.8.0.4', '10.8.0.5', '10.8.0.6']);
    expect(p.size).toBe(4);
    expect(p.leaseOf(key(3), 4)).toBe('10.8.0.5');
    expect(p.leaseOf(key(9), 4)).toBeNull();
  });

  it('is sticky: the same client gets the same address, also after a release', () => {
    const p = pool({ file: null });
    const a = p.acquire(key(1), 'a', 1, 4);
    p.acquire(key(2), 'b', 2, 4);
    p.release(key(1), 3);
    expect(p.acquire(key(1), 'a', 4, 4)).toBe(a);
    expect(p.size).toBe(2);
  });

  it('returns null when every address is held by a connected client', () => {
    const p = pool({ file: null });
    for (let n = 1; n <= 4; n++) expect(p.acquire(key(n), '', n, 4)).not.toBeNull();
    expect(p.acquire(key(5), 'late', 5, 4)).toBeNull();
    expect(p.leaseOf(key(5), 4)).toBeNull();
  });

  it('when full, reclaims the least recently seen disconnected client', () => {
    const p = pool({ file: null });
    for (let n = 1; n <= 4; n++) p.acquire(key(n), '', n, 4);
    p.release(key(3), 100);
    p.release(key(2), 50);
    p.release(key(4)); // last seen at its acquire, time 4
    expect(p.acquire(key(5), 'new', 200, 4)).toBe('10.8.0.6'); // key(4)'s
    expect(p.leaseOf(key(4), 4)).toBeNull();
    expect(p.acquire(key(6), 'new', 201, 4)).toBe('10.8.0.4'); // then key(2)'s
    expect(p.size).toBe(4);
  });

  it('keeps leases across a restart, through the file', () => {
    const p = pool();
    expect(p.load()).toEqual([]); // no file yet
    p.acquire(key(1), 'a', 1, 4);
    p.acquire(key(2), 'b', 2, 4);
    p.release(key(1), 3);
    p.flush();

    const q = pool();
    expect(q.load()).toEqual([]);
    expect(q.size).toBe(2);
    expect(q.acquire(key(2), 'b', 4, 4)).toBe('10.8.0.4');
    expect(q.acquire(key(3), 'c', 5, 4)).toBe('10.8.0.5');
    expect(q.acquire(key(1), 'a', 6, 4)).toBe('10.8.0.2');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { leases: unknown[] };
    expect(stored.leases).toContainEqual({ key: key(3), address: '10.8.0.5', name: 'c', lastSeen: 5 });
  });

  it('writes a new lease at once, with mode 0600 and no temporary file left', () => {
    const p = pool();
    p.acquire(key(1), 'a', 1, 4);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'state')).sort()).toEqual(['leases.json', 'leases.json.bak']);
    expect(pool().load()).toEqual([]);
  });

  it('leaves the old file whole when a write fails', () => {
    const p = pool();
    p.acquire(key(1), 'a', 1, 4);
    const before = readFileSync(file, 'utf8');
    fsFault.failWrites = true;
    expect(() => p.acquire(key(2), 'b', 2, 4)).toThrow(/ENOSPC/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(readdirSync(join(dir, 'state')).sort()).toEqual(['leases.json', 'leases.json.bak']);
    fsFault.failWrites = false;
    expect(p.acquire(key(2), 'b', 3, 4)).toBe('10.8.0.4'); // the lease was kept; the retry writes it
    const q = pool();
    q.load();
    expect(q.leaseOf(key(2), 4)).toBe('10.8.0.4');
  });

  it('moves a corrupt file aside and restores every lease from the backup', () => {
    const p0 = pool();
    expect(p0.acquire(key(1), 'a', 1, 4)).toBe('10.8.0.2');
    expect(p0.acquire(key(3), 'c', 2, 4)).toBe('10.8.0.4');
    for (const garbage of ['{"version": 1, "leases": [', '{"version": 2, "leases": []}', '{"version": 1, "leases": [{"key": "x"}]}', '']) {
      writeFileSync(file, garbage);
      const p = pool();
      const warnings = p.load();
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toMatch(/corrupt.*moved to .*leases\.json\.corrupt-/);
      expect(warnings[1]).toMatch(/restored [23] lease\(s\) from .*leases\.json\.bak/);
      expect(p.leaseOf(key(1), 4)).toBe('10.8.0.2'); // the client comes back with its address
      expect(p.leaseOf(key(3), 4)).toBe('10.8.0.4');
      expect(p.acquire(key(2), 'b', 3, 4)).toBe('10.8.0.5');
      expect(existsSync(file)).toBe(true);
      p.release(key(2));
    }
    expect(readdirSync(join(dir, 'state')).filter((f) => f.includes('.corrupt-')).length).toBeGreaterThan(0);
  });

  it('starts empty, with a warning, when the file and its backup are both damaged', () => {
    pool().acquire(key(1), 'a', 1, 4);
    writeFileSync(file, 'garbage');
    writeFileSync(`${file}.bak`, '{"version": 1');
    const p = pool();
    const warnings = p.load();
    expect(warnings).toHaveLength(3);
    expect(warnings[2]).toBe('starting with no leases');
    expect(p.size).toBe(0);
    expect(p.acquire(key(2), 'b', 2, 4)).toBe('10.8.0.2');
    expect(pool().load()).toEqual([]); // both copies rewritten whole
  });

  it('drops stored leases the configuration no longer allows', () => {
    const p = pool({ reserved: ['10.8.0.1'] });
    p.acquire(key(1), 'a', 1, 4); // .2
    p.acquire(key(2), 'b', 2, 4); // .3
    p.acquire(key(3), 'c', 3, 4); // .4
    const q = pool({ reserved: ['10.8.0.1', '10.8.0.3'], last: '10.8.0.3' }); // .3 now static, .4 out of range
    const warnings = q.load();
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toMatch(/10\.8\.0\.3 to b: reserved/);
    expect(warnings.join('\n')).toMatch(/10\.8\.0\.4 to c: outside the pool/);
    expect(q.acquire(key(1), 'a', 4, 4)).toBe('10.8.0.2');
    expect(q.acquire(key(2), 'b', 5, 4)).toBeNull();
  });

  it('works for IPv6 ranges', () => {
    const p = pool({ first: 'fd00::2', last: 'fd00::4', reserved: ['fd00::3', '10.8.0.1'], file: null });
    expect([1, 2, 3].map((n) => p.acquire(key(n), '', n, 6))).toEqual(['fd00::2', 'fd00::4', null]);
  });

  it('leases an address of each family, independently, and persists both', () => {
    const ranges = [{ first: '10.8.0.2', last: '10.8.0.3' }, { first: 'fd00:8::10', last: 'fd00:8::11' }];
    const p = new LeasePool({ ranges, reserved: ['fd00:8::10'], file });
    expect([p.acquire(key(1), 'a', 1, 4), p.acquire(key(1), 'a', 1, 6)]).toEqual(['10.8.0.2', 'fd00:8::11']);
    expect(p.acquire(key(2), 'b', 2, 6)).toBeNull(); // the IPv6 range is full; IPv4 still has room
    expect(p.acquire(key(2), 'b', 2, 4)).toBe('10.8.0.3');
    p.flush();
    const q = new LeasePool({ ranges, reserved: [], file });
    expect(q.load()).toEqual([]);
    expect([q.leaseOf(key(1), 4), q.leaseOf(key(1), 6), q.leaseOf(key(2), 6)]).toEqual(['10.8.0.2', 'fd00:8::11', null]);
    p.release(key(1), 3);
    expect(p.acquire(key(3), 'c', 4, 6)).toBe('fd00:8::11'); // reclaimed from the disconnected a
    expect(p.leaseOf(key(1), 4)).toBe('10.8.0.2');
  });

  it('loads a single-family leases.json of an earlier version into a dual-stack pool', () => {
    mkdirSync(dirname(file), { recursive: true });
    const old = { version: 1, leases: [{ key: key(1), address: '10.8.0.2', name: 'a', lastSeen: 5 }] };
    writeFileSync(file, JSON.stringify(old));
    const p = new LeasePool({ ranges: [{ first: '10.8.0.2', last: '10.8.0.9' }, { first: 'fd00:8::2', last: 'fd00:8::9' }], reserved: [], file });
    expect(p.load()).toEqual([]);
    expect([p.leaseOf(key(1), 4), p.leaseOf(key(1), 6)]).toEqual(['10.8.0.2', null]);
    expect(p.acquire(key(1), 'a', 6, 6)).toBe('fd00:8::2');
    expect(JSON.parse(readFileSync(file, 'utf8')).leases.map((l: { address: string }) => l.address)).toEqual(['10.8.0.2', 'fd00:8::2']);
  });

  it('rejects a bad range', () => {
    expect(() => pool({ first: '10.8.0.9' })).toThrow(/start must not exceed the end/);
    expect(() => pool({ last: 'fd00::1' })).toThrow(/one address family/);
    expect(() => pool({ first: '10.8.0.0/24' })).toThrow(/not a prefix/);
  });
});

describe('state_dir', () => {
  it('is created at start-up, or refused in one line that names the fix', () => {
    prepareStateDir(join(dir, 'a', 'b'), 'server.yaml');
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    writeFileSync(join(dir, 'file'), '');
    expect(() => prepareStateDir(join(dir, 'file', 'state'), 'server.yaml')).toThrow(
      `server.yaml: state_dir: cannot use ${join(dir, 'file', 'state')}: a parent of it is not a directory; ` +
        'set state_dir to a writable directory such as /var/lib/tvpn (in Docker, the volume mounted there)',
    );
  });
});
