import type { PubAck } from '@nats-io/jetstream';
import { isWrongLastSequence } from '../../platform/js-retry.ts';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { STREAMS } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, encodeJson, type Nats } from '../../platform/nats.ts';
import type { LifecycleMessage } from './projection.ts';

/** Where in the log a lifecycle message came from: the commit's sequence and its place in the commit. */
export const COMMIT_SEQ_HEADER = 'Virtplane-Commit-Seq';
export const COMMIT_INDEX_HEADER = 'Virtplane-Commit-Index';

interface Position {
  commitSeq: number;
  index: number;
}

const after = (a: Position, b: Position) => a.commitSeq > b.commitSeq || (a.commitSeq === b.commitSeq && a.index > b.index);

interface Item extends Position {
  msg: LifecycleMessage;
}

const WINDOW = 256;

/**
 * Publishes lifecycle messages exactly once, in log order, however many projectors run and however
 * often they crash. Every projector derives the same messages in the same order from the log, so the
 * LIFECYCLE stream only ever holds a prefix of that one sequence: each message names the commit it
 * came from (headers), a publish is conditioned on the stream's last sequence being the one its
 * predecessor took, and whoever loses that race reads the stream's last message to learn how far
 * publishing got, then skips what is already there. Nothing depends on a message id surviving the
 * duplicate window.
 */
export class LifecyclePublisher {
  private queue: Item[] = [];
  /** The position of the stream's last message as far as this replica knows; null: not read yet. */
  private published: Position | null = null;
  private lastSeq = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private confirmations: Array<{ upTo: Position; resolve: () => void; reject: (e: unknown) => void }> = [];
  private confirmed = 0;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
    /** What a stream whose messages have all aged out stands for: everything up to the loaded position. */
    private readonly floor: () => number,
  ) {}

  start(): void {
    this.running = this.pump();
  }

  /**
   * Queues a commit's messages; resolves once they, and everything queued before, are in the stream.
   * With no messages it still waits for those before: a view may be stored only after the lifecycle
   * events of every commit it reflects.
   */
  enqueue(commitSeq: number, messages: LifecycleMessage[]): Promise<void> {
    messages.forEach((msg, index) => this.queue.push({ commitSeq, index, msg }));
    const upTo = { commitSeq, index: messages.length - 1 };
    if (messages.length === 0 && this.queue.length === 0 && this.confirmed === this.confirmations.length) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.confirmations.push({ upTo, resolve, reject }));
    this.wake?.();
    return p;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    for (const c of this.confirmations.slice(this.confirmed)) c.reject(new Error('lifecycle publisher stopped'));
    this.confirmations = [];
    this.confirmed = 0;
  }

  private async pump(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      if (this.queue.length === 0) {
        this.confirm();
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
        continue;
      }
      try {
        if (!this.published) await this.resync();
        this.dropPublished();
        if (this.queue.length > 0) await this.publishWindow();
        this.confirm();
        attempt = 0;
      } catch (e) {
        this.log.warn('lifecycle publish interrupted; reading where the stream stands', { error: String(e) });
        this.published = null;
        await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt++)));
      }
    }
  }

  private dropPublished(): void {
    const at = this.published!;
    let i = 0;
    while (i < this.queue.length && !after(this.queue[i]!, at)) i++;
    if (i > 0) this.queue.splice(0, i);
  }

  /** Publishes up to WINDOW messages back to back, each expecting its predecessor's stream sequence. */
  private async publishWindow(): Promise<void> {
    const window = this.queue.slice(0, WINDOW);
    const base = this.lastSeq;
    const results = await Promise.allSettled(
      window.map((item, k) => {
        const h = natsHeaders();
        h.set(COMMIT_SEQ_HEADER, String(item.commitSeq));
        h.set(COMMIT_INDEX_HEADER, String(item.index));
        return this.n.js.publish(item.msg.subject, encodeJson(item.msg.body), { msgID: item.msg.msgId, expect: { lastSequence: base + k }, headers: h });
      }),
    );
    let k = 0;
    try {
      for (; k < results.length; k++) {
        const r = results[k]!;
        if (r.status === 'fulfilled' && (r.value as PubAck).duplicate) {
          // In the stream already (another replica's copy, or an attempt whose ack was lost): done with it.
          // Whether it is the last message is not known, so read where things stand before going on.
          this.published = null;
          k++;
          return;
        }
        if (r.status === 'rejected' || (r.value as PubAck).seq !== base + k + 1) {
          this.published = null;
          // Only a lost race (wrong last sequence) is worth an immediate look; anything else backs off first.
          if (r.status === 'rejected' && !isWrongLastSequence(r.reason)) throw r.reason;
          return;
        }
        this.published = { commitSeq: window[k]!.commitSeq, index: window[k]!.index };
        this.lastSeq = base + k + 1;
      }
    } finally {
      this.queue.splice(0, k);
    }
  }

  /** Reads the stream's last message: its headers say which commit publishing got to. */
  private async resync(): Promise<void> {
    const info = await this.n.jsm.streams.info(STREAMS.lifecycle);
    this.lastSeq = info.state.last_seq;
    if (info.state.last_seq === 0) {
      this.published = { commitSeq: 0, index: -1 };
      return;
    }
    if (info.state.messages === 0) {
      this.published = { commitSeq: this.floor(), index: Number.MAX_SAFE_INTEGER };
      return;
    }
    const m = await this.n.jsm.streams.getMessage(STREAMS.lifecycle, { seq: info.state.last_seq });
    if (!m) throw new Error(`LIFECYCLE message ${info.state.last_seq} could not be read`);
    const seq = Number(m.header?.get(COMMIT_SEQ_HEADER) ?? NaN);
    const index = Number(m.header?.get(COMMIT_INDEX_HEADER) ?? NaN);
    if (Number.isInteger(seq) && Number.isInteger(index)) {
      this.published = { commitSeq: seq, index };
      return;
    }
    // Written by a release without the headers: its body names the commit; take the whole commit as sent.
    const version = (decodeJson(m.data) as { version?: unknown }).version;
    this.published = { commitSeq: typeof version === 'number' ? version : this.floor(), index: Number.MAX_SAFE_INTEGER };
  }

  /** Resolves the waits the stream now covers. */
  private confirm(): void {
    const next = this.queue[0];
    while (this.confirmed < this.confirmations.length) {
      const c = this.confirmations[this.confirmed]!;
      // Covered when nothing at or before its position is still queued.
      if (next && !after(next, c.upTo)) break;
      this.confirmed++;
      c.resolve();
    }
    if (this.confirmed > 1024) {
      this.confirmations = this.confirmations.slice(this.confirmed);
      this.confirmed = 0;
    }
  }
}
