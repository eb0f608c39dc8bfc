import { z } from 'zod';

/** virDomainState, by name. */
export const DomainStateName = z.enum([
  'nostate',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
]);
export type DomainStateName = z.infer<typeof DomainStateName>;

/** libvirt's numeric virDomainState values, for `--json` output and virsh-style tooling. */
export const DOMAIN_STATE_NUMBER: Record<DomainStateName, number> = {
  nostate: 0,
  running: 1,
  blocked: 2,
  paused: 3,
  shutdown: 4,
  shutoff: 5,
  crashed: 6,
  pmsuspended: 7,
};

/** How virsh prints each state (`virsh domstate`, `virsh list`). */
export const VIRSH_STATE_LABEL: Record<DomainStateName, string> = {
  nostate: 'no state',
  running: 'running',
  blocked: 'idle',
  paused: 'paused',
  shutdown: 'in shutdown',
  shutoff: 'shut off',
  crashed: 'crashed',
  pmsuspended: 'pmsuspended',
};

/** State reasons, lower-case names of virDomain<State>Reason values. */
export const StateReason = z.enum([
  'unknown',
  'booted',
  'migrated',
  'restored',
  'from-snapshot',
  'unpaused',
  'wakeup',
  'crashed',
  'user',
  'shutdown',
  'destroyed',
  'saved',
  'failed',
  'daemon',
  'panicked',
  'ioerror',
  'starting-up',
]);
export type StateReason = z.infer<typeof StateReason>;

export const ObservedState = z.object({ state: DomainStateName, reason: StateReason });
export type ObservedState = z.infer<typeof ObservedState>;

/** A domain is active (has a running process or simulated guest) in every state but shutoff. */
export const isActive = (s: DomainStateName): boolean => s !== 'shutoff' && s !== 'nostate';

/** A guest interface as the host realised it: the device name it chose and where it is plugged. */
export const InterfaceAddress = z.object({
  family: z.enum(['ipv4', 'ipv6']),
  address: z.string(),
  /** Prefix length when the host knows it (from the network's definition). */
  prefix: z.number().int().min(0).max(128).optional(),
  /** Where the host learnt it: the DHCP server's lease, like virsh domifaddr --source lease. */
  source: z.enum(['lease']),
});
export type InterfaceAddress = z.infer<typeof InterfaceAddress>;

export const RuntimeInterface = z.object({
  mac: z.string(),
  ifname: z.string(),
  bridge: z.string().optional(),
  network: z.string().optional(),
  addresses: z.array(InterfaceAddress).optional(),
});
export type RuntimeInterface = z.infer<typeof RuntimeInterface>;

/** A VNC display as the running qemu reports it (QMP query-vnc): where it really listens. */
export const RuntimeGraphics = z.object({
  /** Index among the definition's `<graphics>` elements. */
  index: z.number().int().min(0),
  type: z.literal('vnc'),
  port: z.number().int().min(0).max(65535),
  listen: z.string().optional(),
});
export type RuntimeGraphics = z.infer<typeof RuntimeGraphics>;

/** A character device backed by a host pty, by libvirt's alias (serial0, console1, channel0). */
export const RuntimeChardev = z.object({ alias: z.string(), type: z.literal('pty'), path: z.string() });
export type RuntimeChardev = z.infer<typeof RuntimeChardev>;

/** What a running guest's devices got on its host, which libvirt's live XML shows. */
export const RuntimeDevices = z.object({ graphics: z.array(RuntimeGraphics).default([]), chardevs: z.array(RuntimeChardev).default([]) });
export type RuntimeDevices = z.infer<typeof RuntimeDevices>;
