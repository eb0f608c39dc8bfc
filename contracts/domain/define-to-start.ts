import type { DomainAggregate } from './decider.ts';
import type { DomainDefinition } from './definition.ts';
import type { DomainEventBody } from './events.ts';

/**
 * virsh create and restore define the domain they start: a domain not yet known comes in transient
 * on `hostId` in a new placement epoch; a known one stays where it is. Returns the definition event
 * and the state the start is then decided on.
 */
export const defineToStart = (
  s: DomainAggregate,
  definition: DomainDefinition,
  hostId: string,
): { defined: Extract<DomainEventBody, { type: 'DomainDefined' }>; placed: DomainAggregate } => {
  const defined = {
    type: 'DomainDefined' as const,
    data: {
      definition,
      hostId: s.exists ? s.hostId : hostId,
      placementEpoch: s.exists ? s.placementEpoch : s.placementEpoch + 1,
      added: !s.exists,
      ...(s.exists ? {} : { transient: true }),
    },
  };
  return { defined, placed: { ...s, hostId: defined.data.hostId, placementEpoch: defined.data.placementEpoch } };
};
