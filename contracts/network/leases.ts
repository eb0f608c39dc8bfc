import { z } from 'zod';
import { Uuid } from '../ids.ts';

/** virsh net-dhcp-leases: asked of every live host, since each runs the network's dnsmasq for its own guests. */
export const DhcpLeasesRequest = z.object({
  /** The network's uuid; its name is matched against what the host realised under it. */
  networkId: Uuid,
  name: z.string().min(1).max(256),
  /** virsh --mac: only this guest's leases (compared case-insensitively, as libvirt does). */
  mac: z.string().max(64).optional(),
});
export type DhcpLeasesRequest = z.infer<typeof DhcpLeasesRequest>;

export const DhcpLease = z.object({
  hostId: z.string(),
  network: z.string(),
  mac: z.string(),
  family: z.enum(['ipv4', 'ipv6']),
  address: z.string(),
  /** The prefix of the network address the lease falls in, as libvirt shows `address/prefix`. */
  prefix: z.number().int().optional(),
  hostname: z.string().optional(),
  clientId: z.string().optional(),
  expiresAt: z.string(),
});
export type DhcpLease = z.infer<typeof DhcpLease>;

export const DhcpLeasesReply = z.object({ leases: z.array(DhcpLease) });
