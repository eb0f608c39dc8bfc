import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { toRecordedCommit, type RecordedCommit } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';

interface Pending {
  aggregateId: string;
  taskId: string;
  deadline: number;
  correlationId: string;
}

/** Records the missed deadline of one task as the command `expire:<taskId>` on its aggregate. */
export type Expire = (aggregateId: string, taskId: string, meta: CommandMeta) => Promise<unknown>;

/** How long after a deadline the keeper records it: the deciders treat `deadline <= now` as missed. */
const AFTER_DEADLINE_MS = 100;
const RETRY_MS = 1000;

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
 * After a restart the keeper reads the log again, so nothing depends on the process that dispatched.
 */
export class DeadlineKeeper {
  private readonly pending = new Map<string, Pending>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private messages: ConsumerMessages | null = null;
  private reading: Promise<void> = Promise.resolve();
  /** Timers wait until the log is read up to where it was at start, so nothing settled later fires. */
  private caughtUp = false;
  private stopped = false;

  constructor(
    private readonly n: Nats,
    /** The aggregate type's subjects, e.g. `ev.domain.>`. */
    private readonly filterSubject: string,
    private readonly expire: Expire,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    // An ordered consumer: nothing to clean up on the server, and it is remade after a server restart.
    const consumer = await this.n.js.consumers.get(STREAMS.events, {
      filter_subjects: this.filterSubject,
      deliver_policy: DeliverPolicy.All,
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
        if (!this.caughtUp && m.info.pending === 0) this.catchUp();
      }
    })();
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
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.messages?.close();
    await this.reading;
  }
}
