import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { isActive } from '../../contracts/domain/state.ts';
import { virtError } from '../../contracts/errors.ts';
import { DomainId } from '../../contracts/ids.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import { DomainGetQuery, DomainListRequest, HostListRequest, type DomainView, type HostView } from '../../contracts/views.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { LIVENESS_WINDOW_MS } from '../../contracts/host/liveness.ts';
import type { LeaseReader } from './leases.ts';
import { pageOf, replyBudget } from './paging.ts';
import type { Projector } from './projector.ts';
import { toDomainView, toHostView } from '../../contracts/view-of.ts';

export const DEFAULT_WAIT_MS = 5_000;


/** Waits until the views reflect `minSeq` (read-your-writes across aggregates), or fails with `timeout`. */
export const reachSeq = async (p: Projector, minSeq: number | undefined, waitMs = DEFAULT_WAIT_MS): Promise<void> => {
  if (minSeq !== undefined && !(await p.waitFor(() => p.lastSeq >= minSeq, waitMs))) {
    throw virtError('timeout', `views have not reached sequence ${minSeq} within ${waitMs} ms (they are at ${p.lastSeq})`, { seq: p.lastSeq });
  }
};

/** query.domain.list, answered from this replica's memory: also what a host's own list is (host-queries.ts). */
export const listDomains = async (n: Nats, p: Projector, req: DomainListRequest) => {
  await reachSeq(p, req.minSeq, req.waitMs);
  const now = new Date().toISOString();
  const seq = p.lastSeq;
  // A host's domains are few and come from its index; the whole fleet comes in list order, so
  // a page reads only as far as it goes.
  const matching = function* (after: string[] | null) {
    for (const s of req.host ? p.domains.valuesOf(req.host) : p.domains.inOrder(after)) {
      // A domain of a lost host may still run there: listed like an active one.
      if (!req.all && !isActive(s.observed.state) && s.hostLost !== true) continue;
      if (req.host && s.hostId !== req.host) continue;
      if (req.state && s.observed.state !== req.state) continue;
      if (req.name && !s.name.includes(req.name)) continue;
      yield s;
    }
  };
  const page = req.host
    ? pageOf(matching(null), (s) => [s.name, s.id], (s): DomainView => toDomainView(s, now), req, replyBudget(n))
    : pageOf(matching, (s) => [s.name, s.id], (s): DomainView => toDomainView(s, now), req, replyBudget(n));
  return { domains: page.items, seq, replica: p.replica, ...(page.next ? { next: page.next } : {}) };
};

/** The read side: answered from the projector's memory, with read-your-writes waits. */
export const serveQueries = (n: Nats, p: Projector, leases: LeaseReader, log: Logger): Subscription[] => {
  const findId = (ref: string): string | undefined => (DomainId.safeParse(ref).success && p.domains.get(ref) ? ref : p.domains.idByName(ref));
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
        const s = id ? p.domains.get(id) : undefined;
        if (!s) {
          // Not projected yet is not the same as removed: only a view at the asked-for position may say "no such domain".
          if (p.lastSeq < min) {
            throw virtError('timeout', `the views have not reached version ${min} within ${waitMs} ms (they are at ${p.lastSeq})`, { seq: p.lastSeq });
          }
          const by = DomainId.safeParse(req.domain).success ? 'uuid' : 'name';
          throw virtError('no-domain', `Domain not found: no domain with matching ${by} '${req.domain}'`, { seq: p.lastSeq });
        }
        if (!ok && s.version < min) {
          throw virtError('timeout', `the view of '${req.domain}' has not reached version ${min} within ${waitMs} ms (it is at ${s.version})`, { seq: p.lastSeq });
        }
        const v = toDomainView(s, new Date().toISOString());
        return { domain: v, settled: v.pending === null, seq: p.lastSeq };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('domain', 'list'),
      q,
      DomainListRequest,
      (req) => listDomains(n, p, req),
      log,
    ),
    serve(
      n.nc,
      subjects.query('host', 'list'),
      q,
      HostListRequest,
      async (req) => {
        const liveness = await leases.current();
        const now = Date.now();
        const placed = new Map<string, { domains: number; usedKiB: number }>();
        for (const d of p.domains.values()) {
          const t = placed.get(d.hostId) ?? { domains: 0, usedKiB: 0 };
          t.domains++;
          if (d.definition && (isActive(d.observed.state) || d.hostLost || d.pending?.op === 'start')) t.usedKiB += d.definition.currentMemoryKiB ?? d.definition.memoryKiB;
          placed.set(d.hostId, t);
        }
        const page = pageOf(
          p.hosts.values(),
          (h) => [h.hostId],
          (h): HostView => {
            const live = liveness.get(h.hostId);
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
          },
          req,
          replyBudget(n),
        );
        return { hosts: page.items, seq: p.lastSeq, ...(page.next ? { next: page.next } : {}) };
      },
      log,
    ),
  ];
};
