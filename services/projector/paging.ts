import { virtError } from '../../contracts/errors.ts';
import { decodeCursor, DEFAULT_PAGE_SIZE, encodeCursor, type PageRequest } from '../../contracts/views.ts';
import type { Nats } from '../../platform/nats.ts';

const collator = new Intl.Collator();
/** Room left in a reply for everything but the items: `ok`, `seq`, `next` and the like. */
const ENVELOPE_BYTES = 16 * 1024;

/** Collation order (as virsh lists), then code units so distinct keys never compare equal. */
export const compareKeys = (a: string[], b: string[]): number => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = collator.compare(a[i]!, b[i]!) || (a[i]! < b[i]! ? -1 : a[i]! > b[i]! ? 1 : 0);
    if (c !== 0) return c;
  }
  return a.length - b.length;
};

/** The most item bytes one reply may carry on this server. */
export const replyBudget = (n: Nats): number => Math.max(64 * 1024, (n.nc.info?.max_payload ?? 1024 * 1024) - ENVELOPE_BYTES);

/**
 * One page of `states` in key order after the cursor: at most the page size, and no more than fit
 * in `maxBytes` of JSON. An item too big for any reply is an error naming it, with the cursor that
 * skips it, rather than a reply the server would refuse. `states` is either every candidate, in any
 * order, or a function giving them already in key order after a key (an index), which is read only
 * as far as the page goes.
 */
export const pageOf = <S, V>(
  states: Iterable<S> | ((after: string[] | null) => Iterable<S>),
  key: (s: S) => string[],
  render: (s: S) => V,
  req: PageRequest,
  maxBytes: number,
): { items: V[]; next?: string } => {
  const after = req.cursor === undefined ? null : decodeCursor(req.cursor);
  if (req.cursor !== undefined && !after) throw virtError('invalid-arg', 'invalid argument: cursor is not one a list gave');
  const size = req.pageSize ?? DEFAULT_PAGE_SIZE;
  const chosen = typeof states === 'function' ? firstOf(states(after), key, size + 1) : inOrder(states, key, after, size);
  const items: V[] = [];
  let bytes = 0;
  let i = 0;
  for (; i < chosen.length && items.length < size; i++) {
    const v = render(chosen[i]!.s);
    const b = Buffer.byteLength(JSON.stringify(v)) + 1;
    if (bytes + b > maxBytes) {
      if (items.length === 0) {
        throw virtError('operation-failed', `the view of '${chosen[i]!.k[0]}' is ${b} bytes, more than one reply may carry (${maxBytes}); list past it with the cursor given`, {
          cursor: encodeCursor(chosen[i]!.k),
        });
      }
      break;
    }
    items.push(v);
    bytes += b;
  }
  // `chosen` holds one more than a page when there is more: reaching it means a next page.
  const more = i < chosen.length;
  return more ? { items, next: encodeCursor(chosen[i - 1]!.k) } : { items };
};

const firstOf = <S>(ordered: Iterable<S>, key: (s: S) => string[], count: number): Array<{ k: string[]; s: S }> => {
  const out: Array<{ k: string[]; s: S }> = [];
  if (count <= 0) return out;
  for (const s of ordered) {
    out.push({ k: key(s), s });
    if (out.length >= count) break;
  }
  return out;
};

/** The candidates after `after`, the page's worth and one more in key order. */
const inOrder = <S>(states: Iterable<S>, key: (s: S) => string[], after: string[] | null, size: number): Array<{ k: string[]; s: S }> => {
  const candidates: Array<{ k: string[]; s: S }> = [];
  for (const s of states) {
    const k = key(s);
    if (!after || compareKeys(k, after) > 0) candidates.push({ k, s });
  }
  // Only the page's worth of the smallest keys needs sorting: select them first when far more remain.
  return candidates.length > size * 4 ? smallest(candidates, size + 1) : candidates.sort((a, b) => compareKeys(a.k, b.k)).slice(0, size + 1);
};

/** The `count` smallest candidates in order, without sorting all of them. */
const smallest = <T extends { k: string[] }>(all: T[], count: number): T[] => {
  const out: T[] = [];
  for (const c of all) {
    if (out.length === count && compareKeys(c.k, out[count - 1]!.k) >= 0) continue;
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(out[mid]!.k, c.k) < 0) lo = mid + 1;
      else hi = mid;
    }
    out.splice(lo, 0, c);
    if (out.length > count) out.pop();
  }
  return out;
};
