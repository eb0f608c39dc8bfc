import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call, serve } from '../../platform/rpc.ts';

/**
 * What a host agent may ask about its own host: the full query with the host taken from the subject,
 * which the server lets each host publish only for itself. A host never reaches `query.domain.list`
 * and so never sees another host's guests.
 */
export const serveHostQueries = (n: Nats, log: Logger): Subscription[] => [
  serve(
    n.nc,
    subjects.hostQuery('*', 'domain', 'list'),
    QUEUES.query,
    z.looseObject({}),
    async (req, m) => {
      const host = m.subject.split('.')[1] ?? '';
      const { ok: _ok, ...reply } = await call(n.nc, subjects.query('domain', 'list'), { ...req, host }, 30_000);
      return reply;
    },
    log,
  ),
];
