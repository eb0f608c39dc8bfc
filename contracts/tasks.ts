import { z } from 'zod';
import { DiskModel, DomainDefinition, InterfaceModel } from './domain/definition.ts';
import { DomainOp } from './domain/events.ts';
import { SnapshotTask } from './domain/snapshots.ts';
import { KeyPress } from './domain/keycodes.ts';
import { ObservedState, RuntimeDevices, RuntimeInterface } from './domain/state.ts';
import { VirtErrorBody } from './errors.ts';
import { DomainId, TaskId } from './ids.ts';

/**
 * Work for one host, derived from an intent event. The task id is the intent event's id, so a task
 * published twice is one task; `version` and `placementEpoch` let the agent and the command service
 * recognise a task that has been overtaken.
 */
export const DomainTask = z.object({
  kind: z.literal('domain'),
  taskId: z.string(),
  op: DomainOp,
  domainId: z.string(),
  name: z.string(),
  version: z.number().int(),
  placementEpoch: z.number().int(),
  deadline: z.iso.datetime(),
  paused: z.boolean().optional(),
  /** start: the domain has a managed save image to resume from. */
  restore: z.boolean().optional(),
  /** save: the image to write; start: the image to restore from (virsh save, restore). */
  file: z.string().optional(),
  iface: InterfaceModel.optional(),
  mac: z.string().optional(),
  /** set-memory: the balloon's new target in KiB. */
  memoryKiB: z.number().int().positive().optional(),
  /** set-vcpus: the vCPUs to have online. */
  vcpus: z.number().int().positive().optional(),
  /** attach-disk, update-disk: the disk as the guest is to have it. */
  disk: DiskModel.optional(),
  /** detach-disk: the target of the disk to unplug. */
  target: z.string().optional(),
  /** Snapshot operations: the snapshot to take, revert to or delete. */
  snapshot: SnapshotTask.optional(),
  /** send-key: the keys to press. */
  keys: KeyPress.optional(),
  /** block-resize: the disk's new size in bytes (its disk is `target`). */
  bytes: z.number().int().nonnegative().optional(),
  /** screenshot: which screen. */
  screen: z.number().int().nonnegative().optional(),
  definition: DomainDefinition,
  correlationId: z.string(),
  traceparent: z.string().optional(),
});
export type DomainTask = z.infer<typeof DomainTask>;

export const ClaimRequest = z.object({ taskId: TaskId, domainId: DomainId, placementEpoch: z.number().int() });
export type ClaimRequest = z.infer<typeof ClaimRequest>;
/** Several claims in one request (answered `{ results }`, in order, each entry as a reply of its own): what a host asks at once when handed several tasks. */
export const ClaimRequests = z.union([ClaimRequest, z.object({ claims: z.array(ClaimRequest).min(1).max(256) })]);
export type ClaimRequests = z.infer<typeof ClaimRequests>;
export const ClaimReply = z.object({ proceed: z.boolean(), reason: z.string().optional() });
export type ClaimReply = z.infer<typeof ClaimReply>;
/** What an agent says about a domain: an outcome of a task, or a change it saw on its own. */
const Report = z.object({
  /** Chosen by the agent and kept across retries: the report is recorded once. */
  reportId: z.string().min(8).max(160),
});

export const ReportRequest = z.discriminatedUnion('kind', [
  Report.extend({
    kind: z.literal('completed'),
    domainId: DomainId,
    taskId: TaskId,
    observed: ObservedState,
    interfaces: z.array(RuntimeInterface).optional(),
    devices: RuntimeDevices.optional(),
  }),
  Report.extend({
    kind: z.literal('failed'),
    domainId: DomainId,
    taskId: TaskId,
    error: VirtErrorBody,
    observed: ObservedState.optional(),
  }),
  Report.extend({ kind: z.literal('interfaces'), domainId: DomainId, interfaces: z.array(RuntimeInterface) }),
  /** The disks the running guest really has, when they differ from its live definition (found by the resync). */
  Report.extend({ kind: z.literal('disks'), domainId: DomainId, disks: z.array(DiskModel) }),
  Report.extend({ kind: z.literal('observed'), domainId: DomainId, observed: ObservedState, cause: z.string().optional() }),
  /** The agent started: the domain, if marked autostart and shut off, is to be started. */
  Report.extend({ kind: z.literal('autostart'), domainId: DomainId }),
]);
export type ReportRequest = z.infer<typeof ReportRequest>;
/** Several reports in one request (answered `{ results }`, each entry as a reply of its own): what a host sends at once when several tasks finish together. */
export const ReportRequests = z.union([ReportRequest, z.object({ reports: z.array(ReportRequest).min(1).max(256) })]);
export type ReportRequests = z.infer<typeof ReportRequests>;
