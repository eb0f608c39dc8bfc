import { OrderedKvWriter } from '../../platform/ordered-kv-writer.ts';
import type { KV } from '@nats-io/kv';
import type { Envelope } from '../../contracts/envelope.ts';
import { evolveNetwork, initialNetworkState, type NetworkAggregate } from '../../contracts/network/decider.ts';
import type { NetworkEventBody } from '../../contracts/network/events.ts';
import { NETWORK_LIFECYCLE_EVENTS, networkLifecycleFor, type NetworkLifecycleEvent } from '../../contracts/network/lifecycle.ts';
import { bridgeNameOf, type NetworkView } from '../../contracts/network/views.ts';
import { BUCKETS, subjects } from '../../contracts/subjects.ts';
import type { RecordedCommit } from '../../platform/event-store.ts';
import { decodeJson, encodeJson, type Nats } from '../../platform/nats.ts';

const PREFIX = 'ev.network.';

export const isNetworkCommit = (subject: string): boolean => subject.startsWith(PREFIX);

export const toNetworkView = (s: NetworkAggregate, updatedAt: string): NetworkView => ({
  id: s.id,
  name: s.name,
  // A view exists only for defined networks, which always carry a definition.
  definition: s.definition!,
  nextDefinition: s.nextDefinition,
  active: s.active,
  persistent: s.persistent,
  autostart: s.autostart,
  bridge: bridgeNameOf(s.definition!),
  version: s.version,
  updatedAt,
});

/**
 * Network views, folded with the decider's own `evolve` as the projector folds domains: in memory for
 * queries, in KV for restarts, with libvirt's network lifecycle events published on the way.
 */
export class NetworkProjection {
  readonly networks = new Map<string, NetworkAggregate>();
  readonly byName = new Map<string, string>();
  private readonly views = new OrderedKvWriter<NetworkAggregate>(() => {
    if (!this.kv) throw new Error('view written before the projection was started');
    return this.kv;
  });

  private constructor(
    private readonly n: Nats,
    private readonly kv: KV,
  ) {}

  static async open(n: Nats): Promise<NetworkProjection> {
    return new NetworkProjection(n, await n.kvm.open(BUCKETS.networks));
  }

  async reset(): Promise<void> {
    for await (const key of await this.kv.keys()) await this.kv.purge(key);
    this.networks.clear();
    this.byName.clear();
  }

  /** Loads the stored views; returns the highest version among them. */
  async load(): Promise<number> {
    let last = 0;
    for await (const key of await this.kv.keys()) {
      const e = await this.kv.get(key);
      if (e?.operation !== 'PUT') continue;
      const s = decodeJson(e.value) as NetworkAggregate;
      this.networks.set(key, s);
      this.byName.set(s.name, s.id);
      last = Math.max(last, s.version);
    }
    return last;
  }

  /**
   * Folds one commit. Memory changes before this returns, so a query woken by the projector's
   * sequence sees it; the promise settles once the view and the lifecycle events are stored.
   */
  fold(c: RecordedCommit, publish: boolean): Promise<unknown> {
    const id = c.subject.slice(PREFIX.length);
    const before = this.networks.get(id);
    let s = before ?? initialNetworkState(id);
    if (c.seq <= s.version) return Promise.resolve();
    const lifecycle: NetworkLifecycleEvent[] = [];
    for (const raw of c.events) {
      const e = raw as unknown as Envelope<NetworkEventBody>;
      const prev = s;
      s = evolveNetwork(s, e);
      const event = networkLifecycleFor(e);
      if (event) {
        lifecycle.push({
          eventId: e.id,
          networkId: id,
          name: s.name || prev.name,
          event,
          eventNumber: NETWORK_LIFECYCLE_EVENTS[event],
          detail: 0,
          time: e.time,
          version: e.version,
          actor: e.actor,
          correlationId: e.correlationId,
        });
      }
    }
    if (before && before.name !== s.name && this.byName.get(before.name) === id) this.byName.delete(before.name);
    if (s.exists) {
      this.networks.set(id, s);
      this.byName.set(s.name, id);
    } else {
      this.networks.delete(id);
      if (this.byName.get(s.name) === id) this.byName.delete(s.name);
    }
    const stored = this.views.write(id, s.exists ? s : null);
    const published = publish
      ? lifecycle.map((l) => this.n.js.publish(subjects.networkLifecycle(l.networkId), encodeJson(l), { msgID: l.eventId }))
      : [];
    return Promise.all([stored, ...published]);
  }

  async flush(): Promise<void> {
    await this.views.flush();
  }

}
