import { z } from 'zod';
import { PageRequest } from '../views.ts';
import { ObjectRef } from '../ids.ts';
import { VirtErrorBody } from '../errors.ts';
import { inFlight, isPersistent, poolStateName, type PoolAggregate, type VolumeEntry } from './decider.ts';
import { StoragePoolDefinition, StorageVolumeDefinition } from './definition.ts';
import { StorageOp } from './events.ts';

const Pending = z.object({ op: StorageOp, taskId: z.string(), requestedAt: z.string(), deadline: z.string() });

export const TaskOutcomeView = z.object({
  taskId: z.string(),
  op: StorageOp,
  name: z.string().optional(),
  ok: z.boolean(),
  error: VirtErrorBody.optional(),
  at: z.string(),
});
export type TaskOutcomeView = z.infer<typeof TaskOutcomeView>;

export const PoolView = z.object({
  id: z.string(),
  name: z.string(),
  hostId: z.string(),
  type: z.string(),
  /** virStoragePoolState: inactive, building, running. */
  state: z.enum(['inactive', 'building', 'running']),
  active: z.boolean(),
  persistent: z.boolean(),
  autostart: z.boolean(),
  definition: StoragePoolDefinition,
  nextDefinition: StoragePoolDefinition.nullable(),
  /** Filesystem figures of the target, from the host's last report; null before the first start. */
  capacityBytes: z.number().nullable(),
  allocationBytes: z.number().nullable(),
  availableBytes: z.number().nullable(),
  /** Build or start in flight. */
  pending: Pending.nullable(),
  /** Every operation in flight on the pool and its volumes. */
  inFlight: z.array(Pending),
  volumes: z.number().int(),
  /** Outcomes of the latest host operations, newest last. */
  recentTasks: z.array(TaskOutcomeView),
  version: z.number().int(),
  updatedAt: z.string(),
});
export type PoolView = z.infer<typeof PoolView>;

export const VolumeView = z.object({
  pool: z.string(),
  poolId: z.string(),
  name: z.string(),
  key: z.string(),
  path: z.string(),
  type: z.string(),
  format: z.string(),
  /** What the host last saw; what was asked for until then. */
  capacityBytes: z.number(),
  allocationBytes: z.number(),
  backingStore: z.object({ path: z.string(), format: z.string().optional() }).nullable(),
  definition: StorageVolumeDefinition,
  pending: Pending.nullable(),
  version: z.number().int(),
});
export type VolumeView = z.infer<typeof VolumeView>;

export const PoolGetRequest = z.object({
  pool: ObjectRef,
  /** Read-your-writes: wait (briefly) until the view reflects at least this version. */
  minVersion: z.number().int().nonnegative().optional(),
  /** Also wait until this host task is no longer in flight: how the client waits for an outcome. */
  task: z.string().min(1).max(128).optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
});
export type PoolGetRequest = z.infer<typeof PoolGetRequest>;

export const PoolListRequest = z.object({
  /** virsh pool-list shows active pools unless --all. */
  all: z.boolean().default(false),
  /** virsh pool-list --autostart / --no-autostart. */
  autostart: z.boolean().optional(),
  host: z.string().optional(),
  minSeq: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
  ...PageRequest.shape,
});
export type PoolListRequest = z.infer<typeof PoolListRequest>;

export const VolGetRequest = z.object({
  /** The volume's name with `pool`; `pool/name`, or its key (path) without. */
  volume: z.string().min(1).max(4096),
  pool: ObjectRef.optional(),
  minVersion: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
});
export type VolGetRequest = z.infer<typeof VolGetRequest>;

export const VolListRequest = z.object({
  pool: ObjectRef,
  minVersion: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
  ...PageRequest.shape,
});
export type VolListRequest = z.infer<typeof VolListRequest>;

export const toPoolView = (s: PoolAggregate, updatedAt: string): PoolView => ({
  id: s.id,
  name: s.name,
  hostId: s.hostId,
  // A view exists only for defined pools, which always carry a definition.
  type: s.definition!.type,
  state: poolStateName(s),
  active: s.active,
  persistent: isPersistent(s),
  autostart: s.autostart ?? false,
  definition: s.definition!,
  nextDefinition: s.nextDefinition,
  capacityBytes: s.stats?.capacityBytes ?? null,
  allocationBytes: s.stats?.allocationBytes ?? null,
  availableBytes: s.stats?.availableBytes ?? null,
  pending: s.pending,
  inFlight: inFlight(s),
  volumes: s.volumes.filter((v) => v.pending?.op !== 'vol-create').length,
  recentTasks: s.recentTasks,
  version: s.version,
  updatedAt,
});

export const toVolumeView = (s: PoolAggregate, v: VolumeEntry): VolumeView => {
  const backing = v.info?.backingStore ?? (v.definition.backingStore?.path ? { path: v.definition.backingStore.path, ...(v.definition.backingStore.format ? { format: v.definition.backingStore.format } : {}) } : null);
  return {
    pool: s.name,
    poolId: s.id,
    name: v.name,
    key: v.path,
    path: v.path,
    type: v.info?.type ?? v.definition.type ?? 'file',
    format: v.info?.format ?? v.definition.target?.format ?? 'raw',
    capacityBytes: v.info?.capacityBytes ?? v.definition.capacityBytes,
    allocationBytes: v.info?.allocationBytes ?? v.definition.allocationBytes ?? v.definition.capacityBytes,
    backingStore: backing,
    definition: v.definition,
    pending: v.pending,
    version: s.version,
  };
};
