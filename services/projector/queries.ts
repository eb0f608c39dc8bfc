import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { isActive } from '../../contracts/domain/state.ts';
import { virtError } from '../../contracts/errors.ts';
import { DomainId } from '../../contracts/ids.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import { DomainGetRequest, DomainListRequest, type DomainView, type HostView } from '../../contracts/views.ts';
import type { KvMirror } from '../../platform/kv-mirror.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { LIVENESS_WINDOW_MS, type HostLiveness } from '../../contracts/host/liveness.ts';
import type { Projector } from './projector.ts';
import { toDomainView, toHostView } from './views.ts';

const DEFAULT_WAIT_MS = 5_000;

export const DomainGetQuery = DomainGetRequest.extend({
  /** Also wait until no operation is in flight: how `virtplane start` waits for the outcome. */
  settled: z.boolean().optional(),
});

/** The read side: answered from the projector's memory, with read-your-writes waits. */
export const serveQueries = (n: Nats, p: Projector, liveness: KvMirror<HostLiveness>, log: Logger): Subscription[] => {
  const findId = (ref: string): string | undefined =>
    DomainId.safeParse(ref).success && p.domains.has(ref) ? ref : p.domainByName.get(ref);
  const view = (id: string): DomainView | null => {
    const s = p.domains.get(id);
    return s ? toDomainView(s, new Date().toISOString()) : null;
  };
  const q = QUEUES.query;

  return [
    serve(
      n.nc,
      subjects.query('domain', 'get'),
      q,
      DomainGetQuery,
      async (req) => {
        const waitMs = req.waitMs ?? DEFAULT_WAIT_MS;
        const min = req.minVersion ?? 0;
        const reached = () => {
          const id = findId(req.domain);
          const s = id ? p.domains.get(id) : undefined;
          // A domain removed by the awaited write has no view; reaching the sequence is enough then.
          const versionReached = min === 0 || (s ? s.version >= min : p.lastSeq >= min);
          return versionReached && (!req.settled || !s || s.pending === null);
        };
        const ok = await p.waitFor(reached, min > 0 || req.settled ? waitMs : 0);
        const id = findId(req.domain);
        const v = id ? view(id) : null;
        if (!v) {
          const by = DomainId.safeParse(req.domain).success ? 'uuid' : 'name';
          throw virtError('no-domain', `Domain not found: no domain with matching ${by} '${req.domain}'`);
        }
        if (!ok && v.version < min) {
          throw virtError('timeout', `the view of '${req.domain}' has not reached version ${min} within ${waitMs} ms (it is at ${v.version})`);
        }
        return { domain: v, settled: v.pending === null };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('domain', 'list'),
      q,
      DomainListRequest,
      async (req) => {
        if (req.minSeq !== undefined && !(await p.waitFor(() => p.lastSeq >= req.minSeq!, req.waitMs ?? DEFAULT_WAIT_MS))) {
          throw virtError('timeout', `views have not reached sequence ${req.minSeq}`);
        }
        const now = new Date().toISOString();
        const domains = [...p.domains.values()]
          // A domain of a lost host may still run there: listed like an active one.
          .filter((s) => (req.all ? true : isActive(s.observed.state) || s.hostLost === true))
          .filter((s) => !req.host || s.hostId === req.host)
          .filter((s) => !req.state || s.observed.state === req.state)
          .filter((s) => !req.name || s.name.includes(req.name))
          .map((s) => toDomainView(s, now))
          .sort((a, b) => a.name.localeCompare(b.name));
        return { domains, seq: p.lastSeq };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('host', 'list'),
      q,
      z.object({}).loose(),
      async () => {
        const now = Date.now();
        const placed = new Map<string, { domains: number; usedKiB: number }>();
        for (const d of p.domains.values()) {
          const t = placed.get(d.hostId) ?? { domains: 0, usedKiB: 0 };
          t.domains++;
          if (d.definition && (isActive(d.observed.state) || d.hostLost || d.pending?.op === 'start')) t.usedKiB += d.definition.currentMemoryKiB ?? d.definition.memoryKiB;
          placed.set(d.hostId, t);
        }
        const hosts: HostView[] = [...p.hosts.values()]
          .map((h) => {
            const live = liveness.entries.get(h.hostId);
            const t = placed.get(h.hostId) ?? { domains: 0, usedKiB: 0 };
            return {
              ...toHostView(h),
              leaseAgeMs: live ? Math.max(0, now - Date.parse(live.at)) : null,
              domains: t.domains,
              freeMemoryKiB: h.capabilities ? h.capabilities.memoryKiB - t.usedKiB : null,
              lastHeartbeat: live?.at ?? null,
              alive: live && !live.revoked && !h.lost ? now - Date.parse(live.at) <= LIVENESS_WINDOW_MS : false,
              activeDomains: live?.activeDomains ?? 0,
            };
          })
          .sort((a, b) => a.hostId.localeCompare(b.hostId));
        return { hosts };
      },
      log,
    ),
  ];
};
