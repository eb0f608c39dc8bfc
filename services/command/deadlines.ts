import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { toRecordedCommit, type RecordedCommit } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';
import { DEADLINE_CHECKPOINTS } from '../../platform/provision.ts';

/** An operation in flight; `seq` is where its intent is in the log (absent in checkpoints of older versions). */
const Pending = z.object({ aggregateId: z.string(), taskId: z.string(), deadline: z.number(), correlationId: z.string(), seq: z.number().int().positive().optional() });
type Pending = z.infer<typeof Pending>;
/** What the keeper folded from the log up to `seq`. */
const Checkpoint = z.object({ seq: z.number().int().nonnegative(), pending: z.array(Pending) });

/** Records the missed deadline of one task as the command `expire:<taskId>` on its aggregate. */
export type Expire = (aggregateId: string, taskId: string, meta: CommandMeta) => Promise<unknown>;

/** What is done for an operation still in flight `afterMs` after this keeper read its intent (or found it in flight when it read the log at start). */
export interface Backstop {
  afterMs: number;
  run(p: Pending): Promise<void>;
}

/** How long after a deadline the keeper records it: the deciders treat `deadline <= now` as missed. */
const AFTER_DEADLINE_MS = 100;
const RETRY_MS = 1000;
const CHECKPOINT_EVERY_MS = 30_000;

/** `ev.<type>.<id>` -> `<id>`. */
const aggregateOf = (subject: string) => subject.slice(subject.indexOf('.', 3) + 1);

export const expireMeta = (taskId: string, correlationId: string, now = new Date()): CommandMeta => ({
  commandId: `expire:${taskId}`,
  actor: 'virtplane:deadline',
  correlationId,
  causationId: taskId,
  traceContext: {},
  now,
});

/**
 * Knows every operation still in flight from the log, not from what this process dispatched: it
 * reads one aggregate type's commits from the start (an intent is an event with a deadline, and any
 * event naming its task id settles it) and records each missed deadline as `expire:<taskId>`. Every
 * replica runs one; the command id makes a second recording a duplicate, and the decider makes an
 * expiry of an operation no longer pending a no-op, so replicas firing together record nothing twice.
 * After a restart the keeper reads the log again, so nothing depends on the process that dispatched;
 * it starts from the last checkpoint any replica left (a position and what was in flight there).
 */
export class DeadlineKeeper {
  private readonly pending = new Map<string, Pending>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly backstops = new Map<string, NodeJS.Timeout>();
  private messages: ConsumerMessages | null = null;
  private reading: Promise<void> = Promise.resolve();
  /** Timers wait until the log is read up to where it was at start, so nothing settled later fires. */
  private caughtUp = false;
  private stopped = false;
  private readonly followers: Array<(commit: RecordedCommit) => void> = [];
  /** The last sequence folded, and the last one saved as a checkpoint. */
  private position = 0;
  private saved = 0;
  private checkpoints: KV | null = null;
  private saving: NodeJS.Timeout | null = null;
  /** Each aggregate's newest commit folded; only whole when the keeper read the log from its start. */
  private readonly lastCommits = new Map<string, number>();
  private fromStart = false;
  private readonly waiters: Array<{ seq: number; resolve: (reached: boolean) => void }> = [];
  private readonly settleWaiters = new Map<string, Array<(settled: boolean) => void>>();

  constructor(
    private readonly n: Nats,
    /** The aggregate type's subjects, e.g. `ev.domain.>`. */
    private readonly filterSubject: string,
    private readonly expire: Expire,
    private readonly log: Logger,
    private readonly backstop?: Backstop,
  ) {}

  private get checkpointKey(): string {
    return this.filterSubject.replace(/\.>$/, '');
  }

  /**
   * Hands every commit this keeper reads to `fold` as well, from the log's start, so a second reader of
   * the same commits in this process (the host monitor's fold of every domain) costs the server
   * nothing: one delivery per commit instead of two. Called before `start`. The keeper then reads from
   * the log's start too, folding what is in flight afresh instead of resuming from a checkpoint; what
   * it finds is the same, since the checkpoint is only a fold of the same commits.
   */
  follow(fold: (commit: RecordedCommit) => void): void {
    this.followers.push(fold);
  }

  async start(): Promise<void> {
    if (this.followers.length === 0) await this.resume();
    else await this.openCheckpoints().catch((e) => this.log.warn('no bucket for deadline checkpoints; none will be saved', { error: String(e) }));
    this.fromStart = this.position === 0;
    this.messages = await this.open();
    this.reading = this.read(this.messages);
    this.saving = setInterval(() => void this.checkpoint(), CHECKPOINT_EVERY_MS);
    this.saving.unref();
  }

