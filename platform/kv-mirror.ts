import type { KV, KvWatchEntry } from '@nats-io/kv';
import { nextServerLoss, withJsRetry } from './js-retry.ts';
import { decodeJson } from './nats.ts';

/**
 * A live in-memory copy of a KV bucket, kept current by a watch: reads cost no round trip. The watch
 * is started again when it ends or a server leaves the cluster (its consumer may have lived there and
 * would only be replaced after missed heartbeats); a new watch delivers every key's current value.
 */
export class KvMirror<T> {
  readonly entries = new Map<string, T>();
  private stopped = false;
  private stopWatch: (() => void) | null = null;
  private readonly listeners = new Set<(key: string, value: T | undefined) => void>();

  constructor(
    private readonly kv: KV,
    /** The connection the bucket is read through, to notice a lost server. */
    private readonly nc?: Parameters<typeof nextServerLoss>[0],
  ) {}

  async start(): Promise<void> {
    const watch = await withJsRetry('watch of a bucket', () => this.kv.watch(), this.nc ? { nc: this.nc } : {});
    const loss = this.nc ? nextServerLoss(this.nc) : null;
    let restarted = false;
    const restart = () => {
      if (restarted) return;
      restarted = true;
      loss?.cancel();
      watch.stop();
      const again = () => {
        if (!this.stopped) void this.start().catch(() => setTimeout(again, 1000));
      };
      again();
    };
    this.stopWatch = () => {
      loss?.cancel();
      watch.stop();
    };
    void loss?.promise.then(restart);
    void (async () => {
      for await (const e of watch) this.apply(e);
    })()
      .catch(() => undefined)
      .finally(() => {
        if (!this.stopped) restart();
      });
  }

  private apply(e: KvWatchEntry): void {
    const value = e.operation === 'PUT' ? (decodeJson(e.value) as T) : undefined;
    if (value === undefined) this.entries.delete(e.key);
    else this.entries.set(e.key, value);
    for (const l of this.listeners) l(e.key, value);
  }

  onChange(l: (key: string, value: T | undefined) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
  }
}
