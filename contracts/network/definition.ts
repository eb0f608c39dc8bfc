import { z } from 'zod';
import { MacAddress } from '../domain/definition.ts';

/** The stored form of a virtual network, parsed from and formatted to libvirt network XML. */

export const ForwardMode = z.enum(['nat', 'route', 'bridge', 'open', 'isolated', 'passthrough', 'private', 'vepa', 'hostdev']);
export type ForwardMode = z.infer<typeof ForwardMode>;

export const DhcpRange = z.object({ start: z.string(), end: z.string() });
export const DhcpHost = z.object({ mac: MacAddress.optional(), name: z.string().optional(), ip: z.string().optional() });

export const NetworkIp = z.object({
  family: z.enum(['ipv4', 'ipv6']).default('ipv4'),
  address: z.string(),
  /** Prefix length; libvirt also accepts a netmask, which the XML layer converts. */
  prefix: z.number().int().min(0).max(128),
  dhcp: z.object({ ranges: z.array(DhcpRange).default([]), hosts: z.array(DhcpHost).default([]) }).optional(),
});
export type NetworkIp = z.infer<typeof NetworkIp>;

export const NetworkDefinition = z.object({
  name: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\n/]+$/, 'name must not contain a newline or "/"'),
  uuid: z.uuid(),
  /** Absent means an isolated network (libvirt: no <forward>). */
  forward: z.object({ mode: ForwardMode, dev: z.string().optional() }).optional(),
  bridge: z
    .object({ name: z.string().max(15).optional(), stp: z.boolean().optional(), delay: z.number().int().optional() })
    .optional(),
  mac: MacAddress.optional(),
  mtu: z.number().int().positive().optional(),
  domain: z.string().optional(),
  ips: z.array(NetworkIp).default([]),
  portgroups: z.array(z.object({ name: z.string(), default: z.boolean().optional() })).default([]),
  /** The document as virtplane stores it (formatted libvirt XML), when it came from XML. */
  xml: z.string().optional(),
});
export type NetworkDefinition = z.infer<typeof NetworkDefinition>;
