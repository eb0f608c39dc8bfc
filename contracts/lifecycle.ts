import { z } from 'zod';
import type { DomainAggregate } from './domain/decider.ts';
import type { DomainEventBody } from './domain/events.ts';
import type { ObservedState, StateReason } from './domain/state.ts';

/** virDomainEventType and its detail enums, by name, with libvirt's numbers for tooling. */
export const LIFECYCLE_EVENTS = {
  DEFINED: { value: 0, details: ['ADDED', 'UPDATED', 'RENAMED', 'FROM_SNAPSHOT'] },
  UNDEFINED: { value: 1, details: ['REMOVED', 'RENAMED'] },
  STARTED: { value: 2, details: ['BOOTED', 'MIGRATED', 'RESTORED', 'FROM_SNAPSHOT', 'WAKEUP'] },
  SUSPENDED: {
    value: 3,
    details: ['PAUSED', 'MIGRATED', 'IOERROR', 'WATCHDOG', 'RESTORED', 'FROM_SNAPSHOT', 'API_ERROR', 'POSTCOPY', 'POSTCOPY_FAILED'],
  },
  RESUMED: { value: 4, details: ['UNPAUSED', 'MIGRATED', 'FROM_SNAPSHOT', 'POSTCOPY', 'POSTCOPY_FAILED'] },
  STOPPED: { value: 5, details: ['SHUTDOWN', 'DESTROYED', 'CRASHED', 'MIGRATED', 'SAVED', 'FAILED', 'FROM_SNAPSHOT'] },
  SHUTDOWN: { value: 6, details: ['FINISHED', 'GUEST', 'HOST'] },
  PMSUSPENDED: { value: 7, details: ['MEMORY', 'DISK'] },
  CRASHED: { value: 8, details: ['PANICKED', 'CRASHLOADED'] },
} as const;

/** virtplane's own, numbered outside libvirt's range: the domain's host was lost, its state is unknown. */
export const VIRTPLANE_LIFECYCLE_EVENTS = {
  UNKNOWN: { value: 100, details: ['HOST_LOST'] },
} as const;

const ALL_LIFECYCLE_EVENTS = { ...LIFECYCLE_EVENTS, ...VIRTPLANE_LIFECYCLE_EVENTS };

export type LifecycleType = keyof typeof ALL_LIFECYCLE_EVENTS;
export interface LifecycleKind {
  event: LifecycleType;
  detail: string;
  /** The name the event is reported under, when not the domain's name after the event (a rename's UNDEFINED). */
  name?: string;
}

export const LifecycleEvent = z.object({
  eventId: z.string(),
  domainId: z.string(),
  name: z.string(),
  hostId: z.string(),
  event: z.enum(Object.keys(ALL_LIFECYCLE_EVENTS) as [LifecycleType, ...LifecycleType[]]),
  detail: z.string(),
  /** libvirt's numeric event and detail, as virConnectDomainEventCallback receives them. */
  eventNumber: z.number().int(),
  detailNumber: z.number().int(),
  time: z.iso.datetime(),
  /** Stream sequence of the commit that caused it: the domain version. */
  version: z.number().int(),
  actor: z.string(),
  correlationId: z.string(),
});
export type LifecycleEvent = z.infer<typeof LifecycleEvent>;

const k = (event: LifecycleType, detail: string): LifecycleKind => ({ event, detail });

/** The detail libvirt gives each state reason; reasons not listed read as the plain detail. */
const STARTED_DETAIL: Partial<Record<StateReason, string>> = {
  migrated: 'MIGRATED',
  restored: 'RESTORED',
  'from-snapshot': 'FROM_SNAPSHOT',
  wakeup: 'WAKEUP',
};
const RESUMED_DETAIL: Partial<Record<StateReason, string>> = { migrated: 'MIGRATED', 'from-snapshot': 'FROM_SNAPSHOT' };
const SUSPENDED_DETAIL: Partial<Record<StateReason, string>> = {
  migrated: 'MIGRATED',
  ioerror: 'IOERROR',
  restored: 'RESTORED',
  'from-snapshot': 'FROM_SNAPSHOT',
};
const STOPPED_DETAIL: Partial<Record<StateReason, string>> = {
  shutdown: 'SHUTDOWN',
  destroyed: 'DESTROYED',
  crashed: 'CRASHED',
  migrated: 'MIGRATED',
  saved: 'SAVED',
  failed: 'FAILED',
  'from-snapshot': 'FROM_SNAPSHOT',
};

