import type { DiskModel, DomainDefinition, InterfaceModel } from './definition.ts';
import type { DomainOp, LifecycleOp } from './events.ts';
import type { DomainStateName, ObservedState, RuntimeDevices, RuntimeInterface } from './state.ts';
import type { ClaimFence } from '../name-claim.ts';
import type { SnapshotRecord, SnapshotTask } from './snapshots.ts';
import { versionOfCommand } from '../recent-commands.ts';
import type { KeyPress } from './keycodes.ts';

/**
 * The state the domain decider keeps for one domain, and what more than one of its parts needs of
 * it (which operation an intent event asks for, what the domain asks for once it is requested):
 * kept here, where every part can import it without an import cycle. decider.ts exports the
 * aggregate again for its callers.
 */

type Carried = Pick<PendingOperation, 'iface' | 'mac' | 'memoryKiB' | 'vcpus' | 'disk' | 'target' | 'file' | 'snapshot' | 'keys' | 'bytes'>;

/** What an intent carries for its host besides the definition: kept with the pending operation, and put in its task. */
export const carriedByIntent = (d: Carried): Carried => ({
  ...(d.iface ? { iface: d.iface } : {}),
  ...(d.mac ? { mac: d.mac } : {}),
  ...(d.memoryKiB !== undefined ? { memoryKiB: d.memoryKiB } : {}),
  ...(d.vcpus !== undefined ? { vcpus: d.vcpus } : {}),
  ...(d.disk ? { disk: d.disk } : {}),
  ...(d.target ? { target: d.target } : {}),
  ...(d.file !== undefined ? { file: d.file } : {}),
  ...(d.snapshot ? { snapshot: d.snapshot } : {}),
  ...(d.keys ? { keys: d.keys } : {}),
  ...(d.bytes !== undefined ? { bytes: d.bytes } : {}),
});

export interface PendingOperation {
  op: DomainOp;
  /** The intent event's id, which is also the task id. */
  taskId: string;
  requestedAt: string;
  deadline: string;
  /** Interface operations: what to plug or unplug, and whether the definition changes too. */
  iface?: InterfaceModel;
  mac?: string;
  persistent?: boolean;
  /** set-memory: the balloon's target. */
  memoryKiB?: number;
  /** set-vcpus: the vCPUs online. */
  vcpus?: number;
  /** Disk operations (devices.ts): the disk to plug or change, or the target to unplug. */
  disk?: DiskModel;
  target?: string;
  /** save, and a start that restores: the image on the host. */
  file?: string;
  /** Snapshot operations (snapshots.ts). */
  snapshot?: SnapshotTask;
  /** send-key: the keys pressed. */
  keys?: KeyPress;
  /** block-resize: the new size in bytes. */
  bytes?: number;
}

export interface DomainAggregate extends ClaimFence {
  /** False before the first definition and after removal. */
  exists: boolean;
  /** True once a removal was recorded. A later define of the same uuid makes a new domain, as in libvirt. */
  removed: boolean;
  id: string;
  name: string;
  definition: DomainDefinition | null;
  /** A definition recorded while the domain ran: it takes effect when the domain stops. */
  nextDefinition: DomainDefinition | null;
  persistent: boolean;
  hostId: string;
  placementEpoch: number;
  observed: ObservedState;
  /** Host devices of the running guest's interfaces; empty while it is shut off. */
  interfaces: RuntimeInterface[];
  /** Display ports and console ptys of the running guest; absent while it is shut off. */
  devices?: RuntimeDevices;
  /** What the last accepted operation asked for. */
  desired: DomainStateName;
  pending: PendingOperation | null;
  lastError: { op: DomainOp; taskId: string; code: string; message: string; at: string } | null;
  version: number;
  /** Recent command ids and the version they produced: a retry after the dedupe window is recognised. */
  recentCommands: Array<[string, number]>;
  /**
   * The host was declared lost: `observed` is nostate/unknown until the host reports again or an
   * operator says it is off; `lastObserved` is what was known before.
   */
  hostLost?: boolean;
  lastObserved?: ObservedState;
  /** The lease revision of the newest host loss recorded on this domain: each loss marks it once. */
  hostLostRevision?: number;
  /** Its host is being evacuated: once its guest is stopped there, it moves (and starts if `start`). */
  evacuating?: { fromHostId: string; start?: 'running' | 'paused' };
  /**
   * virsh's domain id while the guest runs: the log sequence of the commit that made it active, so
   * ids are unique across the fleet and a new one is given at each start, as libvirt does.
   */
  domid?: number;
  /** virsh autostart: started when its host's agent starts (autostart-save.ts). */
  autostart?: boolean;
  /** virsh managedsave: its host holds a saved state, which the next start resumes. */
  managedSave?: boolean;
  /** virsh snapshot-*: the snapshots its host holds, in creation order, and the current one (snapshots.ts). */
  snapshots?: SnapshotRecord[];
  currentSnapshot?: string;
}

