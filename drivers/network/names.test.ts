import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AllocatorState,
  INT_MAX,
  MAX_ATTEMPTS,
  NameAllocator,
  classifyRequest,
  isTemplate,
  maxIdFor,
} from './names.ts';
import { CoalescedWriter, readJsonState, writeJsonAtomic } from './persist.ts';
import { VirtError } from '../../contracts/errors.ts';

const clock = (start = 1_000_000) => {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
};

describe('NameAllocator: generated names', () => {
  it('hands out vnetN, macvtapN and macvlanN from independent monotonic counters', () => {
    const a = new NameAllocator();
    expect([a.allocate('vnet', undefined), a.allocate('vnet', undefined), a.allocate('vnet', undefined)]).toEqual([
      'vnet0',
      'vnet1',
      'vnet2',
    ]);
    expect(a.allocate('macvtap', undefined)).toBe('macvtap0');
    expect(a.allocate('macvlan', undefined)).toBe('macvlan0');
    expect(a.allocate('vnet', '')).toBe('vnet3');
    // libvirt's own default template means "generate".
    expect(a.allocate('vnet', 'vnet%d')).toBe('vnet4');
  });

  it('does not reuse a just-freed name', () => {
    const a = new NameAllocator();
    const first = a.allocate('vnet', undefined);
    a.allocate('vnet', undefined);
    a.release(first);
    const names = [a.allocate('vnet', undefined), a.allocate('vnet', undefined)];
    expect(names).toEqual(['vnet2', 'vnet3']);
    expect(names).not.toContain(first);
  });

  it('interleaved create/delete never returns a lower, recently freed number (unlike the kernel)', () => {
    const a = new NameAllocator();
    const seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      const n = a.allocate('vnet', undefined);
      seen.push(n);
      a.release(n);
    }
    expect(new Set(seen).size).toBe(50);
    expect(seen.at(-1)).toBe('vnet49');
  });

  it('wraps to 0 after INT_MAX for vnet (the int cap applies: 10^11 > INT_MAX)', () => {
    expect(maxIdFor('vnet'.length)).toBe(INT_MAX);
    const a = new NameAllocator({
      state: { version: 1, counters: { vnet: INT_MAX - 1 }, templates: {}, released: [] },
    });
    expect(a.allocate('vnet', undefined)).toBe(`vnet${INT_MAX}`);
    expect(`vnet${INT_MAX}`.length).toBeLessThanOrEqual(15);
    expect(a.allocate('vnet', undefined)).toBe('vnet0');
    expect(a.allocate('vnet', undefined)).toBe('vnet1');
  });

  it('wraps before a name would exceed 15 characters (macvtap: 8 digits)', () => {
    expect(maxIdFor('macvtap'.length)).toBe(99_999_999);
    const a = new NameAllocator({
      state: { version: 1, counters: { macvtap: 99_999_998, macvlan: 99_999_999 }, templates: {}, released: [] },
    });
    const last = a.allocate('macvtap', undefined);
    expect(last).toBe('macvtap99999999');
    expect(last.length).toBe(15);
    expect(a.allocate('macvtap', undefined)).toBe('macvtap0');
    expect(a.allocate('macvlan', undefined)).toBe('macvlan0');
  });

  it('skips names that exist on the host', () => {
    const a = new NameAllocator();
    const onHost = new Set(['vnet0', 'vnet1', 'vnet3']);
    expect(a.allocate('vnet', undefined, (n) => onHost.has(n))).toBe('vnet2');
    expect(a.allocate('vnet', undefined, (n) => onHost.has(n))).toBe('vnet4');
  });

  it('skips names still held (clean-up pending) and recently released ones across a wrap', () => {
    const c = clock();
    const a = new NameAllocator({ maxIds: { vnet: 3 }, quarantineMs: 60_000, now: c.now });
    const held = a.allocate('vnet', undefined); // vnet0: clean-up pending, never released
    const recent = a.allocate('vnet', undefined); // vnet1
    a.release(recent);
    expect(a.allocate('vnet', undefined)).toBe('vnet2');
    expect(a.allocate('vnet', undefined)).toBe('vnet3');
    // Wrapped: vnet0 is held, vnet1 quarantined, vnet2 and vnet3 held.
    expect(() => a.allocate('vnet', undefined)).toThrowError(/no unused vnet names available/);
    c.advance(60_000);
    expect(a.allocate('vnet', undefined)).toBe('vnet1');
    expect(a.isHeld(held)).toBe(true);
  });

  it(`fails with a clear error after ${MAX_ATTEMPTS} attempts`, () => {
    const a = new NameAllocator();
    let calls = 0;
    const err = (() => {
      try {
        a.allocate('macvtap', undefined, () => (calls++, true));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(VirtError);
    expect((err as VirtError).code).toBe('internal-error');
    expect((err as VirtError).message).toBe('no unused macvtap names available');
    expect(calls).toBe(MAX_ATTEMPTS);
  });
});

describe('NameAllocator: user names', () => {
  it('keeps a fixed name as is', () => {
    const a = new NameAllocator();
    expect(a.allocate('vnet', 'guest-eth0')).toBe('guest-eth0');
    expect(a.allocate('macvtap', 'mv.db1')).toBe('mv.db1');
    // The generated counter is untouched.
    expect(a.allocate('vnet', undefined)).toBe('vnet0');
  });

  it('refuses a fixed name that is still held', () => {
    const a = new NameAllocator();
    a.allocate('vnet', 'guest0');
    expect(() => a.allocate('vnet', 'guest0')).toThrowError(/already in use/);
  });

  it('rejects fixed names shaped like generated ones', () => {
    const a = new NameAllocator();
    for (const n of ['vnet0', 'vnet42', 'macvtap7', 'macvlan12']) {
      expect(() => a.allocate('vnet', n)).toThrowError(/reserved for generated devices/);
    }
    expect(() => a.allocate('macvtap', 'vnet%d')).toThrowError(/reserved for generated devices/);
    // Only the exact shape prefix+digits is reserved.
    expect(a.allocate('vnet', 'vnetwork')).toBe('vnetwork');
    expect(a.allocate('vnet', 'vnet0a')).toBe('vnet0a');
  });

  it('rejects invalid names', () => {
    const a = new NameAllocator();
    for (const n of ['a'.repeat(16), 'has space', 'a/b', 'x;y', '..', 'semi%s', 'two%d%d']) {
      expect(() => a.allocate('vnet', n)).toThrowError(VirtError);
    }
  });

  it('expands %d templates itself, monotonically and per template', () => {
    const a = new NameAllocator();
    expect(isTemplate('mytap%d')).toBe(true);
    expect(isTemplate('my%%d')).toBe(false);
    const t1 = a.allocate('vnet', 'mytap%d');
    const t2 = a.allocate('vnet', 'mytap%d');
    const o1 = a.allocate('vnet', 'db%d-x');
    a.release(t1);
    a.release(t2);
    const t3 = a.allocate('vnet', 'mytap%d');
    expect([t1, t2, o1, t3]).toEqual(['mytap0', 'mytap1', 'db0-x', 'mytap2']);
    expect(a.allocate('vnet', undefined)).toBe('vnet0');
  });

  it('wraps a template before it outgrows 15 characters and skips existing expansions', () => {
    const a = new NameAllocator({
      state: { version: 1, counters: {}, templates: { 'abcdefghijk%d': 9998 }, released: [] },
    });
    expect(maxIdFor('abcdefghijk'.length)).toBe(9999);
    expect(a.allocate('vnet', 'abcdefghijk%d')).toBe('abcdefghijk9999');
    expect(a.allocate('vnet', 'abcdefghijk%d', (n) => n === 'abcdefghijk0')).toBe('abcdefghijk1');
    expect(() => classifyRequest('vnet', 'abcdefghijklmno%d')).toThrowError(VirtError);
  });
});

describe('NameAllocator: restart', () => {
  it('re-seeds past names in use by running guests (reserve)', () => {
    const a = new NameAllocator();
    for (const n of ['vnet7', 'vnet3', 'macvtap12', 'guest0', 'mytap5']) a.reserve(n);
    expect(a.allocate('vnet', undefined)).toBe('vnet8');
    expect(a.allocate('macvtap', undefined)).toBe('macvtap13');
    expect(a.allocate('macvlan', undefined)).toBe('macvlan0');
    expect(() => a.allocate('vnet', 'guest0')).toThrowError(/already in use/);
  });

  it('re-seeds template counters known from the persisted state', () => {
    const a = new NameAllocator({ state: { version: 1, counters: {}, templates: { 'mytap%d': 1 }, released: [] } });
    a.reserve('mytap9');
    expect(a.allocate('vnet', 'mytap%d')).toBe('mytap10');
  });

  it('continues from persisted counters and history, not from 0', () => {
    const c = clock();
    const before = new NameAllocator({ now: c.now });
    for (let i = 0; i < 5; i++) before.release(before.allocate('vnet', undefined));
    before.release(before.allocate('macvtap', undefined));
    const saved = AllocatorState.parse(JSON.parse(JSON.stringify(before.snapshot())));
    expect(saved.released.map((r) => r.name)).toEqual(['vnet0', 'vnet1', 'vnet2', 'vnet3', 'vnet4', 'macvtap0']);

    const after = new NameAllocator({ state: saved, now: c.now });
    expect(after.allocate('vnet', undefined)).toBe('vnet5');
    expect(after.allocate('macvtap', undefined)).toBe('macvtap1');

    // History alone (counters lost) still pushes the counters past recently released names.
    const historyOnly = new NameAllocator({ state: { ...saved, counters: {} }, now: c.now });
    expect(historyOnly.allocate('vnet', undefined)).toBe('vnet5');
  });

  it('forgets released names after the quarantine and bounds the history', () => {
    const c = clock();
    const a = new NameAllocator({ now: c.now, quarantineMs: 1000, historyLimit: 3 });
    for (let i = 0; i < 5; i++) a.release(a.allocate('vnet', undefined));
    expect(a.snapshot().released.map((r) => r.name)).toEqual(['vnet2', 'vnet3', 'vnet4']);
    c.advance(1001);
    expect(a.snapshot().released).toEqual([]);
  });
});

describe('state files', () => {
  it('writes atomically, reads back, and moves a damaged file aside', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vp-names-'));
    try {
      const path = join(dir, 'ifnames.json');
      const a = new NameAllocator();
      a.allocate('vnet', undefined);
      await writeJsonAtomic(path, a.snapshot());
      expect(await readdir(dir)).toEqual(['ifnames.json']);
      const back = await readJsonState(path, AllocatorState, () => undefined);
      expect(back?.counters.vnet).toBe(0);

      await writeJsonAtomic(path, { version: 2 });
      const warnings: string[] = [];
      expect(await readJsonState(path, AllocatorState, (m) => warnings.push(m))).toBeUndefined();
      expect(warnings[0]).toMatch(/moved to/);
      expect((await readdir(dir)).some((f) => f.startsWith('ifnames.json.corrupt-'))).toBe(true);
      expect(await readJsonState(join(dir, 'missing.json'), AllocatorState, () => undefined)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('coalesces concurrent saves and always ends with the latest snapshot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vp-names-'));
    try {
      const path = join(dir, 's.json');
      let value = 0;
      let snapshots = 0;
      const w = new CoalescedWriter(path, () => (snapshots++, { value }));
      const saves: Promise<void>[] = [];
      for (let i = 1; i <= 20; i++) {
        value = i;
        saves.push(w.save());
      }
      await Promise.all(saves);
      expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ value: 20 });
      expect(snapshots).toBeLessThanOrEqual(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
