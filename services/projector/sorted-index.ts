import { compareKeys } from './paging.ts';

/**
 * Ids kept in list order by key (name, then id), so one page of a listing is a binary search and the
 * page's worth of entries after it, not a scan and selection over the whole fleet for every page:
 * listing 100,000 domains page by page was quadratic. Built by one sort when first read (a restart
 * loads every state at once), kept up to date one change at a time after that.
 */
export class SortedIndex {
  private entries: Array<{ k: string[]; id: string }> | null = null;

  constructor(private readonly all: () => Iterable<{ k: string[]; id: string }>) {}

  /** Forget the order; the next read sorts everything again. */
  invalidate(): void {
    this.entries = null;
  }

  /** One entry changed: its old key (absent when it was not listed) becomes its new one (absent when no longer listed). */
  move(id: string, was: string[] | undefined, is: string[] | undefined): void {
    const e = this.entries;
    if (!e) return;
    if (was) {
      const i = this.search(was, e);
      if (i < e.length && e[i]!.id === id) e.splice(i, 1);
    }
    if (is) e.splice(this.search(is, e), 0, { k: is, id });
  }

  /** Ids in key order, starting after `after` (from the start when null). */
  *from(after: string[] | null): IterableIterator<string> {
    const e = this.sorted();
    for (let i = after ? this.upper(after, e) : 0; i < e.length; i++) yield e[i]!.id;
  }

  private sorted(): Array<{ k: string[]; id: string }> {
    if (!this.entries) this.entries = [...this.all()].sort((a, b) => compareKeys(a.k, b.k));
    return this.entries;
  }

  /** The first position whose key is not below `k`. */
  private search(k: string[], e: Array<{ k: string[] }>): number {
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(e[mid]!.k, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first position whose key is above `k`. */
  private upper(k: string[], e: Array<{ k: string[] }>): number {
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(e[mid]!.k, k) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
