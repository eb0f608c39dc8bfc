import type { PoolView } from '../../contracts/storage/views.ts';
import type { StorageReportRequest } from '../../contracts/storage/tasks.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';

/** This host's pools as the views know them, every page, asked on the host's own query subject. */
export const ownPools = async (n: Nats, hostId: string): Promise<PoolView[]> => {
  const pools: PoolView[] = [];
  for (let cursor: string | undefined, more = true; more; ) {
    const page = await call<{ pools: PoolView[]; next?: string }>(n.nc, subjects.hostQuery(hostId, 'pool', 'list'), { all: true, ...(cursor ? { cursor } : {}) }, 30_000);
    pools.push(...page.pools);
    cursor = page.next;
    more = cursor !== undefined;
  }
  return pools;
};

/**
 * libvirt starts its autostart pools when its daemon starts; the agent asks for its own once per
 * agent instance. Run once the agent holds its lease, and not awaited by its start: reading the
 * views must not delay the lease. The command service decides each ask against the log, so a pool
 * started meanwhile, or asked for twice, starts once; the start comes back as an ordinary task.
 */
export const askPoolAutostart = async (n: Nats, hostId: string, instanceId: string, report: (r: StorageReportRequest) => Promise<void>, log: Logger): Promise<number> => {
  let asked = 0;
  for (const p of await ownPools(n, hostId)) {
    if (!p.autostart || !p.persistent || p.active || p.pending) continue;
    log.info('starting an autostart pool', { poolId: p.id, name: p.name });
    await report({ kind: 'autostart', reportId: `pool-autostart:${instanceId}:${p.id}`, poolId: p.id });
    asked++;
  }
  return asked;
};
