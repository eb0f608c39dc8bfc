import { randomUUID } from 'node:crypto';
import { stamp, type CommandMeta, type Envelope } from '../../contracts/envelope.ts';
import { subjects, type AggregateType } from '../../contracts/subjects.ts';
import { ConcurrencyError, type EventStore, type RecordedEvent } from '../../platform/event-store.ts';

/**
 * Load -> decide -> append for one aggregate type, with optimistic concurrency: state comes from a
 * cache when it can, the append names the version the decision was made against, and a lost race is
 * decided again against fresh state.
 */

export interface AggregateKind<S extends { version: number }, E extends { type: string; data: unknown }> {
  type: AggregateType;
  initial(id: string): S;
  evolve(s: S, e: Envelope<E>): S;
  /** The version an earlier append of this command produced, if the state remembers it. */
  appliedVersion?(s: S, commandId: string): number | undefined;
}

export interface Outcome<S> {
  state: S;
  version: number;
  /** The command had been applied before (a retry): nothing new was appended. */
  duplicate: boolean;
  events: RecordedEvent[];
}

const MAX_ATTEMPTS = 20;
const CACHE_LIMIT = 20_000;

/** What can say, as freshly as a read of the log, which commit is an aggregate's newest (0: none); undefined: read it. */
export interface Freshness {
  lastCommit(id: string): Promise<number | undefined>;
}

export class Repository<S extends { version: number }, E extends { type: string; data: unknown }> {
  private readonly cache = new Map<string, S>();
  private fold: Freshness | null = null;

  constructor(
    private readonly store: EventStore,
    private readonly kind: AggregateKind<S, E>,
    /**
     * What follows every append before its command is answered (the domain's tasks are published
     * here). It must not throw: the events are recorded whatever it does.
     */
    private readonly committed?: (before: S, events: RecordedEvent[]) => Promise<void>,
  ) {}

  /**
   * The state as fresh as a read of the log. With a fold of every commit attached (`vouchedBy`) that
   * is mostly no read at all: the fold says which commit is the aggregate's newest, and the cache
   * usually holds the state at it.
   */
  async load(id: string): Promise<S> {
    const last = this.fold ? await this.fold.lastCommit(id) : undefined;
    return last === undefined ? this.read(id) : this.loadAsOf(id, last);
  }

  /**
   * The state at least as of `lastCommit`, a commit on the aggregate (0: none) that something reading
   * every commit has seen: from the cache when the cache has got that far, read otherwise.
   */
  async loadAsOf(id: string, lastCommit: number): Promise<S> {
    const cached = this.cache.get(id);
    if (cached && cached.version >= lastCommit) return cached;
    if (!cached && lastCommit === 0) return this.kind.initial(id);
    return this.read(id);
  }

  /** Lets `fold` vouch for the newest commit of each aggregate (services/command/fresh-reads.ts). */
  vouchedBy(fold: Freshness): void {
    this.fold = fold;
  }

  /** Reads what the log holds after the cached state. */
  private async read(id: string): Promise<S> {
    const cached = this.cache.get(id);
    const base = cached ?? this.kind.initial(id);
    const commits = await this.store.read(subjects.aggregate(this.kind.type, id), base.version);
    const state = commits.reduce(
      (s, c) => c.events.reduce((acc, e) => this.kind.evolve(acc, e as unknown as Envelope<E>), s),
      base,
    );
    this.remember(id, state);
    return state;
  }

  async execute(id: string, meta: CommandMeta, decide: (s: S) => E[]): Promise<Outcome<S>> {
    const cached = this.cache.get(id);
    let state = cached ?? (await this.load(id));
    let fresh = cached === undefined;
    for (let attempt = 1; ; attempt++) {
      const applied = this.kind.appliedVersion?.(state, meta.commandId);
      if (applied !== undefined) return { state, version: applied, duplicate: true, events: [] };
      let bodies: E[];
      try {
        bodies = decide(state);
      } catch (e) {
        // A refusal is only final against the newest state: a cached one may miss what another
        // request (or replica) has just recorded.
        if (fresh) throw e;
        state = await this.load(id);
        fresh = true;
        continue;
      }
      if (bodies.length === 0) {
        if (fresh) return { state, version: state.version, duplicate: false, events: [] };
        state = await this.load(id);
        fresh = true;
        continue;
      }
      const stored = stamp(this.kind.type, id, meta, bodies, randomUUID);
      try {
        const res = await this.store.append(
          subjects.aggregate(this.kind.type, id),
          meta.commandId,
          stored,
          state.version,
          meta.traceContext.traceparent,
        );
        if (res.duplicate) {
          this.cache.delete(id);
          return { state: await this.load(id), version: res.version, duplicate: true, events: [] };
        }
        const recorded = stored.map((e) => ({ ...e, version: res.version }));
        const next = recorded.reduce((s, e) => this.kind.evolve(s, e as unknown as Envelope<E>), state);
        this.remember(id, next);
        await this.committed?.(state, recorded);
        return { state: next, version: res.version, duplicate: false, events: recorded };
      } catch (e) {
        if (!(e instanceof ConcurrencyError) || attempt >= MAX_ATTEMPTS) throw e;
        state = await this.load(id);
        fresh = true;
      }
    }
  }

  private remember(id: string, s: S) {
    this.cache.delete(id);
    this.cache.set(id, s);
    if (this.cache.size > CACHE_LIMIT) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }
}