  /** An ordered consumer from after the last commit folded: nothing to clean up on the server, and it is remade after a server restart. */
  private async open(): Promise<ConsumerMessages> {
    const consumer = await this.n.js.consumers.get(STREAMS.events, {
      filter_subjects: this.filterSubject,
      ...(this.position > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.position + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const { num_pending } = await consumer.info();
    if (num_pending === 0 && !this.caughtUp) this.catchUp();
    return consumer.consume();
  }

  private async read(first: ConsumerMessages): Promise<void> {
    let messages = first;
    for (;;) {
      try {
        for await (const m of messages) {
          this.take(m.seq, m.subject, m.data);
          this.position = m.seq;
          if (this.waiters.length > 0) this.wakeWaiters();
          if (!this.caughtUp && m.info.pending === 0) this.catchUp();
        }
      } catch (e) {
        if (!this.stopped) this.log.warn('deadline keeper lost its place in the log; reading on from where it was', { seq: this.position, error: String(e) });
      }
      // The reader ended without being stopped (its stream gone a while, a consumer the server lost):
      // the followers depend on it too, so it goes on from the last commit folded.
      if (this.stopped || this.followers.length === 0) return;
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        if (this.stopped) return;
        try {
          messages = this.messages = await this.open();
          break;
        } catch (e) {
          this.log.warn('deadline keeper could not read the log again; trying again', { error: String(e) });
        }
      }
    }
  }

  private take(seq: number, subject: string, data: Uint8Array): void {
    let commit: RecordedCommit;
    this.lastCommits.set(aggregateOf(subject), seq);
    try {
      commit = toRecordedCommit({ seq, subject, data });
      this.apply(commit);
    } catch (e) {
      this.log.error('unreadable commit skipped by the deadline keeper', { seq, error: String(e) });
      return;
    }
    for (const fold of this.followers) {
      try {
        fold(commit);
      } catch (e) {
        this.log.error('a reader of the log failed on a commit', { seq, error: String(e) });
      }
    }
  }

  /** Takes up from the last checkpoint, unless it is unreadable or ahead of the log (a log made anew). */
  private async resume(): Promise<void> {
    try {
      await this.openCheckpoints();
      if (!this.checkpoints) return;
      const entry = await this.checkpoints.get(this.checkpointKey);
      if (!entry || entry.operation !== 'PUT') return;
      const cp = Checkpoint.safeParse(entry.json());
      const { state } = await this.n.jsm.streams.info(STREAMS.events);
      if (!cp.success || cp.data.seq > state.last_seq) return;
      for (const p of cp.data.pending) this.pending.set(p.taskId, p);
      this.position = this.saved = cp.data.seq;
    } catch (e) {
      this.log.warn('no deadline checkpoint to resume from; reading the log from its start', { error: String(e) });
    }
  }

  private async openCheckpoints(): Promise<void> {
    this.checkpoints = await this.n.kvm.open(DEADLINE_CHECKPOINTS);
  }

  private async checkpoint(): Promise<void> {
    if (!this.caughtUp || !this.checkpoints || this.position <= this.saved) return;
    const cp = { seq: this.position, pending: [...this.pending.values()] };
    try {
      await this.checkpoints.put(this.checkpointKey, encodeJson(cp));
      this.saved = cp.seq;
    } catch (e) {
      this.log.warn('could not save a deadline checkpoint', { error: String(e) });
    }
  }

  /** Operations this keeper knows to be in flight, by task id. */
  inFlight(): ReadonlyMap<string, Pending> {
    return this.pending;
  }

  /**
   * The sequence of the aggregate's newest commit folded so far (0: none), or undefined when this
   * keeper did not read the log from its start and so cannot say.
   */
  lastCommitOf(aggregateId: string): number | undefined {
    return this.fromStart ? (this.lastCommits.get(aggregateId) ?? 0) : undefined;
  }

  /** Resolves true once everything up to `seq` is folded, false if that takes longer than `timeoutMs`. */
  reach(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.position >= seq) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, timeoutMs).unref();
      const waiter = {
        seq,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          resolve(reached);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Resolves true once the operation whose intent is the commit `intentSeq` has settled (an event
   * naming its task is folded), false if that takes longer than `timeoutMs`.
   */
  settled(taskId: string, intentSeq: number, timeoutMs: number): Promise<boolean> {
    if (this.position >= intentSeq && !this.pending.has(taskId)) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const left = this.settleWaiters.get(taskId)?.filter((r) => r !== done) ?? [];
        if (left.length > 0) this.settleWaiters.set(taskId, left);
        else this.settleWaiters.delete(taskId);
        resolve(false);
      }, timeoutMs).unref();
      const done = (settled: boolean) => {
        clearTimeout(timer);
        resolve(settled);
      };
      this.settleWaiters.set(taskId, [...(this.settleWaiters.get(taskId) ?? []), done]);
    });
  }

  private wakeWaiters(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.seq > this.position) continue;
      this.waiters.splice(i, 1);
      w.resolve(true);
    }
  }

  private apply(commit: RecordedCommit): void {
    const aggregateId = aggregateOf(commit.subject);
    for (const e of commit.events) {
      const data = (e.data ?? {}) as { deadline?: unknown; taskId?: unknown };
      if (typeof data.taskId === 'string') this.settle(data.taskId);
      if (typeof data.deadline === 'string') {
        const p = { aggregateId, taskId: e.id, deadline: Date.parse(data.deadline), correlationId: e.correlationId, seq: commit.seq };
        this.pending.set(p.taskId, p);
        if (this.caughtUp) {
          this.arm(p, p.deadline + AFTER_DEADLINE_MS);
          this.armBackstop(p, Date.now() + (this.backstop?.afterMs ?? 0));
        }
      }
    }
  }

  /** An event naming the task is folded: the operation is over. */
  private settle(taskId: string): void {
    const waiting = this.settleWaiters.get(taskId);
    if (waiting) {
      this.settleWaiters.delete(taskId);
      for (const resolve of waiting) resolve(true);
    }
    this.forget(taskId);
  }

  /** Nothing more to do for the task here: its settling event, if any, is still to be folded. */
  private forget(taskId: string): void {
    this.pending.delete(taskId);
    clearTimeout(this.timers.get(taskId));
    this.timers.delete(taskId);
    clearTimeout(this.backstops.get(taskId));
    this.backstops.delete(taskId);
  }

  private catchUp(): void {
    this.caughtUp = true;
    for (const p of this.pending.values()) {
      this.arm(p, p.deadline + AFTER_DEADLINE_MS);
      // Whoever recorded it may have stopped before doing its part: nothing says it did.
      this.armBackstop(p, Date.now());
    }
  }

  private armBackstop(p: Pending, at: number): void {
    if (!this.backstop || this.stopped || at >= p.deadline) return;
    const backstop = this.backstop;
    clearTimeout(this.backstops.get(p.taskId));
    const timer = setTimeout(() => {
      this.backstops.delete(p.taskId);
      if (!this.pending.has(p.taskId) || this.stopped) return;
      backstop.run(p).catch((e) => {
        this.log.warn('could not act on an operation still in flight; trying again', { taskId: p.taskId, error: String(e) });
        if (this.pending.has(p.taskId)) this.armBackstop(p, Date.now() + Math.max(RETRY_MS, backstop.afterMs));
      });
    }, Math.max(0, at - Date.now()));
    timer.unref();
    this.backstops.set(p.taskId, timer);
  }

  private arm(p: Pending, at: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(p.taskId));
    const timer = setTimeout(() => void this.fire(p), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
    timer.unref();
    this.timers.set(p.taskId, timer);
  }

  private async fire(p: Pending): Promise<void> {
    this.timers.delete(p.taskId);
    if (!this.pending.has(p.taskId) || this.stopped) return;
    try {
      await this.expire(p.aggregateId, p.taskId, expireMeta(p.taskId, p.correlationId));
      // Recorded now, or found no longer pending by the decider: either way nothing is left to do.
      this.forget(p.taskId);
    } catch (e) {
      if (isVirtError(e) && e.code !== 'timeout' && e.code !== 'operation-failed') {
        // The aggregate is gone or cannot take the command: nothing is in flight to record.
        this.log.info('a missed deadline needs no record', { taskId: p.taskId, reason: e.message });
        this.forget(p.taskId);
        return;
      }
      this.log.warn('could not record a missed deadline; trying again', { taskId: p.taskId, error: String(e) });
      if (this.pending.has(p.taskId)) this.arm(p, Date.now() + RETRY_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.saving) clearInterval(this.saving);
    await this.checkpoint();
    for (const t of [...this.timers.values(), ...this.backstops.values()]) clearTimeout(t);
    for (const w of this.waiters.splice(0)) w.resolve(false);
    for (const list of this.settleWaiters.values()) for (const resolve of list) resolve(false);
    this.settleWaiters.clear();
    this.timers.clear();
    this.backstops.clear();
    await this.messages?.close();
    await this.reading;
  }
}