/** How a change of observed state reads as libvirt lifecycle events. */
export const transitionEvents = (from: ObservedState, to: ObservedState): LifecycleKind[] => {
  if (from.state === to.state && from.reason === to.reason) return [];
  switch (to.state) {
    case 'running':
      if (from.state === 'paused') return [k('RESUMED', RESUMED_DETAIL[to.reason] ?? 'UNPAUSED')];
      // blocked is a running guest waiting on a resource: nothing started.
      if (from.state === 'running' || from.state === 'blocked') return [];
      return [k('STARTED', STARTED_DETAIL[to.reason] ?? 'BOOTED')];
    case 'paused': {
      const paused = k('SUSPENDED', SUSPENDED_DETAIL[to.reason] ?? 'PAUSED');
      // A domain started paused gets both events, as libvirt sends them.
      return from.state === 'shutoff' || from.state === 'nostate'
        ? [k('STARTED', STARTED_DETAIL[to.reason] ?? 'BOOTED'), paused]
        : [paused];
    }
    case 'shutoff': {
      if (from.state === 'shutoff') return [];
      return [k('STOPPED', STOPPED_DETAIL[to.reason] ?? 'SHUTDOWN')];
    }
    case 'crashed':
      return [k('CRASHED', 'PANICKED')];
    case 'pmsuspended':
      return [k('PMSUSPENDED', 'MEMORY')];
    case 'shutdown':
      return [k('SHUTDOWN', 'FINISHED')];
    default:
      return [];
  }
};

/** The lifecycle events one stored domain event stands for, given the state just before it. */
export const lifecycleFor = (before: DomainAggregate, e: DomainEventBody): LifecycleKind[] => {
  switch (e.type) {
    case 'DomainDefined':
      // A transient domain is never defined in libvirt's sense: its start is all that is reported.
      return e.data.transient ? [] : [k('DEFINED', e.data.added ? 'ADDED' : 'UPDATED')];
    case 'DomainUndefined':
      return [k('UNDEFINED', 'REMOVED')];
    case 'DomainRenamed':
      // testDomainRename: the old name goes as UNDEFINED/RENAMED, the new one comes as DEFINED/RENAMED.
      return [{ ...k('UNDEFINED', 'RENAMED'), name: before.name }, k('DEFINED', 'RENAMED')];
    case 'DomainOperationCompleted': {
      const events = transitionEvents(before.observed, e.data.observed);
      // A start from a saved image (virsh restore) is STARTED RESTORED, even when it is left paused.
      if (before.pending?.op !== 'start' || before.pending.file === undefined) return events;
      return events.map((ev) => (ev.event === 'STARTED' ? k('STARTED', 'RESTORED') : ev));
    }
    case 'DomainOperationFailed':
      if (e.data.op === 'start' && e.data.observed?.state === 'shutoff' && e.data.observed.reason === 'failed') {
        return [k('STOPPED', 'FAILED')];
      }
      return e.data.observed ? transitionEvents(before.observed, e.data.observed) : [];
    case 'DomainStateObserved':
      // After a lost host returns, the change is told against what was known before the loss.
      return transitionEvents(before.hostLost && before.lastObserved ? before.lastObserved : before.observed, { state: e.data.state, reason: e.data.reason });
    case 'DomainHostLost':
      return [k('UNKNOWN', 'HOST_LOST')];
    default:
      return [];
  }
};

export const lifecycleNumbers = (kind: LifecycleKind): { eventNumber: number; detailNumber: number } => {
  const def = ALL_LIFECYCLE_EVENTS[kind.event];
  return { eventNumber: def.value, detailNumber: (def.details as readonly string[]).indexOf(kind.detail) };
};
