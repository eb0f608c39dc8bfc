import { z } from 'zod';
import { NetworkDefinition } from './definition.ts';
import { NameClaimRevoked } from '../name-claim.ts';

/**
 * Events of the network aggregate. Starting and stopping a network are facts, not intents: no host
 * acts on them directly. An active network is available to guests; each host realises it when a
 * guest attached to it starts there, and tears it down once it is inactive.
 */
export const NetworkEventBody = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('NetworkDefined'),
    /** A new network, or a redefinition; of an active network it takes effect when the network stops. */
    data: z.object({ definition: NetworkDefinition }),
  }),
  z.object({ type: z.literal('NetworkUndefined'), data: z.object({}) }),
  z.object({
    /**
     * `virsh net-create`: started with this definition. A new network is transient (gone once
     * destroyed); on an inactive persistent one the definition is in force until it stops.
     */
    type: z.literal('NetworkCreated'),
    data: z.object({ definition: NetworkDefinition }),
  }),
  z.object({ type: z.literal('NetworkStarted'), data: z.object({}) }),
  z.object({ type: z.literal('NetworkDestroyed'), data: z.object({}) }),
  z.object({ type: z.literal('NetworkAutostartSet'), data: z.object({ autostart: z.boolean() }) }),
  /** virsh net-update --config: the persistent definition after the update (of an active network, the one for its next start). */
  z.object({ type: z.literal('NetworkUpdated'), data: z.object({ definition: NetworkDefinition }) }),
  /**
   * virsh net-update --live (or --current on an active network): the running network's definition
   * after the update. Every host running the network converges its DHCP to it; the persistent
   * definition is untouched.
   */
  z.object({ type: z.literal('NetworkLiveUpdated'), data: z.object({ definition: NetworkDefinition }) }),
  NameClaimRevoked,
]);
export type NetworkEventBody = z.infer<typeof NetworkEventBody>;
export type NetworkEventType = NetworkEventBody['type'];
