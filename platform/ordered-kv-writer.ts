import type { KV } from '@nats-io/kv';
import { KeyedQueue } from './keyed-queue.ts';
import { encodeJson } from './nats.ts';

/**
 * Writes views to a KV bucket without waiting on each other, except that writes of one key land in
 * the order they were made: a later state of a view can never be overwritten by an earlier one.
 */
export class OrderedKvWriter<T> {
  private readonly queue = new KeyedQueue();

  constructor(private readonly kv: () => KV) {}

  /** Stores `value` under `key`, or deletes the key for null. */
  write(key: string, value: T | null): Promise<void> {
    return this.queue.run(key, async () => {
      if (value === null) await this.kv().delete(key);
      else await this.kv().put(key, encodeJson(value));
    });
  }

  flush(): Promise<void> {
    return this.queue.drain();
  }
}
