import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { virtError } from '../../contracts/errors.ts';
import { noNetwork } from '../../contracts/network/decider.ts';
import { NetworkGetRequest, NetworkListRequest, type NetworkView } from '../../contracts/network/views.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { pageOf, replyBudget } from './paging.ts';
import type { Projector } from './projector.ts';
import { DEFAULT_WAIT_MS, reachSeq } from './queries.ts';
import { toNetworkView } from '../../contracts/view-of.ts';

const Guid = z.guid();

/**
 * query.network.get and query.network.list, answered from the projector's memory. Host agents read
 * networks here too: an active network is one a host should realise when a guest on it starts.
 */
export const serveNetworkQueries = (n: Nats, p: Projector, log: Logger): Subscription[] => {
  const nets = p.networks;
  const findId = (ref: string): string | undefined => {
    const lower = ref.toLowerCase();
    return Guid.safeParse(ref).success && nets.get(lower) ? lower : nets.idByName(ref);
  };
  const q = QUEUES.query;

  return [
    serve(
      n.nc,
      subjects.query('network', 'get'),
      q,
      NetworkGetRequest,
      async (req) => {
        const waitMs = req.waitMs ?? DEFAULT_WAIT_MS;
        const min = req.minVersion ?? 0;
        const reached = () => {
          const id = findId(req.network);
          const s = id ? nets.get(id) : undefined;
          // A network removed by the awaited write has no view; reaching the sequence is enough then.
          return min === 0 || (s ? s.version >= min : p.lastSeq >= min);
        };
        const ok = await p.waitFor(reached, min > 0 ? waitMs : 0);
        const id = findId(req.network);
        const s = id ? nets.get(id) : undefined;
        if (!s) throw noNetwork(Guid.safeParse(req.network).success ? 'uuid' : 'name', req.network);
        if (!ok && s.version < min) {
          throw virtError('timeout', `the view of '${req.network}' has not reached version ${min} within ${waitMs} ms (it is at ${s.version})`);
        }
        return { network: toNetworkView(s, new Date().toISOString()) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('network', 'list'),
      q,
      NetworkListRequest,
      async (req) => {
        await reachSeq(p, req.minSeq, req.waitMs);
        const now = new Date().toISOString();
        const seq = p.lastSeq;
        const matching = [...nets.values()].filter((s) => (req.inactive ? !s.active : req.all || s.active));
        const page = pageOf(matching, (s) => [s.name, s.id], (s): NetworkView => toNetworkView(s, now), req, replyBudget(n));
        return { networks: page.items, seq, replica: p.replica, ...(page.next ? { next: page.next } : {}) };
      },
      log,
    ),
  ];
};
