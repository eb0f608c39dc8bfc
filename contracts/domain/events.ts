import { z } from 'zod';
import { DiskModel, DomainDefinition, InterfaceModel } from './definition.ts';
import { DomainStateName, ObservedState, RuntimeDevices, RuntimeInterface, StateReason } from './state.ts';
import { VirtErrorBody } from '../errors.ts';
import { NameClaimRevoked } from '../name-claim.ts';
import { DomainResourcesSet } from './resources.ts';
import { SnapshotName, SnapshotTask } from './snapshots.ts';
import { KeyPress } from './keycodes.ts';

/** Operations a host carries out. Each has an intent event `Domain<Op>Requested`. */
/** The power-state operations, each a virsh verb of its own. */
export const LifecycleOp = z.enum(['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot']);
export type LifecycleOp = z.infer<typeof LifecycleOp>;
/** reset and managedsave are host operations too, though neither is asked for by a plain power verb. */
export const DomainOp = z.enum([...LifecycleOp.options, 'attach-interface', 'detach-interface', 'set-memory', 'set-vcpus', 'reset', 'managedsave', 'attach-disk', 'detach-disk', 'update-disk', 'save', 'snapshot-create', 'snapshot-revert', 'snapshot-delete', 'send-key', 'inject-nmi', 'block-resize', 'screenshot']);
export type DomainOp = z.infer<typeof DomainOp>;

export const REQUESTED_EVENT = {
  start: 'DomainStartRequested',
  shutdown: 'DomainShutdownRequested',
  destroy: 'DomainDestroyRequested',
  suspend: 'DomainSuspendRequested',
  resume: 'DomainResumeRequested',
  reboot: 'DomainRebootRequested',
  'attach-interface': 'DomainInterfaceAttachRequested',
  'detach-interface': 'DomainInterfaceDetachRequested',
  'set-memory': 'DomainMemorySetRequested',
  'set-vcpus': 'DomainVcpusSetRequested',
  reset: 'DomainResetRequested',
  managedsave: 'DomainManagedSaveRequested',
  'attach-disk': 'DomainDiskAttachRequested',
  'detach-disk': 'DomainDiskDetachRequested',
  'update-disk': 'DomainDiskUpdateRequested',
  save: 'DomainSaveRequested',
  'snapshot-create': 'DomainSnapshotRequested',
  'snapshot-revert': 'DomainSnapshotRevertRequested',
  'snapshot-delete': 'DomainSnapshotDeleteRequested',
  'send-key': 'DomainSendKeyRequested',
  'inject-nmi': 'DomainNmiInjectRequested',
  'block-resize': 'DomainBlockResizeRequested',
  screenshot: 'DomainScreenshotRequested',
} as const satisfies Record<DomainOp, string>;

const Requested = z.object({
  hostId: z.string(),
  placementEpoch: z.number().int().nonnegative(),
  /** When the operation is recorded as failed if the host has not reported by then. */
  deadline: z.iso.datetime(),
  paused: z.boolean().optional(),
  /** attach-interface: the interface to plug into the running guest. */
  iface: InterfaceModel.optional(),
  /** detach-interface: the MAC address of the interface to unplug. */
  mac: z.string().optional(),
  /** Interface and memory changes: also change the persistent definition (virsh --config with --live). */
  persistent: z.boolean().optional(),
  /** set-memory: the balloon's new target in KiB (virsh setmem --live on a running guest). */
  memoryKiB: z.number().int().positive().optional(),
  /** set-vcpus: the vCPUs to have online (virsh setvcpus --live on a running guest: hot-plug or unplug). */
  vcpus: z.number().int().positive().max(16384).optional(),
  /** attach-disk: the disk to plug; update-disk: the disk as it is to be (its media changed). */
  disk: DiskModel.optional(),
  /** detach-disk: the target (vdb, hdc) of the disk to unplug. */
  target: z.string().optional(),
  /** save: the image to write on the host; start: the image to restore from (virsh restore). */
  file: z.string().optional(),
  /** Snapshot operations: which snapshot, and what the log records once the host is done (snapshots.ts). */
  snapshot: SnapshotTask.optional(),
  /** send-key: the keys to press, as asked (guest-actions.ts). */
  keys: KeyPress.optional(),
  /** block-resize: the disk's new size in bytes (its disk is `target`). */
  bytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /** screenshot: which of the guest's screens (video devices). */
  screen: z.number().int().nonnegative().max(64).optional(),
});

const requested = <T extends string>(type: T) => z.object({ type: z.literal(type), data: Requested });

