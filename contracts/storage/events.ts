import { z } from 'zod';
import { VirtErrorBody } from '../errors.ts';
import { NameClaimRevoked } from '../name-claim.ts';
import { Permissions, StoragePoolDefinition, StorageVolumeDefinition } from './definition.ts';

/** Host work on a pool or one of its volumes. Each has an intent event carrying what the host needs. */
export const StorageOp = z.enum(['pool-build', 'pool-start', 'pool-refresh', 'pool-delete', 'vol-create', 'vol-delete', 'vol-resize', 'vol-wipe', 'vol-clone']);
export type StorageOp = z.infer<typeof StorageOp>;

/** What a host saw of one volume file: `qemu-img info`, as libvirt's refresh records it. */
export const VolumeInfo = z.object({
  name: z.string(),
  path: z.string(),
  type: z.enum(['file', 'dir', 'block']).default('file'),
  format: z.string(),
  capacityBytes: z.number().int().nonnegative(),
  allocationBytes: z.number().int().nonnegative(),
  backingStore: z.object({ path: z.string(), format: z.string().optional() }).optional(),
});
export type VolumeInfo = z.infer<typeof VolumeInfo>;

/** statvfs of the pool's target, as `virsh pool-info` shows it. */
export const PoolStats = z.object({
  capacityBytes: z.number().int().nonnegative(),
  allocationBytes: z.number().int().nonnegative(),
  availableBytes: z.number().int().nonnegative(),
});
export type PoolStats = z.infer<typeof PoolStats>;

export const PoolTarget = z.object({ path: z.string(), permissions: Permissions.optional() });
export type PoolTarget = z.infer<typeof PoolTarget>;

const Intent = {
  hostId: z.string(),
  /** When the operation is recorded as failed if the host has not reported by then. */
  deadline: z.iso.datetime(),
};

export const StorageEventBody = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('PoolDefined'),
    /** `added`: a new pool rather than a changed definition. */
    data: z.object({ definition: StoragePoolDefinition, hostId: z.string(), added: z.boolean() }),
  }),
  z.object({ type: z.literal('PoolUndefined'), data: z.object({}) }),
  z.object({
    /**
     * `virsh pool-create`: started with this definition (a PoolStartRequested follows in the same
     * commit). A new pool is transient, gone once stopped or if its start fails; an inactive
     * persistent pool runs the new definition until it stops.
     */
    type: z.literal('PoolCreated'),
    data: z.object({ definition: StoragePoolDefinition, hostId: z.string() }),
  }),
  z.object({ type: z.literal('PoolBuildRequested'), data: z.object({ ...Intent, target: PoolTarget }) }),
  z.object({ type: z.literal('PoolBuilt'), data: z.object({ taskId: z.string() }) }),
  z.object({
    type: z.literal('PoolStartRequested'),
    /** `build`: build first, as `virsh pool-start --build`. */
    data: z.object({ ...Intent, target: PoolTarget, build: z.boolean() }),
  }),
  z.object({
    type: z.literal('PoolStarted'),
    /** Starting refreshes the pool: the volumes are what the host found in the target. */
    data: z.object({ taskId: z.string(), stats: PoolStats.optional(), volumes: z.array(VolumeInfo) }),
  }),
  z.object({ type: z.literal('PoolDestroyed'), data: z.object({}) }),
  /** virsh pool-autostart: the pool's host starts it when its agent starts (contracts/storage/autostart.ts). */
  z.object({ type: z.literal('PoolAutostartSet'), data: z.object({ autostart: z.boolean() }) }),
  z.object({
    type: z.literal('VolumeCreateRequested'),
    data: z.object({ ...Intent, volume: StorageVolumeDefinition }),
  }),
  z.object({
    type: z.literal('VolumeCreated'),
    data: z.object({ taskId: z.string(), name: z.string(), info: VolumeInfo, stats: PoolStats.optional() }),
  }),
  z.object({
    type: z.literal('VolumeDeleteRequested'),
    data: z.object({ ...Intent, name: z.string(), path: z.string() }),
  }),
  z.object({
    type: z.literal('VolumeDeleted'),
    data: z.object({ taskId: z.string(), name: z.string(), stats: PoolStats.optional() }),
  }),
  z.object({ type: z.literal('PoolRefreshRequested'), data: z.object({ ...Intent, target: PoolTarget }) }),
  z.object({
    type: z.literal('PoolRefreshed'),
    /** What the host found in the target, as on start. */
    data: z.object({ taskId: z.string(), stats: PoolStats.optional(), volumes: z.array(VolumeInfo) }),
  }),
  /** `virsh pool-delete`: the pool's directory removed from the host; the pool stays defined. */
  z.object({ type: z.literal('PoolDeleteRequested'), data: z.object({ ...Intent, target: PoolTarget }) }),
  z.object({ type: z.literal('PoolDeleted'), data: z.object({ taskId: z.string() }) }),
  z.object({
    type: z.literal('VolumeResizeRequested'),
    /** The capacity to reach, already worked out from `--delta`; `shrink` allows going below the current one. */
    data: z.object({ ...Intent, name: z.string(), path: z.string(), capacityBytes: z.number().int().nonnegative(), shrink: z.boolean() }),
  }),
  z.object({
    type: z.literal('VolumeResized'),
    data: z.object({ taskId: z.string(), name: z.string(), info: VolumeInfo, stats: PoolStats.optional() }),
  }),
  z.object({ type: z.literal('VolumeWipeRequested'), data: z.object({ ...Intent, name: z.string(), path: z.string() }) }),
  z.object({
    type: z.literal('VolumeWiped'),
    data: z.object({ taskId: z.string(), name: z.string(), info: VolumeInfo, stats: PoolStats.optional() }),
  }),
  z.object({
    type: z.literal('VolumeCloneRequested'),
    /** `volume`: the new volume as it will be stored; `source`: the volume whose content it copies. */
    data: z.object({ ...Intent, volume: StorageVolumeDefinition, source: z.object({ name: z.string(), path: z.string() }) }),
  }),
  z.object({
    type: z.literal('VolumeCloned'),
    data: z.object({ taskId: z.string(), name: z.string(), info: VolumeInfo, stats: PoolStats.optional() }),
  }),
  z.object({
    /** Any host operation that failed or missed its deadline; `name` is the volume's, for volume work. */
    type: z.literal('StorageOperationFailed'),
    data: z.object({ op: StorageOp, taskId: z.string(), name: z.string().optional(), error: VirtErrorBody }),
  }),
  NameClaimRevoked,
]);
export type StorageEventBody = z.infer<typeof StorageEventBody>;
export type StorageEventType = StorageEventBody['type'];

export const STORAGE_INTENTS = {
  PoolBuildRequested: 'pool-build',
  PoolStartRequested: 'pool-start',
  VolumeCreateRequested: 'vol-create',
  VolumeDeleteRequested: 'vol-delete',
  PoolRefreshRequested: 'pool-refresh',
  PoolDeleteRequested: 'pool-delete',
  VolumeResizeRequested: 'vol-resize',
  VolumeWipeRequested: 'vol-wipe',
  VolumeCloneRequested: 'vol-clone',
} as const satisfies Partial<Record<StorageEventType, StorageOp>>;