export const initialDomainState = (id: string): DomainAggregate => ({
  exists: false,
  removed: false,
  id,
  name: '',
  definition: null,
  nextDefinition: null,
  persistent: false,
  hostId: '',
  placementEpoch: 0,
  observed: { state: 'shutoff', reason: 'unknown' },
  interfaces: [],
  desired: 'shutoff',
  pending: null,
  lastError: null,
  version: 0,
  recentCommands: [],
  revokedClaimsUpTo: 0,
});

const DESIRED_AFTER: Record<LifecycleOp, (paused: boolean) => DomainStateName> = {
  start: (paused) => (paused ? 'paused' : 'running'),
  shutdown: () => 'shutoff',
  destroy: () => 'shutoff',
  suspend: () => 'paused',
  resume: () => 'running',
  reboot: () => 'running',
};

/** What the domain asks for once an operation is requested: plugging a device or a reset changes no power state. */
export const desiredAfter = (op: DomainOp, paused: boolean, current: DomainStateName): DomainStateName => {
  switch (op) {
    case 'attach-interface':
    case 'detach-interface':
    case 'set-memory':
    case 'set-vcpus':
    case 'reset':
    case 'attach-disk':
    case 'detach-disk':
    case 'update-disk':
      // Plugging a device, resizing the balloon or a reset changes no power state.
    case 'snapshot-create':
    case 'snapshot-delete':
    case 'send-key':
    case 'inject-nmi':
    case 'block-resize':
    case 'screenshot':
      // Plugging a device, resizing the balloon, a reset or a snapshot changes no power state.
      return current;
    case 'snapshot-revert':
      // What the revert leaves is in its snapshot argument; the completion records what the host saw.
      return current;
    case 'managedsave':
    case 'save':
      return 'shutoff';
    default:
      return DESIRED_AFTER[op](paused);
  }
};

export const commandVersion = (s: DomainAggregate, commandId: string): number | undefined => versionOfCommand(s, commandId);

/** The operation each intent event asks for. */
export const OP_OF = {
  DomainStartRequested: 'start',
  DomainShutdownRequested: 'shutdown',
  DomainDestroyRequested: 'destroy',
  DomainSuspendRequested: 'suspend',
  DomainResumeRequested: 'resume',
  DomainRebootRequested: 'reboot',
  DomainInterfaceAttachRequested: 'attach-interface',
  DomainInterfaceDetachRequested: 'detach-interface',
  DomainMemorySetRequested: 'set-memory',
  DomainVcpusSetRequested: 'set-vcpus',
  DomainResetRequested: 'reset',
  DomainManagedSaveRequested: 'managedsave',
  DomainDiskAttachRequested: 'attach-disk',
  DomainDiskDetachRequested: 'detach-disk',
  DomainDiskUpdateRequested: 'update-disk',
  DomainSaveRequested: 'save',
  DomainSnapshotRequested: 'snapshot-create',
  DomainSnapshotRevertRequested: 'snapshot-revert',
  DomainSnapshotDeleteRequested: 'snapshot-delete',
  DomainSendKeyRequested: 'send-key',
  DomainNmiInjectRequested: 'inject-nmi',
  DomainBlockResizeRequested: 'block-resize',
  DomainScreenshotRequested: 'screenshot',
} as const satisfies Record<string, DomainOp>;
