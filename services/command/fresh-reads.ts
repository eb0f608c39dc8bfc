import type { EventStore } from '../../platform/event-store.ts';
import type { Freshness } from './repository.ts';

/** Whoever reads every commit of the aggregate type in order: the deadline keeper. */
export interface CommitFold {
  /** The aggregate's newest commit folded so far (0: none); undefined when the fold cannot say. */
  lastCommitOf(aggregateId: string): number | undefined;
  /** True once everything up to `seq` is folded; false when that takes longer than `timeoutMs`. */
  reach(seq: number, timeoutMs: number): Promise<boolean>;
}

/** How long a load waits for the fold to reach the log's head before it reads the aggregate itself. */
const FOLD_WAIT_MS = 1000;

/**
 * Which commit is an aggregate's newest, exactly as fresh as a read of the log, without a read per
 * aggregate: one look at the newest commit of the type, begun after the question was asked, serves
 * every question asked before it began. Once the process's fold of every commit (the deadline
 * keeper's) has got that far, it knows each aggregate's newest commit up to that point, and the
 * repository's cache holds the state at that commit whenever this process recorded or read it last.
 * So a decision taken on it sees every commit recorded before the question, as a read would: a
 * host's claim sees a destroy, or a move off a lost host, recorded before the host asked. With many
 * questions at once (a busy host's claims, defines side by side) one look serves them all. What the
 * fold cannot vouch for in time is read from the log as before.
 */
export class FreshReads implements Freshness {
  private current: Promise<number> | null = null;
  private queued: Promise<number> | null = null;

  constructor(
    private readonly store: EventStore,
    /** The type's subjects, e.g. `ev.domain.>`. */
    private readonly filter: string,
    private readonly fold: CommitFold,
  ) {}

  async lastCommit(id: string): Promise<number | undefined> {
    const head = await this.head().catch(() => null);
    if (head === null || !(await this.fold.reach(head, FOLD_WAIT_MS))) return undefined;
    return this.fold.lastCommitOf(id);
  }

  /**
   * The newest commit's sequence, from a look begun after this call: a look already under way may
   * have been answered before a commit the caller must see, so callers arriving meanwhile share the
   * next one.
   */
  private head(): Promise<number> {
    if (!this.current) {
      const look: Promise<number> = this.store.lastSeqOn(this.filter).finally(() => {
        if (this.current === look) this.current = null;
      });
      this.current = look;
      return look;
    }
    this.queued ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.head();
      });
    return this.queued;
  }
}
