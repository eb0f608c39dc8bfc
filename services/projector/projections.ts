import { evolve, initialDomainState, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import type { Envelope } from '../../contracts/envelope.ts';
import { evolveHost, initialHostState, type HostAggregate } from '../../contracts/host/decider.ts';
import type { HostEventBody } from '../../contracts/host/events.ts';
import { lifecycleFor, lifecycleNumbers, type LifecycleEvent } from '../../contracts/lifecycle.ts';
import { evolveNetwork, initialNetworkState, type NetworkAggregate } from '../../contracts/network/decider.ts';
import type { NetworkEventBody } from '../../contracts/network/events.ts';
import { NETWORK_LIFECYCLE_EVENTS, networkLifecycleFor, type NetworkLifecycleEvent, type NetworkLiveChange } from '../../contracts/network/lifecycle.ts';
import { evolve as evolvePool, initialPoolState, type PoolAggregate } from '../../contracts/storage/decider.ts';
import type { StorageEventBody } from '../../contracts/storage/events.ts';
import { evolveSecret, initialSecretState, type SecretAggregate } from '../../contracts/secret/decider.ts';
import type { SecretEventBody } from '../../contracts/secret/events.ts';
import { BUCKETS, subjects } from '../../contracts/subjects.ts';
import type { RecordedEvent } from '../../platform/event-store.ts';
import { lifecycleIds, type Projection } from './projection.ts';

/** The projections of the log, each the decider's own `evolve` behind the one interface. */

const as = <B extends { type: string; data: unknown }>(e: RecordedEvent) => e as unknown as Envelope<B>;

export const domainProjection: Projection<DomainAggregate> = {
  prefix: 'ev.domain.',
  bucket: BUCKETS.domains,
  initial: initialDomainState,
  evolve: (s, e) => evolve(s, as<DomainEventBody>(e)),
  visible: (s) => s.exists,
  name: (s) => s.name,
  group: (s) => s.hostId,
  lifecycle: (before, after, raw) => {
    const e = as<DomainEventBody>(raw);
    const kinds = lifecycleFor(before, e);
    const ids = lifecycleIds(e.id, kinds.length);
    return kinds.map((kind, i) => {
      const body: LifecycleEvent = {
        eventId: ids[i]!,
        domainId: after.id,
        name: kind.name ?? (after.name || before.name),
        hostId: after.hostId || before.hostId,
        event: kind.event,
        detail: kind.detail,
        ...lifecycleNumbers(kind),
        time: e.time,
        version: e.version,
        actor: e.actor,
        correlationId: e.correlationId,
      };
      return { subject: subjects.lifecycle(body.hostId, body.domainId), msgId: body.eventId, body };
    });
  },
};

export const hostProjection: Projection<HostAggregate> = {
  prefix: 'ev.host.',
  bucket: BUCKETS.hosts,
  initial: initialHostState,
  evolve: (s, e) => evolveHost(s, as<HostEventBody>(e)),
  visible: (s) => s.version > 0,
};

export const networkProjection: Projection<NetworkAggregate> = {
  prefix: 'ev.network.',
  bucket: BUCKETS.networks,
  initial: initialNetworkState,
  evolve: (s, e) => evolveNetwork(s, as<NetworkEventBody>(e)),
  visible: (s) => s.exists,
  name: (s) => s.name,
  lifecycle: (before, after, raw) => {
    const e = as<NetworkEventBody>(raw);
    if (e.type === 'NetworkLiveUpdated') {
      const notice: NetworkLiveChange = { kind: 'live-definition', eventId: e.id, networkId: after.id, name: after.name, version: e.version };
      return [{ subject: subjects.networkLiveChange(after.id), msgId: e.id, body: notice }];
    }
    const event = networkLifecycleFor(e);
    if (!event) return [];
    const body: NetworkLifecycleEvent = {
      eventId: e.id,
      networkId: after.id,
      name: after.name || before.name,
      event,
      eventNumber: NETWORK_LIFECYCLE_EVENTS[event],
      detail: 0,
      time: e.time,
      version: e.version,
      actor: e.actor,
      correlationId: e.correlationId,
    };
    return [{ subject: subjects.networkLifecycle(body.networkId), msgId: body.eventId, body }];
  },
};

export const poolProjection: Projection<PoolAggregate> = {
  prefix: 'ev.pool.',
  bucket: BUCKETS.pools,
  initial: initialPoolState,
  evolve: (s, e) => evolvePool(s, as<StorageEventBody>(e)),
  visible: (s) => s.exists,
  name: (s) => s.name,
};

/** Secrets' definitions and whether a value is set; the aggregate holds no value to project. */
export const secretProjection: Projection<SecretAggregate> = {
  prefix: 'ev.secret.',
  bucket: BUCKETS.secrets,
  initial: initialSecretState,
  evolve: (s, e) => evolveSecret(s, as<SecretEventBody>(e)),
  visible: (s) => s.exists,
};
