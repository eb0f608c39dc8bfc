import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { z } from 'zod';
import { durableConsumer, type DurableConsumerOptions } from '../../platform/durable-consumer.ts';
import { KeyedQueue } from '../../platform/keyed-queue.ts';
import { isVirtError, type ErrorCode } from '../../contracts/errors.ts';
import type { Logger } from '../../platform/log.ts';
import { call } from '../../platform/rpc.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';

/** Longer than the command service's bounded wait for the log, so a slow election is waited out. */
const REPORT_TIMEOUT_MS = 30_000;

/** Errors that say the report was not recorded (yet), not that it was refused. */
const NOT_RECORDED = new Set<ErrorCode>(['timeout', 'operation-failed', 'internal-error', 'conflict']);

export interface TaskWorkerOptions<T> extends DurableConsumerOptions {
  schema: z.ZodType<T>;
  /** Tasks with the same key run one after another in arrival order; other keys run side by side. */
  key: (task: T) => string;
  /** Pulled ahead of processing. */
  batch: number;
  what: string;
}

/**
 * Takes a host's tasks from its durable consumer: a malformed task is dropped, a task whose handling
 * fails comes back two seconds later, and on stop nothing unfinished is acknowledged. `signal` aborts
 * running handlers when the stop's grace period runs out.
 */
export class TaskWorker<T> {
  private messages: ConsumerMessages | null = null;
  private consuming: Promise<void> = Promise.resolve();
  private readonly queues = new KeyedQueue();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopping = false;
  readonly signal = this.abort.signal;

  constructor(
    private readonly n: Nats,
    private readonly opts: TaskWorkerOptions<T>,
    private readonly handle: (task: T, m: JsMsg) => Promise<void>,
    private readonly log: Logger,
  ) {}

  get isStopping(): boolean {
    return this.stopping;
  }

  async start(): Promise<void> {
    await this.consume(await durableConsumer(this.n, this.opts));
  }

  private async consume(consumer: Consumer): Promise<void> {
    const messages = await consumer.consume({ max_messages: this.opts.batch });
    this.messages = messages;
    void this.watchConsumer(messages);
    this.consuming = (async () => {
      for await (const m of messages) {
        if (this.stopping) break;
        const p = this.take(m);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
      }
    })();
  }

  /**
   * A consumer the server lost (a store wiped, an operator who removed it) is made again under the
   * same name, and pulled from afresh rather than after the old pull's heartbeat runs out. Tasks in
   * flight keep running; their acknowledgements went to the old consumer, so they come back, and
   * the journal answers them with the outcome already reported.
   */
  private async watchConsumer(messages: ConsumerMessages): Promise<void> {
    for await (const s of messages.status()) {
      if (this.stopping || this.messages !== messages) return;
      if (s.type !== 'consumer_not_found' && s.type !== 'consumer_deleted') continue;
      // Give the server a moment to finish the removal: 2.9 fails a delete racing a create of the same name.
      await new Promise((r) => setTimeout(r, 1000));
      const consumer = await this.ensureConsumer();
      if (!consumer || this.stopping || this.messages !== messages) continue;
      this.log.warn(`the ${this.opts.what} consumer was lost; consuming from it anew`);
      await messages.close();
      await this.consume(consumer);
      return;
    }
  }

  /** Creates the consumer if the server no longer has it; safe to call at any time. */
  async ensureConsumer(): Promise<Consumer | null> {
    try {
      return await durableConsumer(this.n, this.opts);
    } catch (e) {
      this.log.warn(`could not recreate the ${this.opts.what} consumer; will try again`, { error: String(e) });
      return null;
    }
  }

  private take(m: JsMsg): Promise<void> {
    const parsed = this.opts.schema.safeParse(decodeJson(m.data));
    if (!parsed.success) {
      this.log.error(`dropping a malformed ${this.opts.what}`, { seq: m.seq, error: String(parsed.error) });
      m.term();
      return Promise.resolve();
    }
    const task = parsed.data;
    return this.queues
      .run(this.opts.key(task), async () => {
        if (this.stopping) {
          m.nak();
          return;
        }
        await this.handle(task, m);
      })
      .catch((e) => {
        this.log.error(`${this.opts.what} failed to run; it will be redelivered`, { seq: m.seq, error: String(e) });
        if (!this.stopping) m.nak(2000);
      });
  }

  /**
   * Sends a report until the command service has it: a report is the only record of what the host
   * did. Only a refusal of the report itself is final; a failure to record it (no reply, no one
   * answering, the log unavailable while the cluster elects a leader) is sent again under the same
   * report id, which records it once. While stopping it gives up after a few tries, and the
   * unacknowledged task brings the report back after a restart. `send` is how one attempt goes out.
   */
  async report<R extends { reportId: string }>(subject: string, r: R, send: (r: R, timeoutMs: number) => Promise<unknown> = (x, t) => call(this.n.nc, subject, x, t)): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await send(r, this.stopping ? 5_000 : REPORT_TIMEOUT_MS);
        return;
      } catch (e) {
        if (isVirtError(e) && !NOT_RECORDED.has(e.code)) {
          this.log.warn(`${this.opts.what} report refused`, { reportId: r.reportId, error: e.message });
          return;
        }
        if (this.stopping && attempt > 3) throw e;
        await new Promise((res) => setTimeout(res, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  }

  /** Stops taking tasks and lets running ones finish; a task cut short is not acknowledged and comes back. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await this.messages?.close();
    await this.consuming;
    const timer = setTimeout(() => this.abort.abort(), graceMs);
    await Promise.all([...this.inFlight]);
    clearTimeout(timer);
  }
}
