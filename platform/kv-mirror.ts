import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import { nextServerLoss, withJsRetry } from './js-retry.ts';
import { decodeJson, type Nats } from './nats.ts';

/**
 * A live in-memory copy of a KV bucket, kept current by a watch: reads cost no round trip. The watch
 * is started again when it ends or a server leaves the cluster (its consumer may have lived there and
 * would only be replaced after missed heartbeats); a new watch delivers every key's current value. A
 * bucket that was removed and made again (its revisions start over) is noticed by a periodic look at
 * its creation time and last revision, and read anew.
 */
export class KvMirror<T> {
  readonly entries = new Map<string, T>();
  private stopped = false;
  /** The last write seen on each key, deletions included: its revision and when the server stored it. */
  readonly written = new Map<string, { revision: number; at: number; deleted: boolean }>();
  private watch: QueuedIterator<KvWatchEntry> | null = null;
  private cancelLoss: (() => void) | null = null;
  private check: NodeJS.Timeout | null = null;
  private lastRevision = 0;
  private generation = 0;
  /** When the bucket's stream was made: a bucket removed and made again has a new one. */
  private created: string | null = null;
  private readonly listeners = new Set<(key: string, value: T | undefined) => void>();

  constructor(
    private readonly kv: KV,
    /** The connection the bucket is read through, to notice a lost server. */
    private readonly nc?: Parameters<typeof nextServerLoss>[0],
    private readonly checkEveryMs = 10_000,
  ) {}

  async start(): Promise<void> {
    await this.follow();
    this.check = setInterval(() => void this.verify(), this.checkEveryMs);
    this.check.unref();
  }

  private async follow(anew = false): Promise<void> {
    // A restart after a lost server and a re-read of a bucket made anew may both start one: only the
    // latest goes on, so no second watch is left feeding the map unseen.
    const generation = ++this.generation;
    const created = (await this.kv.status().catch(() => null))?.streamInfo.created ?? null;
    const watch = await withJsRetry('watch of a bucket', () => this.kv.watch(), this.nc ? { nc: this.nc } : {});
    if (generation !== this.generation || this.stopped) {
      watch.stop();
      return;
    }
    this.created = created;
    this.watch = watch;
    // What the old bucket held goes only now that the new one is being read: until then readers keep
    // the last values known rather than an empty map (no live host at all, say).
    if (anew) {
      this.lastRevision = 0;
      for (const key of [...this.entries.keys()]) this.set(key, undefined);
      this.written.clear();
    }
    const loss = this.nc ? nextServerLoss(this.nc) : null;
    this.cancelLoss = () => loss?.cancel();
    let restarted = false;
    const restart = () => {
      if (restarted || this.watch !== watch) return;
      restarted = true;
      loss?.cancel();
      watch.stop();
      const again = () => {
        if (!this.stopped) void this.follow().catch(() => setTimeout(again, 1000));
      };
      again();
    };
    void loss?.promise.then(restart);
    void (async () => {
      for await (const e of watch) {
        this.lastRevision = Math.max(this.lastRevision, e.revision);
        const value = e.operation === 'PUT' ? (decodeJson(e.value) as T) : undefined;
        this.written.set(e.key, { revision: e.revision, at: e.created.getTime(), deleted: e.operation !== 'PUT' });
        this.set(e.key, value);
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        if (!this.stopped) restart();
      });
  }

  private set(key: string, value: T | undefined): void {
    if (value === undefined) this.entries.delete(key);
    else this.entries.set(key, value);
    for (const l of this.listeners) l(key, value);
  }

  /** A bucket made anew (another creation time, or revisions behind what was seen): read it from its start. */
  private async verify(): Promise<void> {
    // Taken before asking: on a busy bucket the watch goes on past the revision the answer carries,
    // and a revision seen after the question is no sign of a bucket made anew.
    const seen = this.lastRevision;
    const status = await this.kv.status().catch(() => null);
    if (!status || this.stopped) return;
    // A creation time not learnt at the start (the cluster was electing) is learnt now, not taken
    // for a new bucket.
    if (this.created === null) this.created = status.streamInfo.created;
    if (status.streamInfo.created === this.created && status.streamInfo.state.last_seq >= seen) return;
    const old = this.watch;
    // Detach first, so the old watch ending does not start a second follower.
    this.watch = null;
    this.cancelLoss?.();
    old?.stop();
    await this.follow(true).catch(() => {
      this.lastRevision = Number.POSITIVE_INFINITY; // look again next time
    });
  }

  onChange(l: (key: string, value: T | undefined) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  stop(): void {
    this.stopped = true;
    if (this.check) clearInterval(this.check);
    this.cancelLoss?.();
    this.watch?.stop();
  }
}

export interface BucketEntry {
  key: string;
  /** null for a delete or purge marker. */
  value: Uint8Array | null;
  revision: number;
}

/**
 * Every key's last entry, read in one pass over the bucket's stream (an ordered consumer delivering
 * the last message per subject) rather than one request per key: loading 50,000 views takes seconds,
 * not minutes.
 */
export const readBucket = async (n: Nats, bucket: string): Promise<BucketEntry[]> => {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  const out: BucketEntry[] = [];
  if ((await n.jsm.streams.info(stream)).state.messages === 0) return out;
  const consumer = await n.js.consumers.get(stream, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject });
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      const op = m.headers?.get('KV-Operation');
      out.push({ key: m.subject.slice(prefix.length), value: op === 'DEL' || op === 'PURGE' ? null : m.data, revision: m.seq });
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return out;
};
