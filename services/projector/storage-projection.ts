import { OrderedKvWriter } from '../../platform/ordered-kv-writer.ts';
import type { KV } from '@nats-io/kv';
import type { Envelope } from '../../contracts/envelope.ts';
import { evolve, initialPoolState, type PoolAggregate } from '../../contracts/storage/decider.ts';
import type { StorageEventBody } from '../../contracts/storage/events.ts';
import { BUCKETS } from '../../contracts/subjects.ts';
import type { RecordedCommit } from '../../platform/event-store.ts';
import { decodeJson, encodeJson, type Nats } from '../../platform/nats.ts';

/**
 * Storage pools (with their volumes) folded from `ev.pool.*` commits with the decider's own `evolve`,
 * kept in memory for queries and in the `views-pools` bucket for restarts. The projector calls `fold`
 * for each pool commit and acknowledges it once the returned write has landed.
 */
export class StorageProjection {
  readonly pools = new Map<string, PoolAggregate>();
  readonly poolByName = new Map<string, string>();
  private kv: KV | null = null;
  private readonly views = new OrderedKvWriter<PoolAggregate>(() => {
    if (!this.kv) throw new Error('view written before the projection was started');
    return this.kv;
  });

  /** Opens the bucket and loads it, or empties it when the views are being rebuilt from the log. */
  async start(n: Nats, rebuild = false): Promise<void> {
    const kv = await n.kvm.open(BUCKETS.pools);
    this.kv = kv;
    for await (const key of await kv.keys()) {
      if (rebuild) {
        await kv.purge(key);
        continue;
      }
      const e = await kv.get(key);
      if (e?.operation !== 'PUT') continue;
      const s = decodeJson(e.value) as PoolAggregate;
      this.pools.set(key, s);
      this.poolByName.set(s.name, key);
    }
  }

  /** Highest pool version loaded or folded: part of how far the views have read the log. */
  get lastSeq(): number {
    let max = 0;
    for (const s of this.pools.values()) max = Math.max(max, s.version);
    return max;
  }

  /** Updates memory at once (queries see it before the write lands) and returns the bucket write. */
  fold(c: RecordedCommit): Promise<unknown> {
    const id = c.subject.slice('ev.pool.'.length);
    const prev = this.pools.get(id);
    let s = prev ?? initialPoolState(id);
    if (c.seq <= s.version) return Promise.resolve();
    for (const raw of c.events) s = evolve(s, raw as unknown as Envelope<StorageEventBody>);
    if (prev && prev.name !== s.name && this.poolByName.get(prev.name) === id) this.poolByName.delete(prev.name);
    if (s.exists) {
      this.pools.set(id, s);
      this.poolByName.set(s.name, id);
    } else {
      this.pools.delete(id);
      if (this.poolByName.get(s.name) === id) this.poolByName.delete(s.name);
    }
    return this.views.write(id, s.exists ? s : null);
  }


  async flush(): Promise<void> {
    await this.views.flush();
  }
}
