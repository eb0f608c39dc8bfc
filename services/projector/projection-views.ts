import type { KV } from '@nats-io/kv';
import type { RecordedCommit } from '../../platform/event-store.ts';
import { readBucket } from '../../platform/kv-mirror.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { VersionedKvWriter } from '../../platform/ordered-kv-writer.ts';
import { applyCommit, type Applied, type Projection } from './projection.ts';
import { SortedIndex } from './sorted-index.ts';

/**
 * How long a view's first change waits for later ones before it is stored: restarts alone read the
 * stored views, and resume from the stored position, so a store later by this much costs a restart
 * that much more of the log to fold again and nothing else, while a domain changed several times
 * within it (defined, started, stopped) is stored once.
 */
const VIEW_LINGER_MS = 1000;

/**
 * The running side of one projection: every aggregate's folded state in memory (queries read it),
 * the same states in the projection's KV bucket (restarts load them), and a name index.
 */
export class ProjectionViews<S extends { version: number }> {
  /** Every aggregate folded so far, removed ones included: the fold continues from them. */
  private readonly states = new Map<string, S>();
  private readonly byName = new Map<string, string>();
  /** Ids by group (a domain's host): every host agent asks for its own domains, and a scan of all per ask grows with the fleet twice over. */
  private readonly byGroup = new Map<string, Set<string>>();
  private readonly writer: VersionedKvWriter<S>;
  /** Visible states in list order (name, then id), for projections with names. */
  private readonly order = new SortedIndex(() => this.listed());

  private constructor(
    readonly projection: Projection<S>,
    private readonly kv: KV,
    onRetry: (key: string, e: unknown) => void,
  ) {
    // Queries answer from memory; the bucket is what a restart loads, so a view may wait a moment
    // for the commit that usually follows it (an operation's outcome after its intent).
    this.writer = new VersionedKvWriter<S>(kv, onRetry, VIEW_LINGER_MS);
  }

  static async open<S extends { version: number }>(n: Nats, p: Projection<S>, onRetry: (key: string, e: unknown) => void): Promise<ProjectionViews<S>> {
    return new ProjectionViews(p, await n.kvm.open(p.bucket), onRetry);
  }

  handles(subject: string): boolean {
    return subject.startsWith(this.projection.prefix);
  }

  /** Loads the stored states: each is the fold of its aggregate's commits up to its version. */
  async load(n: Nats): Promise<void> {
    this.order.invalidate();
    for (const e of await readBucket(n, this.projection.bucket)) {
      if (!e.value) {
        this.writer.remember(e.key, e.revision, -1);
        continue;
      }
      const s = decodeJson(e.value) as S;
      this.writer.remember(e.key, e.revision, s.version);
      this.set(e.key, s);
    }
  }

  /** Empties the bucket for a rebuild. */
  async reset(): Promise<void> {
    for await (const key of await this.kv.keys()) await this.kv.purge(key);
    this.states.clear();
    this.byName.clear();
    this.byGroup.clear();
    this.order.invalidate();
  }

  /** Folds one commit into memory; the caller stores the result with `store` when it may. */
  apply(c: RecordedCommit): Applied<S> | null {
    const applied = applyCommit(this.projection, this.states.get(c.subject.slice(this.projection.prefix.length)), c);
    if (applied) this.set(applied.id, applied.state);
    return applied;
  }

  /** Resolves once the bucket holds this state of the aggregate, or a newer one. */
  store(a: Applied<S>): Promise<void> {
    return this.writer.write(a.id, a.state);
  }

  /** The aggregate's state if queries may see it. */
  get(id: string): S | undefined {
    const s = this.states.get(id);
    return s && this.projection.visible(s) ? s : undefined;
  }

  /** The state of the aggregate, seen or not: how far the fold went for it. */
  raw(id: string): S | undefined {
    return this.states.get(id);
  }

  idByName(name: string): string | undefined {
    return this.byName.get(name);
  }

  *values(): IterableIterator<S> {
    for (const s of this.states.values()) if (this.projection.visible(s)) yield s;
  }

  /**
   * The visible states in list order (name, then id) after the key `after`: a page of a listing
   * costs its own size, not the fleet's. Projections without names list in no particular order.
   */
  *inOrder(after: string[] | null): IterableIterator<S> {
    if (!this.projection.name) {
      yield* this.values();
      return;
    }
    for (const id of this.order.from(after)) yield this.states.get(id)!;
  }

  /** The visible states of one group; every visible state when the projection has no groups. */
  *valuesOf(group: string): IterableIterator<S> {
    if (!this.projection.group) {
      yield* this.values();
      return;
    }
    for (const id of this.byGroup.get(group) ?? []) {
      const s = this.states.get(id);
      if (s && this.projection.visible(s)) yield s;
    }
  }

  /** Highest version among the states: part of how far the views read the log. */
  maxVersion(): number {
    let max = 0;
    for (const s of this.states.values()) max = Math.max(max, s.version);
    return max;
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  stop(): void {
    this.writer.stop();
  }

  private set(id: string, s: S): void {
    const name = this.projection.name;
    const prev = this.states.get(id);
    this.states.set(id, s);
    this.regroup(id, prev, s);
    if (!name) return;
    const was = prev && this.projection.visible(prev) ? [name(prev), id] : undefined;
    const is = this.projection.visible(s) ? [name(s), id] : undefined;
    if (!was || !is || was[0] !== is[0]) this.order.move(id, was, is);
    if (prev && this.byName.get(name(prev)) === id && (name(prev) !== name(s) || !this.projection.visible(s))) this.byName.delete(name(prev));
    if (this.projection.visible(s)) this.byName.set(name(s), id);
  }

  private *listed(): IterableIterator<{ k: string[]; id: string }> {
    const name = this.projection.name;
    if (!name) return;
    for (const [id, s] of this.states) if (this.projection.visible(s)) yield { k: [name(s), id], id };
  }

  private regroup(id: string, prev: S | undefined, s: S): void {
    const group = this.projection.group;
    if (!group) return;
    const was = prev ? group(prev) : undefined;
    const is = group(s);
    if (was === is) return;
    if (was !== undefined) {
      const ids = this.byGroup.get(was);
      ids?.delete(id);
      if (ids?.size === 0) this.byGroup.delete(was);
    }
    const ids = this.byGroup.get(is) ?? new Set<string>();
    ids.add(id);
    this.byGroup.set(is, ids);
  }
}
