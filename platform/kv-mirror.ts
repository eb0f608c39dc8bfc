import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import { decodeJson } from './nats.ts';

/**
 * A live in-memory copy of a KV bucket, kept current by a watch: reads cost no round trip. The watch
 * follows the bucket across server restarts by itself; a bucket that was removed and made again
 * (its revisions start over) is noticed by a periodic look at its last revision, and read anew.
 */
export class KvMirror<T> {
  readonly entries = new Map<string, T>();
  /** The last write seen on each key, deletions included: its revision and when the server stored it. */
  readonly written = new Map<string, { revision: number; at: number; deleted: boolean }>();
  private watch: QueuedIterator<KvWatchEntry> | null = null;
  private check: NodeJS.Timeout | null = null;
  private lastRevision = 0;
  /** When the bucket's stream was made: a bucket removed and made again has a new one. */
  private created: string | null = null;
  private readonly listeners = new Set<(key: string, value: T | undefined) => void>();

  constructor(
    private readonly kv: KV,
    private readonly checkEveryMs = 10_000,
  ) {}

  async start(): Promise<void> {
    await this.follow();
    this.check = setInterval(() => void this.verify(), this.checkEveryMs);
    this.check.unref();
  }

  private async follow(): Promise<void> {
    this.created = (await this.kv.status().catch(() => null))?.streamInfo.created ?? null;
    const watch = await this.kv.watch();
    this.watch = watch;
    void (async () => {
      for await (const e of watch) {
        this.lastRevision = Math.max(this.lastRevision, e.revision);
        const value = e.operation === 'PUT' ? (decodeJson(e.value) as T) : undefined;
        this.written.set(e.key, { revision: e.revision, at: e.created.getTime(), deleted: e.operation !== 'PUT' });
        this.set(e.key, value);
      }
    })();
  }

  private set(key: string, value: T | undefined): void {
    if (value === undefined) this.entries.delete(key);
    else this.entries.set(key, value);
    for (const l of this.listeners) l(key, value);
  }

  /** A bucket made anew (another creation time, or revisions behind what was seen): read it from its start. */
  private async verify(): Promise<void> {
    const status = await this.kv.status().catch(() => null);
    if (!status) return;
    if (status.streamInfo.created === this.created && status.streamInfo.state.last_seq >= this.lastRevision) return;
    this.watch?.stop();
    this.lastRevision = 0;
    for (const key of [...this.entries.keys()]) this.set(key, undefined);
    this.written.clear();
    await this.follow().catch(() => {
      this.lastRevision = Number.POSITIVE_INFINITY; // look again next time
    });
  }

  onChange(l: (key: string, value: T | undefined) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  stop(): void {
    if (this.check) clearInterval(this.check);
    this.watch?.stop();
  }
}