export const DomainEventBody = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('DomainDefined'),
    data: z.object({
      definition: DomainDefinition,
      hostId: z.string(),
      placementEpoch: z.number().int().nonnegative(),
      /** libvirt: DEFINED/ADDED for a new domain, DEFINED/UPDATED for a changed config. */
      added: z.boolean(),
      /** Created by virsh create: the domain has no persistent definition and goes when it stops. */
      transient: z.boolean().optional(),
    }),
  }),
  z.object({
    type: z.literal('DomainUndefined'),
    /** An active domain stays as a transient one; an inactive one is removed. */
    data: z.object({ removed: z.boolean() }),
  }),
  requested('DomainStartRequested'),
  requested('DomainShutdownRequested'),
  requested('DomainDestroyRequested'),
  requested('DomainSuspendRequested'),
  requested('DomainResumeRequested'),
  requested('DomainRebootRequested'),
  requested('DomainInterfaceAttachRequested'),
  requested('DomainInterfaceDetachRequested'),
  requested('DomainMemorySetRequested'),
  requested('DomainVcpusSetRequested'),
  requested('DomainResetRequested'),
  requested('DomainManagedSaveRequested'),
  requested('DomainDiskAttachRequested'),
  requested('DomainDiskDetachRequested'),
  requested('DomainDiskUpdateRequested'),
  requested('DomainSaveRequested'),
  requested('DomainSnapshotRequested'),
  requested('DomainSnapshotRevertRequested'),
  requested('DomainSnapshotDeleteRequested'),
  requested('DomainSendKeyRequested'),
  requested('DomainNmiInjectRequested'),
  requested('DomainBlockResizeRequested'),
  requested('DomainScreenshotRequested'),
  z.object({
    /** virsh snapshot-current <name>: which snapshot is current, and so the parent of the next. */
    type: z.literal('DomainSnapshotCurrentSet'),
    data: z.object({ name: SnapshotName }),
  }),
  z.object({
    /** virsh snapshot-delete --metadata, undefine --snapshots-metadata: the log forgets them; the host's data stays. */
    type: z.literal('DomainSnapshotsForgotten'),
    data: z.object({ names: z.array(SnapshotName) }),
  }),
  z.object({
    /** virsh autostart: the domain is started when its host's agent starts. */
    type: z.literal('DomainAutostartSet'),
    data: z.object({ autostart: z.boolean() }),
  }),
  z.object({
    /** virsh managedsave-remove: the next start boots afresh. */
    type: z.literal('DomainManagedSaveRemoved'),
    data: z.object({}),
  }),
  z.object({
    type: z.literal('DomainOperationCompleted'),
    data: z.object({
      op: DomainOp,
      taskId: z.string(),
      observed: ObservedState,
      /** The devices the host gave the guest's interfaces, when the operation (re)created them. */
      interfaces: z.array(RuntimeInterface).optional(),
      /** Display ports and console ptys the running guest got, when the operation left it running. */
      devices: RuntimeDevices.optional(),
    }),
  }),
  z.object({
    type: z.literal('DomainOperationFailed'),
    data: z.object({
      op: DomainOp,
      taskId: z.string(),
      error: VirtErrorBody,
      observed: ObservedState.optional(),
    }),
  }),
  z.object({
    /** virsh domrename: the domain keeps its uuid and everything else. */
    type: z.literal('DomainRenamed'),
    /** `xml`: the stored document with its new <name>, when the domain was defined from XML. */
    data: z.object({ name: z.string(), xml: z.string().optional() }),
  }),
  z.object({
    /** virDomainSetMetadata: the live definition, the persistent one, or both. */
    type: z.literal('DomainMetadataSet'),
    data: z.object({ field: z.enum(['description', 'title', 'metadata']), value: z.string(), live: z.boolean(), config: z.boolean() }),
  }),
  /** virsh setmem, setmaxmem, setvcpus: see resources.ts. */
  DomainResourcesSet,
  z.object({
    /**
     * The running guest's disks are not those of its live definition: a hot-plug finished after its
     * operation was recorded failed (or the reverse). The live definition follows the guest.
     */
    type: z.literal('DomainDisksObserved'),
    data: z.object({ added: z.array(DiskModel), removed: z.array(z.string()) }),
  }),
  z.object({
    /** The host's view of the guest's interfaces changed: devices, or addresses the guest took. */
    type: z.literal('DomainInterfacesObserved'),
    data: z.object({ interfaces: z.array(RuntimeInterface) }),
  }),
  z.object({
    /**
     * The domain's host was declared lost: what its guest does is unknown until the host returns or
     * an operator says it is off. Any operation in flight was recorded failed before it.
     */
    type: z.literal('DomainHostLost'),
    data: z.object({
      hostId: z.string(),
      /** The expired lease revision this loss was decided on: one loss is recorded once per domain. */
      leaseRevision: z.number().int().nonnegative().optional(),
      /** What the domain asked for before the loss (an operation in flight fails with it). */
      desired: DomainStateName.optional(),
    }),
  }),
  z.object({
    /**
     * Restarted elsewhere after its host was lost (its guest known fenced): the domain now belongs to
     * `hostId` under a new ownership epoch, so anything the old host says or takes later is refused.
     */
    type: z.literal('DomainFailedOver'),
    data: z.object({ fromHostId: z.string(), hostId: z.string(), placementEpoch: z.number().int().nonnegative() }),
  }),
  z.object({
    /**
     * An operator evacuates the domain's host: its guest is stopped there, then the domain moves to
     * another host (and is started there when `start` says so). Recorded before anything is stopped,
     * so a repeated or interrupted evacuation carries on with what the domain was doing.
     */
    type: z.literal('DomainEvacuationStarted'),
    data: z.object({ fromHostId: z.string(), start: z.enum(['running', 'paused']).optional() }),
  }),
  z.object({
    /** Moved off an evacuated host, its guest stopped there: ownership passes under a new epoch. */
    type: z.literal('DomainEvacuated'),
    data: z.object({ fromHostId: z.string(), hostId: z.string(), placementEpoch: z.number().int().nonnegative() }),
  }),
  z.object({
    /** A change the host saw that no operation asked for: a guest powered off, a process died. */
    type: z.literal('DomainStateObserved'),
    data: z.object({ state: DomainStateName, reason: StateReason, cause: z.string().optional() }),
  }),
  NameClaimRevoked,
]);
export type DomainEventBody = z.infer<typeof DomainEventBody>;
export type DomainEventType = DomainEventBody['type'];
