import { randomUUID } from 'node:crypto';
import type { EvacuationItem } from '../contracts/host/events.ts';
import type { DomainView } from '../contracts/views.ts';
import type { VirtplaneClient } from './index.ts';

export interface EvacuatedDomain {
  domainId: string;
  name: string;
  /** Where it is now. */
  hostId: string;
  outcome: 'moved' | 'failed' | 'refused';
  /** The state on its new host. */
  state?: string;
  error?: string;
}

export interface EvacuationProgress {
  done: number;
  total: number;
  last?: EvacuatedDomain;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where one domain of the evacuation stands, from its view; undefined while it is still on its way. */
const settled = (host: string, v: DomainView): EvacuatedDomain | undefined => {
  const base = { domainId: v.id, name: v.name, hostId: v.hostId };
  if (v.pending) return undefined;
  if (v.hostId !== host) {
    // Moved: its start there (if it ran before) has finished one way or the other.
    if (v.lastError?.op === 'start') return { ...base, outcome: 'failed', error: v.lastError.message };
    return { ...base, outcome: 'moved', state: v.observed.state };
  }
  // Still on the host with nothing in flight: the stop failed, or the host lost meanwhile.
  if (v.hostLost) return { ...base, outcome: 'failed', error: `host '${host}' was lost during the evacuation; run it again with --force once the host is known to be off` };
  if (v.lastError && v.observed.state !== 'shutoff') return { ...base, outcome: 'failed', error: v.lastError.message };
  return undefined;
};

/**
 * host-evacuate: puts the host in maintenance and takes every domain off it, restarting elsewhere
 * those that ran. Passes are repeated (each is idempotent, under its own command id) until one finds
 * nothing left to start, so a domain that landed while the first pass ran is not missed. Progress
 * counts domains that have moved, failed or were refused.
 */
export const evacuateHost = async (
  client: VirtplaneClient,
  host: string,
  opts: { force?: boolean; timeoutMs?: number; onProgress?: (p: EvacuationProgress) => void } = {},
): Promise<EvacuatedDomain[]> => {
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  const results = new Map<string, EvacuatedDomain>();
  const moving = new Map<string, EvacuationItem>();
  const report = (last?: EvacuatedDomain) => opts.onProgress?.({ done: results.size, total: results.size + moving.size, ...(last ? { last } : {}) });
  for (let pass = 0; ; pass++) {
    const r = await client.hostEvacuate(host, { ...(opts.force ? { force: true } : {}), commandId: randomUUID() });
    let fresh = 0;
    for (const item of r.domains) {
      if (results.has(item.domainId) && results.get(item.domainId)!.outcome !== 'refused') continue;
      if (item.status === 'refused') {
        results.set(item.domainId, { domainId: item.domainId, name: item.name, hostId: item.hostId, outcome: 'refused', error: item.error ?? 'refused' });
        continue;
      }
      if (!moving.has(item.domainId)) fresh++;
      moving.set(item.domainId, item);
    }
    report();
    if (pass > 0 && fresh === 0 && moving.size === 0) break;
    while (moving.size > 0) {
      for (const [id, item] of [...moving]) {
        const v = await client.get(id).catch(() => undefined);
        const s = v ? settled(host, v) : { domainId: id, name: item.name, hostId: host, outcome: 'failed' as const, error: 'domain no longer exists' };
        if (!s) continue;
        moving.delete(id);
        results.set(id, s);
        report(s);
      }
      if (moving.size === 0) break;
      if (Date.now() > deadline) {
        for (const [id, item] of moving) results.set(id, { domainId: id, name: item.name, hostId: host, outcome: 'failed', error: 'still moving when the evacuation gave up waiting' });
        moving.clear();
        return [...results.values()];
      }
      await sleep(250);
    }
    if (pass >= 5) break;
  }
  return [...results.values()];
};
