import { isWrongLastSequence } from './js-retry.ts';
import type { KV } from '@nats-io/kv';
import { decodeJson, encodeJson } from './nats.ts';

/** A value that says which log position it reflects: a later one never gives way to an earlier one. */
export interface Versioned {
  version: number;
}

const isConflict = isWrongLastSequence;

interface Stored {
  /** KV revision of the key's last message (0: the key never held one). */
  revision: number;
  /** Version of the value stored there (-1: none, or a delete marker). */
  version: number;
}

/**
 * Writes versioned values (views, positions) to a KV bucket so that no key ever moves backwards, even
 * with several writers: every put names the revision it replaces, and a writer that lost a race reads
 * what won and stops if that is as new as its own. Writes of one key are coalesced (only the newest
 * pending value is sent) and retried until they land, so a passing outage delays a view but never
 * leaves it stale.
 */
export class VersionedKvWriter<T extends Versioned> {
  private readonly known = new Map<string, Stored>();
  private readonly pending = new Map<string, T>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, Array<{ version: number; done: (e?: unknown) => void }>>();
  private stopped = false;

  constructor(
    private readonly kv: KV,
    private readonly onRetry: (key: string, e: unknown) => void = () => undefined,
    /**
     * How long a key's first write waits for newer values before it is sent, so a state that is
     * soon replaced (an operation pending, then done) costs one write. 0: sent at once.
     */
    private readonly lingerMs = 0,
  ) {}

  /** What a bulk load found in the bucket, so the first write of each key needs no look-up. */
  remember(key: string, revision: number, version: number): void {
    this.known.set(key, { revision, version });
  }

  /** Resolves once the bucket holds `value` or a newer version under `key`. */
  write(key: string, value: T): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('writer stopped'));
    const k = this.known.get(key);
    if (k && k.version >= value.version) return Promise.resolve();
    const queued = this.pending.get(key);
    if (!queued || queued.version < value.version) this.pending.set(key, value);
    const p = new Promise<void>((resolve, reject) => {
      const list = this.waiters.get(key) ?? [];
      list.push({ version: value.version, done: (e) => (e ? reject(e) : resolve()) });
      this.waiters.set(key, list);
    });
    if (!this.running.has(key)) this.running.set(key, this.drainKey(key));
    return p;
  }

  /** Settles once everything written so far has landed (or the writer was stopped). */
  async flush(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  /** Gives up on what has not landed: a crash at this point is what the log and the position repair. */
  stop(): void {
    this.stopped = true;
  }

  private async drainKey(key: string): Promise<void> {
    if (this.lingerMs > 0) await new Promise((r) => setTimeout(r, this.lingerMs));
    for (;;) {
      const value = this.pending.get(key);
      if (!value) {
        // In the same turn as the check: a write arriving later starts a new drain.
        this.running.delete(key);
        return;
      }
      this.pending.delete(key);
      let attempt = 0;
      for (;;) {
        if (this.stopped) {
          this.running.delete(key);
          this.settle(key, Number.POSITIVE_INFINITY, new Error('writer stopped'));
          return;
        }
        try {
          await this.store(key, value);
          break;
        } catch (e) {
          this.onRetry(key, e);
          await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt++)));
        }
      }
      this.settle(key, this.known.get(key)?.version ?? value.version);
    }
  }

  private settle(key: string, upTo: number, error?: unknown): void {
    const list = this.waiters.get(key);
    if (!list) return;
    const rest = list.filter((w) => w.version > upTo);
    for (const w of list) if (w.version <= upTo) w.done(error);
    if (rest.length === 0) this.waiters.delete(key);
    else this.waiters.set(key, rest);
  }

  private async store(key: string, value: T): Promise<void> {
    const data = encodeJson(value);
    for (;;) {
      const k = this.known.get(key) ?? { revision: 0, version: -1 };
      if (k.version >= value.version) return;
      try {
        const revision = await this.kv.put(key, data, { previousSeq: k.revision });
        this.known.set(key, { revision, version: value.version });
        return;
      } catch (e) {
        if (!isConflict(e)) throw e;
      }
      // Someone else wrote the key since we last saw it: learn what is there and decide again.
      const cur = await this.kv.get(key);
      if (!cur) this.known.set(key, { revision: 0, version: -1 });
      else if (cur.operation !== 'PUT') this.known.set(key, { revision: cur.revision, version: -1 });
      else this.known.set(key, { revision: cur.revision, version: (decodeJson(cur.value) as Versioned).version });
    }
  }
}
