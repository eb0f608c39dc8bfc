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

const Pending = z.object({ aggregateId: z.string(), taskId: z.string(), deadline: z.number(), correlationId: z.string() });
type Pending = z.infer<typeof Pending>;
/** What the keeper folded from the log up to `seq`. */
const Checkpoint = z.object({ seq: z.number().int().nonnegative(), pending: z.array(Pending) });

/** Records the missed deadline of one task as the command `expire:<taskId>` on its aggregate. */
export type Expire = (aggregateId: string, taskId: string, meta: CommandMeta) => Promise<unknown>;

/** How long after a deadline the keeper records it: the deciders treat `deadline <= now` as missed. */
const AFTER_DEADLINE_MS = 100;
const RETRY_MS = 1000;
const CHECKPOINT_EVERY_MS = 30_000;

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
  private messages: ConsumerMessages | null = null;
  private reading: Promise<void> = Promise.resolve();
  /** Timers wait until the log is read up to where it was at start, so nothing settled later fires. */
  private caughtUp = false;
  private stopped = false;
  /** The last sequence folded, and the last one saved as a checkpoint. */
  private position = 0;
  private saved = 0;
  private checkpoints: KV | null = null;
  private saving: NodeJS.Timeout | null = null;

  constructor(
    private readonly n: Nats,
    /** The aggregate type's subjects, e.g. `ev.domain.>`. */
    private readonly filterSubject: string,
    private readonly expire: Expire,
    private readonly log: Logger,
  ) {}

  private get checkpointKey(): string {
    return this.filterSubject.replace(/\.>$/, '');
  }

  async start(): Promise<void> {
    await this.resume();
    // An ordered consumer: nothing to clean up on the server, and it is remade after a server restart.
    const consumer = await this.n.js.consumers.get(STREAMS.events, {
      filter_subjects: this.filterSubject,
      ...(this.position > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.position + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const { num_pending } = await consumer.info();
    if (num_pending === 0) this.catchUp();
    this.messages = await consumer.consume();
    const messages = this.messages;
    this.reading = (async () => {
      for await (const m of messages) {
        try {
          this.apply(toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data }));
        } catch (e) {
          this.log.error('unreadable commit skipped by the deadline keeper', { seq: m.seq, error: String(e) });
        }
        this.position = m.seq;
        if (!this.caughtUp && m.info.pending === 0) this.catchUp();
      }
    })();
    this.saving = setInterval(() => void this.checkpoint(), CHECKPOINT_EVERY_MS);
    this.saving.unref();
  }

  /** Takes up from the last checkpoint, unless it is unreadable or ahead of the log (a log made anew). */
  private async resume(): Promise<void> {
    try {
      this.checkpoints = await this.n.kvm.open(DEADLINE_CHECKPOINTS);
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

  private apply(commit: RecordedCommit): void {
    const aggregateId = commit.subject.slice(commit.subject.indexOf('.', 3) + 1);
    for (const e of commit.events) {
      const data = (e.data ?? {}) as { deadline?: unknown; taskId?: unknown };
      if (typeof data.taskId === 'string') this.settle(data.taskId);
      if (typeof data.deadline === 'string') {
        const p = { aggregateId, taskId: e.id, deadline: Date.parse(data.deadline), correlationId: e.correlationId };
        this.pending.set(p.taskId, p);
        if (this.caughtUp) this.arm(p, p.deadline + AFTER_DEADLINE_MS);
      }
    }
  }

  private settle(taskId: string): void {
    this.pending.delete(taskId);
    clearTimeout(this.timers.get(taskId));
    this.timers.delete(taskId);
  }

  private catchUp(): void {
    this.caughtUp = true;
    for (const p of this.pending.values()) this.arm(p, p.deadline + AFTER_DEADLINE_MS);
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
      this.settle(p.taskId);
    } catch (e) {
      if (isVirtError(e) && e.code !== 'timeout' && e.code !== 'operation-failed') {
        // The aggregate is gone or cannot take the command: nothing is in flight to record.
        this.log.info('a missed deadline needs no record', { taskId: p.taskId, reason: e.message });
        this.settle(p.taskId);
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
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.messages?.close();
    await this.reading;
  }
}
