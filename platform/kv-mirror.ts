import type { KV } from '@nats-io/kv';
import { decodeJson } from './nats.ts';

/** A live in-memory copy of a KV bucket, kept current by a watch: reads cost no round trip. */
export class KvMirror<T> {
  readonly entries = new Map<string, T>();
  private stopWatch: (() => void) | null = null;
  private readonly listeners = new Set<(key: string, value: T | undefined) => void>();

  constructor(private readonly kv: KV) {}

  async start(): Promise<void> {
    const watch = await this.kv.watch();
    this.stopWatch = () => watch.stop();
    void (async () => {
      for await (const e of watch) {
        const value = e.operation === 'PUT' ? (decodeJson(e.value) as T) : undefined;
        if (value === undefined) this.entries.delete(e.key);
        else this.entries.set(e.key, value);
        for (const l of this.listeners) l(e.key, value);
      }
    })();
  }

  onChange(l: (key: string, value: T | undefined) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  stop(): void {
    this.stopWatch?.();
  }
}
