import type { DomainAggregate } from './domain/decider.ts';
import type { HostAggregate } from './host/decider.ts';
import type { DomainView, HostView } from './views.ts';
import type { NetworkAggregate } from './network/decider.ts';
import { bridgeNameOf, type NetworkView } from './network/views.ts';

/** A domain as the read side shows it: in the projector's views, and in a command reply that waited for its outcome. */
export const toDomainView = (s: DomainAggregate, updatedAt: string): DomainView => ({
  id: s.id,
  name: s.name,
  hostId: s.hostId,
  persistent: s.persistent,
  // A view exists only for defined domains, which always carry a definition.
  definition: s.definition!,
  nextDefinition: s.nextDefinition,
  desired: s.desired,
  observed: s.observed,
  ...(s.hostLost ? { hostLost: true, ...(s.lastObserved ? { lastObserved: s.lastObserved } : {}) } : {}),
  placementEpoch: s.placementEpoch,
  ...(s.evacuating ? { evacuating: s.evacuating } : {}),
  interfaces: s.interfaces ?? [],
  ...(s.devices ? { devices: s.devices } : {}),
  pending: s.pending,
  lastError: s.lastError,
  version: s.version,
  ...(s.domid !== undefined ? { domid: s.domid } : {}),
  ...(s.autostart ? { autostart: true } : {}),
  ...(s.managedSave ? { managedSave: true } : {}),
  ...(s.snapshots?.length ? { snapshots: s.snapshots } : {}),
  ...(s.currentSnapshot ? { currentSnapshot: s.currentSnapshot } : {}),
  updatedAt,
});

export const toHostView = (s: HostAggregate): HostView => ({
  hostId: s.hostId,
  hostname: s.hostname,
  instanceId: s.instanceId,
  agentVersion: s.agentVersion,
  capabilities: s.capabilities,
  registeredAt: s.registeredAt,
  version: s.version,
  ...(s.lost ? { lost: true, lostAt: s.lostAt ?? null } : {}),
  ...(s.maintenance ? { maintenance: true } : {}),
  ...(s.removed ? { removed: true } : {}),
});

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
