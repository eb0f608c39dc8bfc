import { z } from 'zod';
import { HostId } from '../ids.ts';
import { CommandHeader } from '../domain/commands.ts';

export const HostCapabilities = z.object({
  driver: z.string(),
  domainTypes: z.array(z.string()),
  cpus: z.number().int().nonnegative(),
  memoryKiB: z.number().int().nonnegative(),
  features: z.record(z.string(), z.string()).default({}),
});
export type HostCapabilities = z.infer<typeof HostCapabilities>;

export const RegisterHostRequest = z.object({
  hostId: HostId,
  hostname: z.string().min(1).max(255),
  /** A fresh id per agent process: tells a restart from a repeated registration. */
  instanceId: z.string().min(1).max(128),
  agentVersion: z.string().max(64),
  capabilities: HostCapabilities,
});
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;

export const HostEventBody = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('HostRegistered'),
    data: RegisterHostRequest.omit({ hostId: true }).extend({
      /** The revision of the lease this registration granted; absent in events of older releases. */
      leaseRevision: z.number().int().nonnegative().optional(),
    }),
  }),
  z.object({
    /** The host's lease expired: its agent has fenced itself, and what it ran is no longer known. */
    type: z.literal('HostLost'),
    data: z.object({
      /** The lease revision that expired (0 when the lease entry itself was gone). */
      leaseRevision: z.number().int().nonnegative(),
      /** When that lease was last written, by the server's clock. */
      leaseWrittenAt: z.iso.datetime(),
    }),
  }),
  z.object({
    /** An operator took the host out of placement (on) or gave it back (off); its domains stay. */
    type: z.literal('HostMaintenanceSet'),
    data: z.object({ on: z.boolean() }),
  }),
  z.object({
    /**
     * An operator removed the host (it had no domains left). Its lease is gone and a registration
     * under its id is refused until it is enrolled again.
     */
    type: z.literal('HostRemoved'),
    data: z.object({ wasLost: z.boolean() }),
  }),
  z.object({
    /** A removed host was enrolled again: it may register. */
    type: z.literal('HostReadmitted'),
    data: z.object({}),
  }),
  z.object({
    /** A lost host registered again and holds a new lease. */
    type: z.literal('HostReturned'),
    data: z.object({ instanceId: z.string(), leaseRevision: z.number().int().nonnegative() }),
  }),
]);
export type HostEventBody = z.infer<typeof HostEventBody>;

/** What the decider is asked: a registration with the lease it granted, or a lease found expired. */
export type HostCommand =
  | ({ type: 'register'; leaseRevision: number } & RegisterHostRequest)
  | { type: 'lost'; leaseRevision: number; leaseWrittenAt: string }
  | { type: 'maintenance'; on: boolean }
  | { type: 'remove'; domains: number }
  | { type: 'readmit' };

export const HostMaintenanceRequest = CommandHeader.extend({
  host: HostId,
  on: z.boolean(),
});
export type HostMaintenanceRequest = z.infer<typeof HostMaintenanceRequest>;

export const HostRefRequest = CommandHeader.extend({ host: HostId });
export type HostRefRequest = z.infer<typeof HostRefRequest>;

export const HostEvacuateRequest = CommandHeader.extend({
  host: HostId,
  /** The host is lost and the operator says it is off: its domains of unknown state may go. */
  force: z.boolean().optional(),
});
export type HostEvacuateRequest = z.infer<typeof HostEvacuateRequest>;

/** What host-evacuate did with each of the host's domains. */
export const EvacuationItem = z.object({
  domainId: z.string(),
  name: z.string(),
  /** Where it is now (the evacuated host until it has moved). */
  hostId: z.string(),
  /** moving: stopped or being stopped there, to move; moved: on another host already; refused: see error. */
  status: z.enum(['moving', 'moved', 'refused']),
  error: z.string().optional(),
});
export type EvacuationItem = z.infer<typeof EvacuationItem>;
