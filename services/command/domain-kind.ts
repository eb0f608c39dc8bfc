import { commandVersion, evolve, initialDomainState, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import { evolveHost, initialHostState, type HostAggregate } from '../../contracts/host/decider.ts';
import type { HostEventBody } from '../../contracts/host/events.ts';
import type { AggregateKind } from './repository.ts';

export const domainKind: AggregateKind<DomainAggregate, DomainEventBody> = {
  type: 'domain',
  initial: initialDomainState,
  evolve,
  appliedVersion: commandVersion,
};

export const hostKind: AggregateKind<HostAggregate, HostEventBody> = {
  type: 'host',
  initial: initialHostState,
  evolve: evolveHost,
};
