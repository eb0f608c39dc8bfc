import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { VirtError } from '../../contracts/errors.ts';
import type { PoolView, VolumeView } from '../../contracts/storage/views.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call, serve } from '../../platform/rpc.ts';
import { DomainListRequest } from '../../contracts/views.ts';
import type { Projector } from './projector.ts';
import { listDomains } from './queries.ts';

/**
 * What a host agent may ask about its own host: the full query with the host taken from the subject,
 * which the server lets each host publish only for itself. A host never reaches `query.domain.list`
 * and so never sees another host's guests.
 */
export const serveHostQueries = (n: Nats, p: Projector, log: Logger): Subscription[] => [
  // Answered here, from the same memory as query.domain.list: an agent asks after every task.
  serve(n.nc, subjects.hostQuery('*', 'domain', 'list'), QUEUES.query, DomainListRequest, (req, m) => listDomains(n, p, { ...req, host: m.subject.split('.')[1] ?? '' }), log),
  // The host's own pools, for its agent's autostart at start: query.pool.list with the host filled in.
  serve(
    n.nc,
    subjects.hostQuery('*', 'pool', 'list'),
    QUEUES.query,
    z.looseObject({}),
    async (req, m) => {
      const host = m.subject.split('.')[1] ?? '';
      const { ok: _ok, ...reply } = await call(n.nc, subjects.query('pool', 'list'), { ...req, host }, 30_000);
      return reply;
    },
    log,
  ),
  // A volume of one of the host's own pools, with its pool: what a host checks before streaming it.
  serve(
    n.nc,
    subjects.hostQuery('*', 'vol', 'get'),
    QUEUES.query,
    z.object({ pool: z.string().min(1).max(255), volume: z.string().min(1).max(255) }),
    async (req, m) => {
      const host = m.subject.split('.')[1] ?? '';
      const { pool } = await call<{ pool: PoolView }>(n.nc, subjects.query('pool', 'get'), { pool: req.pool }, 30_000);
      // Another host's pool is, to this host, no pool at all.
      if (pool.hostId !== host) throw new VirtError('no-storage-pool', `no storage pool with matching uuid '${req.pool}'`);
      const { volume } = await call<{ volume: VolumeView }>(n.nc, subjects.query('vol', 'get'), { pool: pool.id, volume: req.volume }, 30_000);
      return { pool, volume };
    },
    log,
  ),
];
