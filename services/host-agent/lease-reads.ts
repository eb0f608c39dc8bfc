import type { Subscription } from '@nats-io/transport-node';
import { DhcpLeasesRequest, type DhcpLease } from '../../contracts/network/leases.ts';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { NetworkHost } from '../../drivers/network/host.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

/**
 * virsh net-dhcp-leases, answered live from this host's dnsmasq lease files: only operators may ask
 * (`hostread.<host>.*`), only this host answers for itself, and nothing is recorded.
 */
export const serveLeaseReads = (n: Nats, hostId: string, network: NetworkHost | null, lookup: (name: string) => Promise<NetworkDefinition>, log: Logger): Subscription =>
  serve(
    n.nc,
    subjects.hostRead(hostId, 'dhcp-leases'),
    undefined,
    DhcpLeasesRequest,
    async (req) => {
      const mac = req.mac?.toLowerCase();
      // A host without network drivers runs no dnsmasq: it has no leases to give.
      const found = (network ? await network.leases() : []).filter((l) => l.network === req.name && (mac === undefined || l.mac === mac));
      const def = found.length > 0 ? await lookup(req.name).catch(() => undefined) : undefined;
      const prefixes = new Map(def?.ips.map((ip) => [ip.family, ip.prefix]) ?? []);
      const leases: DhcpLease[] = found.map((l) => {
        const prefix = prefixes.get(l.family);
        return { hostId, ...l, ...(prefix !== undefined ? { prefix } : {}) };
      });
      return { leases };
    },
    log,
  );
