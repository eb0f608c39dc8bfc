import { z } from 'zod';
import { VirtErrorBody } from '../errors.ts';
import { subjects } from '../subjects.ts';
import { TaskId, Uuid } from '../ids.ts';
import { StorageVolumeDefinition } from './definition.ts';
import { PoolStats, PoolTarget, VolumeInfo } from './events.ts';

/**
 * Storage work for one host. It travels on `task.<hostId>.storage`, beside the domain tasks on
 * `task.<hostId>`: the two consumers' filters do not overlap, which a work-queue stream requires.
 * The task id is the intent event's id and the message id, so a task published twice is one task.
 */
export const storageSubjects = {
  task: (hostId: string) => `${subjects.task(hostId)}.storage`,
  claim: (hostId: string) => `agent.${hostId}.storage-claim`,
  report: (hostId: string) => `agent.${hostId}.storage-report`,
} as const;

export const STORAGE_DISPATCHER_CONSUMER = 'storage-dispatcher';
export const storageWorkerConsumer = (hostId: string) => `agent-${hostId}-storage`;

const TaskBase = z.object({
  kind: z.literal('storage'),
  taskId: z.string(),
  poolId: z.string(),
  /** The pool version the intent was recorded at. */
  version: z.number().int(),
  deadline: z.iso.datetime(),
  correlationId: z.string(),
  traceparent: z.string().optional(),
});

export const StorageTask = z.discriminatedUnion('op', [
  TaskBase.extend({ op: z.literal('pool-build'), target: PoolTarget }),
  TaskBase.extend({ op: z.literal('pool-start'), target: PoolTarget, build: z.boolean() }),
  TaskBase.extend({ op: z.literal('vol-create'), volume: StorageVolumeDefinition }),
  TaskBase.extend({ op: z.literal('vol-delete'), name: z.string(), path: z.string() }),
  TaskBase.extend({ op: z.literal('pool-refresh'), target: PoolTarget }),
  TaskBase.extend({ op: z.literal('pool-delete'), target: PoolTarget }),
  TaskBase.extend({ op: z.literal('vol-resize'), name: z.string(), path: z.string(), capacityBytes: z.number().int().nonnegative(), shrink: z.boolean() }),
  TaskBase.extend({ op: z.literal('vol-wipe'), name: z.string(), path: z.string() }),
  TaskBase.extend({ op: z.literal('vol-clone'), volume: StorageVolumeDefinition, source: z.object({ name: z.string(), path: z.string() }) }),
]);
export type StorageTask = z.infer<typeof StorageTask>;

export const StorageClaimRequest = z.object({ taskId: TaskId, poolId: Uuid });
export type StorageClaimRequest = z.infer<typeof StorageClaimRequest>;

export const StorageResultBody = z.discriminatedUnion('op', [
  z.object({ op: z.literal('pool-build') }),
  z.object({ op: z.literal('pool-start'), stats: PoolStats.optional(), volumes: z.array(VolumeInfo) }),
  z.object({ op: z.literal('vol-create'), info: VolumeInfo, stats: PoolStats.optional() }),
  z.object({ op: z.literal('vol-delete'), stats: PoolStats.optional() }),
  z.object({ op: z.literal('pool-refresh'), stats: PoolStats.optional(), volumes: z.array(VolumeInfo) }),
  z.object({ op: z.literal('pool-delete') }),
  z.object({ op: z.literal('vol-resize'), info: VolumeInfo, stats: PoolStats.optional() }),
  z.object({ op: z.literal('vol-wipe'), info: VolumeInfo, stats: PoolStats.optional() }),
  z.object({ op: z.literal('vol-clone'), info: VolumeInfo, stats: PoolStats.optional() }),
]);

const Report = z.object({
  /** Chosen by the host and kept across retries: the report is recorded once. */
  reportId: z.string().min(8).max(160),
  poolId: Uuid,
  taskId: TaskId,
});

export const StorageReportRequest = z.discriminatedUnion('kind', [
  Report.extend({ kind: z.literal('completed'), result: StorageResultBody }),
  Report.extend({ kind: z.literal('failed'), error: VirtErrorBody }),
  /** A host agent that started asks for the start of one of its inactive autostart pools; decided against the log. */
  Report.omit({ taskId: true }).extend({ kind: z.literal('autostart') }),
]);
export type StorageReportRequest = z.infer<typeof StorageReportRequest>;
