import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { decodeJson, type Nats } from './nats.ts';

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
