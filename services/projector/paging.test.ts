import { describe, expect, it } from 'vitest';
import { isVirtError } from '../../contracts/errors.ts';
import { decodeCursor, encodeCursor } from '../../contracts/views.ts';
import { pageOf } from './paging.ts';

interface Item {
  name: string;
  id: string;
  blob: string;
}

const items = (n: number, blob = 10): Item[] =>
  Array.from({ length: n }, (_, i) => ({ name: `n-${String((i * 7919) % n).padStart(5, '0')}`, id: `id-${i}`, blob: 'x'.repeat(blob) }));

const all = (list: Item[], pageSize: number, maxBytes: number): { names: string[]; pages: number } => {
  const names: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const p = pageOf(list, (s) => [s.name, s.id], (s) => s, { ...(cursor ? { cursor } : {}), pageSize }, maxBytes);
    names.push(...p.items.map((i) => i.name));
    cursor = p.next;
    pages++;
  } while (cursor);
  return { names, pages };
};

describe('pageOf', () => {
  it('gives every item once, in order, whatever the page size', () => {
    const list = items(2_000);
    const sorted = list.map((i) => i.name).sort();
    for (const size of [1, 7, 499, 500, 2_000, 5_000]) {
      const { names, pages } = all(list, size, 1 << 30);
      expect(names).toEqual(sorted);
      expect(pages).toBe(Math.max(1, Math.ceil(2_000 / size)));
    }
  });

  it('cuts a page short rather than exceed the byte budget', () => {
    const list = items(50, 1_000);
    const { names, pages } = all(list, 50, 5_500);
    expect(names).toHaveLength(50);
    expect(pages).toBe(10);
  });

  it('answers an item bigger than any reply with an error whose cursor skips it', () => {
    const list = [...items(3), { name: 'n-00001a', id: 'huge', blob: 'x'.repeat(10_000) }];
    const first = pageOf(list, (s) => [s.name, s.id], (s) => s, { pageSize: 2 }, 5_000);
    expect(first.items.map((i) => i.name)).toEqual(['n-00000', 'n-00001']);
    let err: unknown;
    try {
      pageOf(list, (s) => [s.name, s.id], (s) => s, { pageSize: 2, cursor: first.next! }, 5_000);
    } catch (e) {
      err = e;
    }
    expect(isVirtError(err) && err.code).toBe('operation-failed');
    const skip = (err as { details: { cursor: string } }).details.cursor;
    expect(decodeCursor(skip)).toEqual(['n-00001a', 'huge']);
    expect(pageOf(list, (s) => [s.name, s.id], (s) => s, { pageSize: 2, cursor: skip }, 5_000).items.map((i) => i.name)).toEqual(['n-00002']);
  });

  it('refuses a cursor it did not give', () => {
    for (const cursor of ['%%%', encodeCursor([]) , Buffer.from('[1,2]').toString('base64url'), Buffer.from('nope').toString('base64url')]) {
      expect(() => pageOf(items(3), (s) => [s.name], (s) => s, { cursor }, 1 << 20)).toThrow(/cursor/);
    }
  });
});
