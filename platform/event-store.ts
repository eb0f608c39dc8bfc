import { DeliverPolicy, JetStreamApiError, type StoredMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { Commit, type EventMeta } from '../contracts/envelope.ts';
import { STREAMS } from '../contracts/subjects.ts';
import { decodeJson, encodeJson, type Nats } from './nats.ts';

/**
 * The one event store. Each command's events are one message (a commit) on the aggregate's subject,
 * so they land together or not at all; the aggregate version is the stream sequence of its last
 * commit, and appends carry the version they were decided against.
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

const WRONG_LAST_SEQUENCE = 10071;

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
  constructor(
    private readonly n: Nats,
    private readonly stream: string = STREAMS.events,
  ) {}

  /**
   * Appends one commit if the subject's last sequence is still `expectedVersion` (0: no message yet).
   * The command id is the message id, so a retry inside the duplicate window adds nothing and
   * returns the first append's version.
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
    try {
      const ack = await this.n.js.publish(subject, encodeJson({ commandId, previousVersion: expectedVersion, events } satisfies Commit), {
        msgID: commandId,
        expect: { lastSubjectSequence: expectedVersion },
        headers: h,
      });
      return { version: ack.seq, duplicate: ack.duplicate };
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
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
    const consumer = await this.n.js.consumers.get(this.stream, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, fromSeq),
    });
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

  /** Sequence of the newest message in the log (0 when empty). */
  async lastSeq(): Promise<number> {
    const info = await this.n.jsm.streams.info(this.stream);
    return info.state.last_seq;
  }

  private async getMessage(
    q: { next_by_subj: string; seq: number } | { last_by_subj: string },
  ): Promise<StoredMsg | null> {
    try {
      // The stream leader answers, not a replica: a read after a lost race must see the winner.
      return await this.n.jsm.streams.getMessage(this.stream, q);
    } catch (e) {
      if (e instanceof JetStreamApiError && (e.code === 10037 || e.status === 404)) return null;
      throw e;
    }
  }
}
