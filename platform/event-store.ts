import { DeliverPolicy, JetStreamApiError, jetstreamManager, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { Commit, type EventMeta } from '../contracts/envelope.ts';
import { STREAMS } from '../contracts/subjects.ts';
import { isWrongLastSequence, JS_ATTEMPT_TIMEOUT_MS, withJsRetry } from './js-retry.ts';
import { decodeJson, encodeJson, type Nats } from './nats.ts';

/**
 * The one event store. Each command's events are one message (a commit) on the aggregate's subject,
 * so they land together or not at all; the aggregate version is the stream sequence of its last
 * commit, and appends carry the version they were decided against. Every call waits out a cluster's
 * leader election (js-retry.ts) instead of failing: what it sends is safe to send again.
 */

export type StoredEvent = { type: string; data: unknown } & EventMeta;
export type RecordedEvent = StoredEvent & { version: number };

export interface RecordedCommit {
  seq: number;
  subject: string;
  commandId: string;
  previousVersion?: number;
  events: RecordedEvent[];
}

/** The aggregate moved on since the state the decision was made against. */
export class ConcurrencyError extends Error {
  override name = 'ConcurrencyError';
}

export interface AppendResult {
  version: number;
  /** The server had this command id already (inside the duplicate window): nothing was added. */
  duplicate: boolean;
}

export const toRecordedCommit = (m: Pick<StoredMsg, 'seq' | 'subject' | 'data'>): RecordedCommit => {
  const commit = Commit.parse(decodeJson(m.data));
  return {
    seq: m.seq,
    subject: m.subject,
    commandId: commit.commandId,
    ...(commit.previousVersion !== undefined ? { previousVersion: commit.previousVersion } : {}),
    events: commit.events.map((e) => ({ ...(e as StoredEvent), version: m.seq })),
  };
};

export class EventStore {
  /** The API with a short request timeout, so an attempt lost with a dead leader is soon sent again. */
  private readonly api: Promise<JetStreamManager>;

  constructor(
    private readonly n: Nats,
    private readonly stream: string = STREAMS.events,
  ) {
    this.api = jetstreamManager(n.nc, { timeout: JS_ATTEMPT_TIMEOUT_MS, checkAPI: false });
  }

  /**
   * Appends one commit if the subject's last sequence is still `expectedVersion` (0: no message yet).
   * The command id is the message id, so a retry inside the duplicate window adds nothing and
   * returns the first append's version. That is also what makes it safe to send again when an
   * attempt's outcome is unknown (its leader died before acknowledging): when the server then
   * reports a duplicate that is this very commit, the first attempt landed and this is its append.
   */
  async append(
    subject: string,
    commandId: string,
    events: StoredEvent[],
    expectedVersion: number,
    traceparent?: string,
  ): Promise<AppendResult> {
    const h = natsHeaders();
    if (traceparent) h.set('traceparent', traceparent);
    const body = encodeJson({ commandId, previousVersion: expectedVersion, events } satisfies Commit);
    let uncertain = false;
    try {
      const ack = await withJsRetry(
        `append to ${subject}`,
        () => this.n.js.publish(subject, body, { msgID: commandId, expect: { lastSubjectSequence: expectedVersion }, headers: h, timeout: JS_ATTEMPT_TIMEOUT_MS }),
        { onRetry: () => (uncertain = true), nc: this.n.nc },
      );
      if (ack.duplicate && uncertain && (await this.isCommit(ack.seq, events))) return { version: ack.seq, duplicate: false };
      return { version: ack.seq, duplicate: ack.duplicate };
    } catch (e) {
      if (isWrongLastSequence(e)) {
        throw new ConcurrencyError(`${subject} moved past version ${expectedVersion}`);
      }
      throw e;
    }
  }

  /** Commits on one subject after `afterSeq` (and before `beforeSeq`, when given), oldest first. */
  async read(subject: string, afterSeq = 0, beforeSeq = Number.POSITIVE_INFINITY): Promise<RecordedCommit[]> {
    const out: RecordedCommit[] = [];
    let seq = afterSeq + 1;
    while (seq < beforeSeq) {
      const m = await this.getMessage({ next_by_subj: subject, seq });
      if (!m || m.seq >= beforeSeq) return out;
      out.push(toRecordedCommit(m));
      seq = m.seq + 1;
    }
    return out;
  }

  /** The last commit on a subject, or null. */
  async last(subject: string): Promise<RecordedCommit | null> {
    const m = await this.getMessage({ last_by_subj: subject });
    return m ? toRecordedCommit(m) : null;
  }

  /**
   * Commits from a position on, as they are stored and then as they arrive, for readers that keep
   * their own position (an ordered consumer: nothing to clean up on the server). `subject` may hold
   * wildcards, e.g. `ev.domain.>`.
   */
  async *subscribe(subject: string, fromSeq = 1, signal?: AbortSignal): AsyncGenerator<RecordedCommit> {
    const consumer = await withJsRetry(`reader of ${this.stream}`, () => this.n.js.consumers.get(this.stream, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, fromSeq),
    }), { nc: this.n.nc });
    const messages = await consumer.consume();
    const stop = () => void messages.close();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const m of messages) yield toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data });
    } finally {
      signal?.removeEventListener('abort', stop);
      await messages.close();
    }
  }

  /** Sequence of the newest commit on subjects matching `filter` (wildcards allowed), 0 when there is none. */
  async lastSeqOn(filter: string): Promise<number> {
    return (await this.getMessage({ last_by_subj: filter }))?.seq ?? 0;
  }

  /** Sequence of the newest message in the log (0 when empty). */
  async lastSeq(): Promise<number> {
    const api = await this.api;
    const info = await withJsRetry(`info of ${this.stream}`, () => api.streams.info(this.stream), { nc: this.n.nc });
    return info.state.last_seq;
  }

  /** Is the message at `seq` the commit of exactly these events (the same event ids)? */
  private async isCommit(seq: number, events: StoredEvent[]): Promise<boolean> {
    const m = await this.getMessage({ seq });
    if (!m) return false;
    const stored = toRecordedCommit(m).events;
    return stored.length === events.length && stored.every((e, i) => e.id === events[i]?.id);
  }

  private async getMessage(
    q: { next_by_subj: string; seq: number } | { last_by_subj: string } | { seq: number },
  ): Promise<StoredMsg | null> {
    const api = await this.api;
    return withJsRetry(`read of ${this.stream}`, async () => {
      try {
        // The stream leader answers, not a replica: a read after a lost race must see the winner.
        return await api.streams.getMessage(this.stream, q);
      } catch (e) {
        if (e instanceof JetStreamApiError && (e.code === 10037 || e.status === 404)) return null;
        throw e;
      }
    }, { nc: this.n.nc });
  }
}
