import { z } from 'zod';
import type { NetworkEventBody } from './events.ts';

/** virNetworkEventLifecycleType, with libvirt's numbers; networks always report detail 0. */
export const NETWORK_LIFECYCLE_EVENTS = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, STOPPED: 3 } as const;
export type NetworkLifecycleType = keyof typeof NETWORK_LIFECYCLE_EVENTS;

export const NetworkLifecycleEvent = z.object({
  eventId: z.string(),
  networkId: z.string(),
  name: z.string(),
  event: z.enum(Object.keys(NETWORK_LIFECYCLE_EVENTS) as [NetworkLifecycleType, ...NetworkLifecycleType[]]),
  /** libvirt's numeric event, as virConnectNetworkEventLifecycleCallback receives it. */
  eventNumber: z.number().int(),
  detail: z.literal(0),
  time: z.iso.datetime(),
  /** Stream sequence of the commit that caused it: the network version. */
  version: z.number().int(),
  actor: z.string(),
  correlationId: z.string(),
});
export type NetworkLifecycleEvent = z.infer<typeof NetworkLifecycleEvent>;

/** The lifecycle event one stored network event stands for; autostart changes and net-update send none, as in libvirt. */
export const networkLifecycleFor = (e: NetworkEventBody): NetworkLifecycleType | null => {
  switch (e.type) {
    case 'NetworkDefined':
      return 'DEFINED';
    case 'NetworkUndefined':
      return 'UNDEFINED';
    case 'NetworkStarted':
    case 'NetworkCreated':
      // libvirt's net-create sends STARTED alone, never DEFINED.
      return 'STARTED';
    case 'NetworkDestroyed':
      return 'STOPPED';
    case 'NetworkAutostartSet':
    case 'NetworkUpdated':
    case 'NetworkLiveUpdated':
    case 'NameClaimRevoked':
      return null;
  }
};

/**
 * Not a libvirt event (net-update sends none, and virsh net-event never sees this): a notice on
 * `netlifecycle.<id>.live` that a running network's live definition changed, so every host running
 * it converges at once rather than at its next resync. `version` is the view to read at least.
 */
export const NetworkLiveChange = z.object({
  kind: z.literal('live-definition'),
  eventId: z.string(),
  networkId: z.string(),
  name: z.string(),
  version: z.number().int(),
});
export type NetworkLiveChange = z.infer<typeof NetworkLiveChange>;

/** How virsh net-event names each event (virshNetworkEventToString). */
export const NETWORK_EVENT_LABEL: Record<NetworkLifecycleType, string> = {
  DEFINED: 'Defined',
  UNDEFINED: 'Undefined',
  STARTED: 'Started',
  STOPPED: 'Stopped',
};
