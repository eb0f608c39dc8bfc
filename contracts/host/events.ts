import { z } from 'zod';
import { HostId } from '../ids.ts';

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
    data: RegisterHostRequest.omit({ hostId: true }),
  }),
]);
export type HostEventBody = z.infer<typeof HostEventBody>;
