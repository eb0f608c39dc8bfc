import { subjects } from '../../contracts/subjects.ts';
import type { DomainView } from '../../contracts/views.ts';
import type { Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';

/**
 * This host's domains as the views know them, every page: asked on the host's own query subject,
 * where the projector fills in the host from the subject (a host never sees another host's guests).
 */
export const ownDomains = async (n: Nats, hostId: string): Promise<DomainView[]> => {
  const domains: DomainView[] = [];
  for (let cursor: string | undefined, more = true; more; ) {
    const page = await call<{ domains: DomainView[]; next?: string }>(n.nc, subjects.hostQuery(hostId, 'domain', 'list'), { all: true, ...(cursor ? { cursor } : {}) }, 30_000);
    domains.push(...page.domains);
    cursor = page.next;
    more = cursor !== undefined;
  }
  return domains;
};
