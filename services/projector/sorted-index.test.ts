import { describe, expect, it } from 'vitest';
import { compareKeys, pageOf } from './paging.ts';
import { SortedIndex } from './sorted-index.ts';

/** A tiny deterministic generator, so a failure can be replayed. */
const rng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

describe('SortedIndex', () => {
  it('stays in the order a full sort gives through inserts, renames and removals', () => {
    const rand = rng(7);
    const live = new Map<string, string>();
    const index = new SortedIndex(() => [...live].map(([id, name]) => ({ k: [name, id], id })));
    // The first read sorts; every later change is one move.
    expect([...index.from(null)]).toEqual([]);
    const names = ['alpha', 'Beta', 'beta', 'gamma', 'é', 'e', 'z', 'a-1', 'a-10', 'a-2'];
    for (let step = 0; step < 3_000; step++) {
      const id = `id-${Math.floor(rand() * 200)}`;
      const was = live.get(id);
      const r = rand();
      if (r < 0.6) {
        const name = names[Math.floor(rand() * names.length)]! + (rand() < 0.5 ? '' : String(Math.floor(rand() * 50)));
        live.set(id, name);
        index.move(id, was === undefined ? undefined : [was, id], [name, id]);
      } else if (was !== undefined) {
        live.delete(id);
        index.move(id, [was, id], undefined);
      }
      if (step % 100 === 0) {
        const expected = [...live].map(([i, n]) => ({ k: [n, i], id: i })).sort((a, b) => compareKeys(a.k, b.k)).map((e) => e.id);
        expect([...index.from(null)]).toEqual(expected);
      }
    }
  });

  it('reads from just after a key, present or not', () => {
    const index = new SortedIndex(() => ['b', 'd', 'f'].map((n) => ({ k: [n, `id-${n}`], id: `id-${n}` })));
    expect([...index.from(['b', 'id-b'])]).toEqual(['id-d', 'id-f']);
    expect([...index.from(['c', 'x'])]).toEqual(['id-d', 'id-f']);
    expect([...index.from(['f', 'id-f'])]).toEqual([]);
    expect([...index.from(['a', ''])]).toEqual(['id-b', 'id-d', 'id-f']);
  });

  it('sorts again after invalidate, taking in what changed meanwhile', () => {
    let names = ['b', 'a'];
    const index = new SortedIndex(() => names.map((n) => ({ k: [n, n], id: n })));
    expect([...index.from(null)]).toEqual(['a', 'b']);
    names = ['c', 'a', 'b'];
    index.invalidate();
    expect([...index.from(null)]).toEqual(['a', 'b', 'c']);
  });
});

describe('pageOf over an index', () => {
  it('pages through the same items, in the same pages, as over an unordered scan', () => {
    const rand = rng(11);
    const items = Array.from({ length: 1_234 }, (_, i) => ({ name: `vm-${Math.floor(rand() * 400)}`, id: `id-${i}` }));
    const sorted = [...items].sort((a, b) => compareKeys([a.name, a.id], [b.name, b.id]));
    const fromIndex = (after: string[] | null) => sorted.filter((s) => !after || compareKeys([s.name, s.id], after) > 0);
    for (const pageSize of [1, 10, 500, 5_000]) {
      for (const maxBytes of [1 << 30, 2_000]) {
        let a: string | undefined;
        let b: string | undefined;
        const seenA: string[] = [];
        const seenB: string[] = [];
        do {
          const pa = pageOf(items, (s) => [s.name, s.id], (s) => s, { ...(a ? { cursor: a } : {}), pageSize }, maxBytes);
          const pb = pageOf(fromIndex, (s) => [s.name, s.id], (s) => s, { ...(b ? { cursor: b } : {}), pageSize }, maxBytes);
          expect(pb.items).toEqual(pa.items);
          expect(pb.next).toEqual(pa.next);
          seenA.push(...pa.items.map((s) => s.id));
          seenB.push(...pb.items.map((s) => s.id));
          a = pa.next;
          b = pb.next;
        } while (a);
        expect(seenB).toEqual(sorted.map((s) => s.id));
      }
    }
  });

  it('reads the index only as far as the page goes', () => {
    let read = 0;
    const ordered = function* () {
      for (let i = 0; i < 100_000; i++) {
        read++;
        yield { name: `vm-${String(i).padStart(6, '0')}`, id: String(i) };
      }
    };
    const page = pageOf(ordered, (s) => [s.name, s.id], (s) => s, { pageSize: 50 }, 1 << 30);
    expect(page.items).toHaveLength(50);
    expect(page.next).toBeDefined();
    expect(read).toBe(51);
  });
});
