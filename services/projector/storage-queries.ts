import type { Subscription } from '@nats-io/transport-node';
import { virtError } from '../../contracts/errors.ts';
import { DomainId } from '../../contracts/ids.ts';
import { findVolume, inFlight, noPool, noVolume, type PoolAggregate } from '../../contracts/storage/decider.ts';
import { PoolGetRequest, PoolListRequest, toPoolView, toVolumeView, VolGetRequest, VolListRequest } from '../../contracts/storage/views.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { pageOf, replyBudget } from './paging.ts';
import type { Projector } from './projector.ts';
import { DEFAULT_WAIT_MS, reachSeq } from './queries.ts';


/** query.pool.{get,list} and query.vol.{get,list}, answered from the projector's memory. */
export const serveStorageQueries = (n: Nats, p: Projector, log: Logger): Subscription[] => {
  const pools = p.pools;
  const byUuid = (ref: string) => DomainId.safeParse(ref).success;
  const findId = (ref: string): string | undefined => (byUuid(ref) && pools.get(ref) ? ref : pools.idByName(ref));
  const find = (ref: string): PoolAggregate | undefined => {
    const id = findId(ref);
    return id ? pools.get(id) : undefined;
  };
  const missing = (ref: string) => noPool(ref, byUuid(ref) ? 'uuid' : 'name');

  /** Read-your-writes: waits until the pool reached `minVersion` (and `task` left the in-flight set). */
  const reach = async (ref: string, minVersion = 0, waitMs = DEFAULT_WAIT_MS, task?: string): Promise<PoolAggregate> => {
    const reached = () => {
      const s = find(ref);
      // A pool removed by the awaited write has no view; reaching the sequence is enough then.
      const versionReached = minVersion === 0 || (s ? s.version >= minVersion : p.lastSeq >= minVersion);
      return versionReached && (!task || !s || !inFlight(s).some((t) => t.taskId === task));
    };
    const ok = await p.waitFor(reached, minVersion > 0 || task ? waitMs : 0);
    const s = find(ref);
    if (!s) {
      // A pool-create whose start failed leaves no pool: whoever waits on the start learns why.
      const failed = task && byUuid(ref) ? pools.raw(ref)?.recentTasks.find((t) => t.taskId === task && !t.ok && t.error) : undefined;
      if (failed?.error) throw virtError(failed.error.code, failed.error.message, { op: failed.op });
      throw missing(ref);
    }
    if (!ok && s.version < minVersion) {
      throw virtError('timeout', `the view of pool '${ref}' has not reached version ${minVersion} within ${waitMs} ms (it is at ${s.version})`);
    }
    return s;
  };

  /** libvirt looks volumes up only in active pools. */
  const activePool = (s: PoolAggregate) => {
    if (!s.active) throw virtError('operation-invalid', `storage pool '${s.name}' is not active`);
    return s;
  };

  /** `name` with a pool; `pool/name`, or a key (path) on its own. */
  const locate = async (req: VolGetRequest): Promise<{ pool: PoolAggregate; name: string }> => {
    if (req.pool !== undefined) {
      const pool = activePool(await reach(req.pool, req.minVersion, req.waitMs));
      const name = req.volume.startsWith('/') ? (pool.volumes.find((v) => v.path === req.volume)?.name ?? req.volume) : req.volume;
      return { pool, name };
    }
    if (req.volume.startsWith('/')) {
      for (const pool of pools.values()) {
        const v = pool.active ? pool.volumes.find((x) => x.path === req.volume) : undefined;
        if (v) return { pool, name: v.name };
      }
      throw virtError('no-storage-vol', `no storage vol with matching path '${req.volume}'`);
    }
    const slash = req.volume.indexOf('/');
    if (slash <= 0) throw virtError('invalid-arg', `invalid argument: name the pool of volume '${req.volume}' (pool/name, or give the pool)`);
    const pool = activePool(await reach(req.volume.slice(0, slash), req.minVersion, req.waitMs));
    return { pool, name: req.volume.slice(slash + 1) };
  };

  const q = QUEUES.query;
  return [
    serve(
      n.nc,
      subjects.query('pool', 'get'),
      q,
      PoolGetRequest,
      async (req) => {
        const s = await reach(req.pool, req.minVersion, req.waitMs, req.task);
        const view = toPoolView(s, new Date().toISOString());
        const task = req.task ? s.recentTasks.find((t) => t.taskId === req.task) : undefined;
        return { pool: view, ...(task ? { task } : {}) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('pool', 'list'),
      q,
      PoolListRequest,
      async (req) => {
        await reachSeq(p, req.minSeq, req.waitMs);
        const now = new Date().toISOString();
        const seq = p.lastSeq;
        const matching = [...pools.values()].filter((s) => (req.all || s.active) && (!req.host || s.hostId === req.host) && (req.autostart === undefined || (s.autostart ?? false) === req.autostart));
        const page = pageOf(matching, (s) => [s.name, s.id], (s) => toPoolView(s, now), req, replyBudget(n));
        return { pools: page.items, seq, ...(page.next ? { next: page.next } : {}) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('vol', 'get'),
      q,
      VolGetRequest,
      async (req) => {
        const { pool, name } = await locate(req);
        const v = findVolume(pool, name);
        if (!v) throw noVolume(name);
        return { volume: toVolumeView(pool, v) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('vol', 'list'),
      q,
      VolListRequest,
      async (req) => {
        const pool = activePool(await reach(req.pool, req.minVersion, req.waitMs));
        const page = pageOf(pool.volumes, (v) => [v.name], (v) => toVolumeView(pool, v), req, replyBudget(n));
        return { volumes: page.items, pool: pool.name, version: pool.version, seq: p.lastSeq, ...(page.next ? { next: page.next } : {}) };
      },
      log,
    ),
  ];
};
