import type { DiskModel, DomainDefinition, InterfaceModel } from './definition.ts';
import { DEFAULT_TIMEOUT_MS, type DomainCommand } from './commands.ts';
import { REQUESTED_EVENT, type DomainEventBody, type DomainOp, type LifecycleOp } from './events.ts';
import { isActive, type DomainStateName, type ObservedState, type RuntimeDevices, type RuntimeInterface } from './state.ts';
import { virtError } from '../errors.ts';
import { restartsOnHostLoss } from './ha.ts';
import { decideResources, evolveResources, resourceOpChange } from './resources.ts';
import { formatDomainXml } from '../xml/domain.ts';
import type { Envelope } from '../envelope.ts';
import { applyRevocation, requireLiveClaim, type ClaimFence } from '../name-claim.ts';
import { checkManagedSave, decideFlags, evolveFlags, undefineSaveEvents } from './autostart-save.ts';
import { decideDisk, diskChange, evolveDisksObserved } from './devices.ts';
import { checkSave, decideRestore } from './save-restore.ts';
import { withAppMetadata } from './metadata.ts';
import { decideSnapshot, evolveSnapshots, undefineSnapshotEvents, type SnapshotRecord, type SnapshotTask } from './snapshots.ts';
import { rememberCommand, versionOfCommand } from '../recent-commands.ts';
import { defineToStart } from './define-to-start.ts';
import { checkGuestAction, resolveBlockResize } from './guest-actions.ts';
import type { KeyPress } from './keycodes.ts';

/**
 * The domain decider: pure functions, no I/O. `decide` answers a command with events or throws a
 * VirtError in libvirt's vocabulary; `evolve` folds one event into the state. The command service
 * and the projector share `evolve`, so the view can never disagree with what the decider saw.
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
const desiredAfter = (op: DomainOp, paused: boolean, current: DomainStateName): DomainStateName => {
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

const pendingExpired = (p: PendingOperation, now: Date): boolean => Date.parse(p.deadline) <= now.getTime();

const timeoutFailure = (p: PendingOperation): DomainEventBody => ({
  type: 'DomainOperationFailed',
  data: {
    op: p.op,
    taskId: p.taskId,
    error: { code: 'timeout', message: `operation '${p.op}' did not finish before its deadline ${p.deadline}` },
  },
});

interface RequestArgs {
  paused?: boolean;
  iface?: InterfaceModel;
  mac?: string;
  persistent?: boolean;
  memoryKiB?: number;
  vcpus?: number;
  disk?: DiskModel;
  target?: string;
  file?: string;
  snapshot?: SnapshotTask;
  keys?: KeyPress;
  bytes?: number;
  screen?: number;
}

const requestedEvent = (s: DomainAggregate, op: DomainOp, now: Date, timeoutMs: number, args: RequestArgs = {}): DomainEventBody => ({
  type: REQUESTED_EVENT[op],
  data: {
    hostId: s.hostId,
    placementEpoch: s.placementEpoch,
    deadline: new Date(now.getTime() + timeoutMs).toISOString(),
    ...(args.paused ? { paused: true } : {}),
    ...(args.iface ? { iface: args.iface } : {}),
    ...(args.mac ? { mac: args.mac } : {}),
    ...(args.persistent !== undefined ? { persistent: args.persistent } : {}),
    ...(args.memoryKiB !== undefined ? { memoryKiB: args.memoryKiB } : {}),
    ...(args.vcpus !== undefined ? { vcpus: args.vcpus } : {}),
    ...(args.disk ? { disk: args.disk } : {}),
    ...(args.target ? { target: args.target } : {}),
    ...(args.file !== undefined ? { file: args.file } : {}),
    ...(args.snapshot ? { snapshot: args.snapshot } : {}),
    ...(args.keys ? { keys: args.keys } : {}),
    ...(args.bytes !== undefined ? { bytes: args.bytes } : {}),
    ...(args.screen !== undefined ? { screen: args.screen } : {}),
  },
});

/** libvirt's own words (virDomainObjCheckActive); the domain's name goes in the details. */
const notRunning = (s: DomainAggregate) => virtError('operation-invalid', 'domain is not running', { domain: s.name });

/** Domains of type `test` run on the test driver, whose checks and messages differ from the QEMU driver's. */
export const onTestDriver = (s: Pick<DomainAggregate, 'definition'>): boolean => s.definition?.type === 'test';

/**
 * Checks an operation against the last observed state, with libvirt's rules and messages for the
 * domain's driver: the test driver answers INTERNAL_ERROR "domain 'x' not running" to shutdown and
 * suspend of a domain it cannot act on (a paused one included) and "not paused" to resume, where the
 * QEMU driver says OPERATION_INVALID.
 */
const checkTransition = (op: DomainOp, s: DomainAggregate): void => {
  const { state } = s.observed;
  const test = onTestDriver(s);
  switch (op) {
    case 'start':
      if (isActive(state)) throw virtError('operation-invalid', 'domain is already running', { domain: s.name });
      return;
    case 'shutdown':
      if (!isActive(state)) throw test ? virtError('internal-error', `domain '${s.name}' not running`) : notRunning(s);
      return;
    case 'destroy':
    case 'reboot':
      if (!isActive(state)) throw notRunning(s);
      return;
    case 'suspend':
      if (test && (!isActive(state) || state === 'paused')) throw virtError('internal-error', `domain '${s.name}' not running`);
      if (!isActive(state)) throw notRunning(s);
      if (state === 'paused') throw virtError('operation-invalid', `domain '${s.name}' is already paused`);
      return;
    case 'resume':
      if (state !== 'paused') throw test ? virtError('internal-error', `domain '${s.name}' not paused`) : virtError('operation-invalid', `domain '${s.name}' is not paused`);
      return;
    case 'attach-interface':
    case 'detach-interface':
    case 'set-memory':
    case 'set-vcpus':
    case 'reset':
    case 'attach-disk':
    case 'detach-disk':
    case 'update-disk':
    case 'send-key':
    case 'inject-nmi':
    case 'block-resize':
      if (!isActive(state)) throw notRunning(s);
      return;
    case 'screenshot':
      // libvirt's test driver draws its picture whatever the domain's state.
      if (!test && !isActive(state)) throw notRunning(s);
      return;
    case 'managedsave':
      return checkManagedSave(s, test);
    case 'save':
      return checkSave(s);
    case 'snapshot-create':
    case 'snapshot-revert':
    case 'snapshot-delete':
      // A snapshot is taken, reverted to or deleted in any state: the host decides how.
      return;
  }
};

/** Nothing can be asked of a guest whose host is lost: the answer comes at once, not at a deadline. */
const requireHostKnown = (s: DomainAggregate): void => {
  if (s.hostLost) {
    throw virtError(
      'operation-invalid',
      `domain '${s.name}' is on host '${s.hostId}', which is lost: its state is unknown (host lost); once the host is known to be off, 'destroy --force' records the domain shut off`,
      { hostId: s.hostId, hostLost: true },
    );
  }
};

const decideOperation = (op: DomainOp, s: DomainAggregate, now: Date, timeoutMs: number, args: RequestArgs = {}): DomainEventBody[] => {
  requireHostKnown(s);
  const before: DomainEventBody[] = [];
  const p = s.pending;
  if (p && pendingExpired(p, now)) {
    // An operation past its deadline never blocks the domain: record it failed, then go on.
    before.push(timeoutFailure(p));
    // The timeout settles the domain before the new operation: a transient one that is not running
    // goes with it, and an intent for it would reach a host for a domain nobody can address.
    if (!s.persistent && !isActive(s.observed.state)) requireDomain({ ...s, exists: false });
  } else if (p) {
    if (op === 'destroy' && p.op !== 'destroy') {
      // destroy is how operators get out of a stuck operation, so it supersedes whatever is in flight.
      before.push({
        type: 'DomainOperationFailed',
        data: {
          op: p.op,
          taskId: p.taskId,
          error: { code: 'operation-failed', message: `operation '${p.op}' was superseded by destroy` },
        },
      });
      return [...before, requestedEvent(s, 'destroy', now, timeoutMs)];
    }
    if (op === p.op && op === 'start') throw virtError('operation-invalid', `domain '${s.name}' is already being started`);
    if (op === p.op && op === 'destroy') throw virtError('operation-invalid', `domain '${s.name}' is already being destroyed`);
    throw virtError(
      'operation-invalid',
      `cannot acquire state change lock: domain '${s.name}' has operation '${p.op}' in progress since ${p.requestedAt}`,
      { pending: p },
    );
  }
  checkTransition(op, s);
  return [...before, requestedEvent(s, op, now, timeoutMs, args)];
};

const requireDomain = (s: DomainAggregate, ref: string = s.id) => {
  if (!s.exists) throw virtError('no-domain', `Domain not found: no domain with matching uuid '${ref}'`);
};

export const decide = (cmd: DomainCommand, s: DomainAggregate, now: Date): DomainEventBody[] => {
  switch (cmd.type) {
    case 'define': {
      if (s.exists && s.name !== cmd.definition.name) {
        throw virtError('operation-failed', `domain '${s.name}' is already defined with uuid ${s.id}`);
      }
      requireLiveClaim(s, cmd.claimSeq, 'domain', cmd.definition.name);
      return [
        {
          type: 'DomainDefined',
          data: {
            definition: cmd.definition,
            hostId: s.exists ? s.hostId : cmd.hostId,
            placementEpoch: s.exists ? s.placementEpoch : s.placementEpoch + 1,
            added: !s.exists || !s.persistent,
          },
        },
      ];
    }
    case 'create':
      return decideCreate(cmd, s, now);
    case 'rename':
      requireDomain(s);
      // testDomainRename's checks, in its order.
      if (isActive(s.observed.state) || s.pending) throw virtError('operation-invalid', 'cannot rename active domain', { domain: s.name });
      if (!s.persistent) throw virtError('operation-invalid', 'cannot rename a transient domain', { domain: s.name });
      if (s.observed.state !== 'shutoff') throw virtError('operation-invalid', 'domain has to be shutoff before renaming', { domain: s.name });
      if (cmd.newName === s.name) throw virtError('operation-invalid', "Can't rename domain to itself", { domain: s.name });
      requireLiveClaim(s, cmd.claimSeq, 'domain', cmd.newName);
      return [
        { type: 'DomainRenamed', data: { name: cmd.newName, ...(s.definition?.xml ? { xml: formatDomainXml({ ...s.definition, name: cmd.newName }) } : {}) } },
        // Fencing the old claim frees the old name; the new claim, made after it, stays live.
        ...(cmd.releaseClaimSeq !== undefined && cmd.releaseClaimSeq < cmd.claimSeq
          ? [{ type: 'NameClaimRevoked' as const, data: { name: s.name, claimSeq: cmd.releaseClaimSeq } }]
          : []),
      ];
    case 'set-metadata': {
      requireDomain(s);
      const active = isActive(s.observed.state);
      const live = cmd.live || (!cmd.config && active);
      const config = cmd.config || (!cmd.live && !active);
      if (live && !active) throw notRunning(s);
      if (config && !s.persistent) throw virtError('operation-invalid', 'cannot change persistent config of a transient domain', { domain: s.name });
      if (cmd.field !== 'metadata') return [{ type: 'DomainMetadataSet', data: { field: cmd.field, value: cmd.value, live, config } }];
      // The element goes into the <metadata> of the definition it is set on (the persistent one alone with --config).
      const target = live ? s.definition : (s.nextDefinition ?? s.definition);
      const value = withAppMetadata(target?.metadata, cmd.uri ?? '', cmd.key, cmd.value === '' ? null : cmd.value);
      return [{ type: 'DomainMetadataSet', data: { field: 'metadata', value, live, config } }];
    }
    case 'set-resources':
      requireDomain(s);
      return decideResources(s, cmd, {
        balloon: (memoryKiB, persistent) => decideOperation('set-memory', s, now, DEFAULT_TIMEOUT_MS['set-memory'], { memoryKiB, persistent }),
        hotplugVcpus: (vcpus, persistent) => decideOperation('set-vcpus', s, now, DEFAULT_TIMEOUT_MS['set-vcpus'], { vcpus, persistent }),
      });
    case 'undefine': {
      requireDomain(s);
      requireHostKnown(s);
      const active = isActive(s.observed.state) || s.pending !== null;
      if (active && !s.persistent && !onTestDriver(s)) {
        // The QEMU driver refuses; the test driver accepts it as a no-op that still reports
        // UNDEFINED/REMOVED, and the domain runs on as the transient domain it was.
        throw virtError('operation-invalid', `cannot undefine transient domain '${s.name}'`);
      }
      return [
        ...undefineSaveEvents(s, cmd.managedSave ?? false),
        ...undefineSnapshotEvents(s, active, cmd.snapshotsMetadata ?? false),
        { type: 'DomainUndefined', data: { removed: !active } },
      ];
    }
    case 'start':
      requireDomain(s);
      return decideOperation('start', s, now, cmd.timeoutMs, { paused: cmd.paused });
    case 'shutdown':
    case 'destroy':
    case 'suspend':
    case 'resume':
    case 'reboot':
      requireDomain(s);
      if (cmd.type === 'destroy' && cmd.force && s.hostLost) {
        // The operator vouches that the lost host is off: its guest is down, and the domain free again.
        return [{ type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed', cause: `host '${s.hostId}' lost; declared off by the operator` } }];
      }
      if (cmd.type === 'destroy' && s.pending?.op === 'start' && !pendingExpired(s.pending, now)) {
        return decideOperation('destroy', s, now, cmd.timeoutMs);
      }
      return decideOperation(cmd.type, s, now, cmd.timeoutMs);
    case 'reset':
    case 'managedsave':
      requireDomain(s);
      return decideOperation(cmd.type, s, now, cmd.timeoutMs);
    case 'send-key':
    case 'inject-nmi':
      requireDomain(s);
      requireHostKnown(s);
      checkGuestAction(cmd, s, onTestDriver(s));
      return decideOperation(cmd.type, s, now, cmd.timeoutMs, cmd.type === 'send-key' ? { keys: cmd.keys } : {});
    case 'block-resize':
      requireDomain(s);
      requireHostKnown(s);
      checkGuestAction(cmd, s, onTestDriver(s));
      return decideOperation('block-resize', s, now, cmd.timeoutMs, resolveBlockResize(s, cmd.path, cmd.bytes));
    case 'screenshot':
      requireDomain(s);
      requireHostKnown(s);
      checkGuestAction(cmd, s, onTestDriver(s));
      return decideOperation('screenshot', s, now, cmd.timeoutMs, { screen: cmd.screen });
    case 'save':
      requireDomain(s);
      return decideOperation('save', s, now, cmd.timeoutMs, { file: cmd.file });
    case 'restore':
      requireHostKnown(s);
      return decideRestore(cmd, s, (placed) => requestedEvent(placed, 'start', now, cmd.timeoutMs, { paused: cmd.paused, file: cmd.file }));
    case 'snapshot-set-current':
      requireDomain(s);
      // Metadata only: no host is asked anything.
      return decideSnapshot(cmd, s, now, onTestDriver(s), () => []);
    case 'snapshot-create':
    case 'snapshot-revert':
    case 'snapshot-delete':
      requireDomain(s);
      requireHostKnown(s);
      return decideSnapshot(cmd, s, now, onTestDriver(s), (op, snapshot) => decideOperation(op, s, now, cmd.timeoutMs, { snapshot }));
    case 'set-autostart':
    case 'managedsave-remove':
      requireDomain(s);
      return decideFlags(cmd, s, onTestDriver(s), () => []);
    case 'autostart-boot':
      return decideFlags(cmd, s, onTestDriver(s), () => decideOperation('start', s, now, cmd.timeoutMs));
    case 'attach-interface':
    case 'detach-interface':
      requireDomain(s);
      return decideInterface(cmd, s, now);
    case 'attach-disk':
    case 'detach-disk':
    case 'update-disk':
    case 'change-media':
      requireDomain(s);
      requireHostKnown(s);
      return decideDisk(cmd, s, (op, args) => decideOperation(op, s, now, cmd.timeoutMs, args));
    case 'observe-disks':
      requireDomain(s);
      return decideDisk(cmd, s, () => []);
    case 'complete':
    case 'fail': {
      requireDomain(s);
      if (!s.pending || s.pending.taskId !== cmd.taskId) {
        // A stale or repeated report: keep only what it says about the guest, if that is news.
        return cmd.observed ? observationEvents(s, cmd.observed.state, cmd.observed.reason) : [];
      }
      if (cmd.type === 'complete') {
        return [
          {
            type: 'DomainOperationCompleted',
            data: {
              op: s.pending.op,
              taskId: cmd.taskId,
              observed: cmd.observed,
              ...(cmd.interfaces ? { interfaces: cmd.interfaces } : {}),
              ...(cmd.devices ? { devices: cmd.devices } : {}),
            },
          },
        ];
      }
      return [
        {
          type: 'DomainOperationFailed',
          data: {
            op: s.pending.op,
            taskId: cmd.taskId,
            error: cmd.error,
            ...(cmd.observed ? { observed: cmd.observed } : {}),
          },
        },
      ];
    }
    case 'observe':
      requireDomain(s);
      return observationEvents(s, cmd.state, cmd.reason, cmd.cause);
    case 'observe-interfaces':
      requireDomain(s);
      // Only a running guest has devices; an old report about one that stopped since is not news.
      if (!isActive(s.observed.state) || JSON.stringify(s.interfaces) === JSON.stringify(cmd.interfaces)) return [];
      return [{ type: 'DomainInterfacesObserved', data: { interfaces: cmd.interfaces } }];
    case 'expire':
      if (!s.exists || !s.pending || s.pending.taskId !== cmd.taskId || !pendingExpired(s.pending, now)) return [];
      return [timeoutFailure(s.pending)];
    case 'host-lost':
      return decideHostLost(s, cmd.hostId, cmd.leaseRevision);
    case 'failover':
      return decideFailover(s, cmd, now);
    case 'evacuate':
      return decideEvacuate(s, cmd, now);
    case 'evacuate-move':
      return decideEvacuateMove(s, cmd, now);
  }
};

/**
 * virsh create (testDomainCreateXML, qemuDomainCreateXML): a new domain starts transient; a defined,
 * inactive one of the same name and uuid starts with this definition and stays persistent (libvirt
 * keeps the old one as the next boot's; here the given one is kept); an active one is refused, as virDomainObjListAdd with CHECK_LIVE refuses it.
 */
const decideCreate = (cmd: Extract<DomainCommand, { type: 'create' }>, s: DomainAggregate, now: Date): DomainEventBody[] => {
  if (s.exists && s.name !== cmd.definition.name) {
    throw virtError('operation-failed', `domain '${s.name}' is already defined with uuid ${s.id}`);
  }
  if (s.exists && (isActive(s.observed.state) || s.pending)) {
    throw virtError('operation-invalid', `domain '${s.name}' is already active`, { domain: s.name });
  }
  requireHostKnown(s);
  requireLiveClaim(s, cmd.claimSeq, 'domain', cmd.definition.name);
  const { defined, placed } = defineToStart(s, cmd.definition, cmd.hostId);
  return [defined, requestedEvent(placed, 'start', now, cmd.timeoutMs, { paused: cmd.paused })];
};

/**
 * The domain's host was declared lost. Its operation in flight fails now (the host will not report),
 * releasing the domain, and its state becomes unknown: nothing on a lost host is known any more, a
 * shut off guest included (a start's report may have been lost with the host). What the domain asked
 * for before the loss is kept, so a start in flight still counts as wanting to run. A transient
 * domain that never ran goes with its failed start. One loss (one expired lease) marks a domain once,
 * so a domain an operator has since declared off is not marked again.
 */
const decideHostLost = (s: DomainAggregate, hostId: string, leaseRevision?: number): DomainEventBody[] => {
  if (!s.exists || s.hostLost || s.hostId !== hostId) return [];
  if (leaseRevision !== undefined && s.hostLostRevision !== undefined && s.hostLostRevision >= leaseRevision) return [];
  const out: DomainEventBody[] = [];
  if (s.pending) {
    out.push({
      type: 'DomainOperationFailed',
      data: {
        op: s.pending.op,
        taskId: s.pending.taskId,
        error: { code: 'operation-failed', message: `host '${hostId}' was lost while operation '${s.pending.op}' was in progress` },
      },
    });
  }
  if (s.persistent || isActive(s.observed.state)) {
    out.push({ type: 'DomainHostLost', data: { hostId, ...(leaseRevision !== undefined ? { leaseRevision } : {}), desired: s.desired } });
  }
  return out;
};

/** Does the domain want its guest running: what it asked for before its host was lost. */
const wantsToRun = (s: DomainAggregate): boolean => isActive(s.desired) || s.evacuating?.start !== undefined;

/**
 * Restarts, exactly once, a domain that asks for it on another host after its host was declared
 * lost: ownership moves with a new epoch, and the start goes to the new host.
 */
const decideFailover = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'failover' }>, now: Date): DomainEventBody[] => {
  if (!s.exists || !s.hostLost || s.hostId !== cmd.fromHostId || cmd.hostId === cmd.fromHostId) return [];
  if (!restartsOnHostLoss(s.definition) || !wantsToRun(s)) return [];
  const placementEpoch = s.placementEpoch + 1;
  const moved = { ...s, hostId: cmd.hostId, placementEpoch };
  return [
    { type: 'DomainFailedOver', data: { fromHostId: cmd.fromHostId, hostId: cmd.hostId, placementEpoch } },
    requestedEvent(moved, 'start', now, cmd.timeoutMs, { paused: (s.evacuating?.start ?? s.desired) === 'paused' }),
  ];
};

/** What a domain being taken off its host should do on the next one. */
const startAfterMove = (s: DomainAggregate): 'running' | 'paused' | undefined => {
  const wanted = s.pending ? s.desired : s.observed.state;
  if (wanted === 'paused') return 'paused';
  return isActive(wanted) ? 'running' : undefined;
};

/**
 * host-evacuate, one domain: record the evacuation (with what the domain was doing), then stop its
 * guest on the host. On a lost host the guest may still run, so only the operator's word that the
 * host is off (`force`) lets the domain go. Repeating it changes nothing; a domain already moved, or
 * on another host, is left alone. A transient domain would be gone once stopped: it is refused.
 */
const decideEvacuate = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'evacuate' }>, now: Date): DomainEventBody[] => {
  if (!s.exists || s.hostId !== cmd.fromHostId) return [];
  if (!s.persistent) throw virtError('operation-invalid', `domain '${s.name}' is transient: stopping it to move it would remove it`);
  const out: DomainEventBody[] = [];
  if (s.hostLost) {
    if (!cmd.force) {
      throw virtError(
        'operation-invalid',
        `domain '${s.name}' is on host '${s.hostId}', which is lost: its guest may still run there; evacuate with --force once the host is known to be off`,
        { hostId: s.hostId, hostLost: true },
      );
    }
    const start = s.desired === 'paused' ? 'paused' : isActive(s.desired) ? 'running' : undefined;
    if (!s.evacuating) out.push({ type: 'DomainEvacuationStarted', data: { fromHostId: cmd.fromHostId, ...(start ? { start } : {}) } });
    out.push({ type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed', cause: `host '${s.hostId}' lost; declared off by the operator` } });
    return out;
  }
  if (!s.evacuating) {
    const start = startAfterMove(s);
    out.push({ type: 'DomainEvacuationStarted', data: { fromHostId: cmd.fromHostId, ...(start ? { start } : {}) } });
  }
  const destroying = s.pending?.op === 'destroy' && !pendingExpired(s.pending, now);
  if ((isActive(s.observed.state) || s.pending !== null) && !destroying) out.push(...decideOperation('destroy', s, now, cmd.timeoutMs));
  return out;
};

/**
 * The second half of an evacuation: once the guest is stopped on the old host, ownership moves to
 * `hostId` with a new epoch (so the old host's late word is refused), and the domain starts there if
 * it ran before. Decided against the newest state, so it happens once however many ask.
 */
const decideEvacuateMove = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'evacuate-move' }>, now: Date): DomainEventBody[] => {
  if (!s.exists || !s.evacuating || s.hostId !== cmd.fromHostId || s.evacuating.fromHostId !== cmd.fromHostId || cmd.hostId === cmd.fromHostId) return [];
  if (!evacuationStopped(s)) return [];
  const placementEpoch = s.placementEpoch + 1;
  const moved = { ...s, hostId: cmd.hostId, placementEpoch };
  const start = s.evacuating.start;
  return [
    { type: 'DomainEvacuated', data: { fromHostId: cmd.fromHostId, hostId: cmd.hostId, placementEpoch } },
    ...(start ? [requestedEvent(moved, 'start', now, cmd.timeoutMs, { paused: start === 'paused' })] : []),
  ];
};

/** Being evacuated, with its guest known stopped on the old host and nothing in flight. */
export const evacuationStopped = (s: DomainAggregate): boolean =>
  s.exists && s.evacuating !== undefined && !s.hostLost && s.pending === null && !isActive(s.observed.state);

/** A domain whose host was declared lost and that asks to be restarted elsewhere. */
export const awaitsFailover = (s: DomainAggregate): boolean => s.exists && s.hostLost === true && restartsOnHostLoss(s.definition) && wantsToRun(s);

const macOf = (i: InterfaceModel) => i.mac?.toLowerCase();

/** The definition with one interface added or taken out; a stored document is written anew, as dumpxml shows it. */
const withInterface = (def: DomainDefinition, add?: InterfaceModel, removeMac?: string): DomainDefinition => {
  const next = {
    ...def,
    devices: {
      ...def.devices,
      interfaces: [...def.devices.interfaces.filter((i) => !removeMac || macOf(i) !== removeMac), ...(add ? [add] : [])],
    },
  };
  return def.xml ? { ...next, xml: formatDomainXml(next) } : next;
};

/**
 * virsh attach-interface / detach-interface: live changes go to the host as an operation; config
 * changes are a new definition. Neither flag means "live" on a running domain and "config" on a shut
 * off one (virsh's --current).
 */
const decideInterface = (
  cmd: Extract<DomainCommand, { type: 'attach-interface' | 'detach-interface' }>,
  s: DomainAggregate,
  now: Date,
): DomainEventBody[] => {
  const running = isActive(s.observed.state) || s.pending?.op === 'start';
  const live = cmd.live || (!cmd.config && running);
  const config = cmd.config;
  if (live && !isActive(s.observed.state)) throw notRunning(s);
  const def = s.nextDefinition ?? s.definition!;
  const known = [...s.definition!.devices.interfaces, ...def.devices.interfaces];
  if (cmd.type === 'attach-interface') {
    const mac = macOf(cmd.iface);
    if (mac && known.some((i) => macOf(i) === mac)) {
      throw virtError('operation-failed', `domain '${s.name}' already has an interface with MAC address ${mac}`);
    }
  } else if (!known.some((i) => macOf(i) === cmd.mac) && !s.interfaces.some((i) => i.mac === cmd.mac)) {
    throw virtError('operation-failed', `domain '${s.name}' has no interface with MAC address ${cmd.mac}`);
  }
  if (live) {
    return decideOperation(cmd.type, s, now, cmd.timeoutMs, {
      ...(cmd.type === 'attach-interface' ? { iface: cmd.iface } : { mac: cmd.mac }),
      persistent: config,
    });
  }
  const next = cmd.type === 'attach-interface' ? withInterface(def, cmd.iface) : withInterface(def, undefined, cmd.mac);
  return [{ type: 'DomainDefined', data: { definition: next, hostId: s.hostId, placementEpoch: s.placementEpoch, added: false } }];
};

const observationEvents = (
  s: DomainAggregate,
  state: DomainStateName,
  reason: ObservedState['reason'],
  cause?: string,
): DomainEventBody[] =>
  s.observed.state === state && s.observed.reason === reason
    ? []
    : [{ type: 'DomainStateObserved', data: { state, reason, ...(cause ? { cause } : {}) } }];

/** A domain that stops picks up a definition recorded while it ran; a transient one disappears. */
const settle = (s0: DomainAggregate): DomainAggregate => {
  const s1 = isActive(s0.observed.state) || !s0.interfaces?.length ? s0 : { ...s0, interfaces: [] };
  const s = isActive(s1.observed.state) || !s1.devices ? s1 : withoutDevices(s1);
  if (isActive(s.observed.state) || s.pending) return s;
  const next = s.nextDefinition ? { ...s, definition: s.nextDefinition, nextDefinition: null } : s;
  return next.persistent ? next : { ...next, exists: false, removed: true };
};

const withoutDevices = (s: DomainAggregate): DomainAggregate => {
  const { devices: _, ...rest } = s;
  return rest;
};

export const evolve = (s: DomainAggregate, e: Envelope<DomainEventBody>): DomainAggregate => {
  const next = evolveSnapshots(s, evolveFlags(s, evolveState(s, e), e), e);
  const { domid: _, ...rest } = next;
  // A lost host's guest may still run: it keeps its id until the host is heard again.
  if (next.hostLost) return s.domid !== undefined ? { ...rest, domid: s.domid } : rest;
  if (!isActive(next.observed.state)) return rest;
  if (isActive(s.observed.state) && s.domid !== undefined) return { ...rest, domid: s.domid };
  return { ...rest, domid: e.version };
};

const evolveState = (s: DomainAggregate, e: Envelope<DomainEventBody>): DomainAggregate => {
  const recentCommands = rememberCommand(s.recentCommands, e.commandId, e.version);
  const base = { ...s, version: e.version, recentCommands };
  switch (e.type) {
    case 'NameClaimRevoked':
      // A fence written by another define, not a command of this domain's: no retry to recognise.
      return applyRevocation({ ...s, version: e.version }, e);
    case 'DomainDefined': {
      const running = s.exists && (isActive(s.observed.state) || s.pending !== null);
      return {
        ...base,
        exists: true,
        removed: false,
        name: e.data.definition.name,
        definition: running && s.definition ? s.definition : e.data.definition,
        nextDefinition: running && s.definition ? e.data.definition : null,
        persistent: e.data.transient ? false : true,
        hostId: e.data.hostId,
        placementEpoch: e.data.placementEpoch,
        ...(s.exists ? {} : { observed: { state: 'shutoff', reason: 'unknown' }, desired: 'shutoff', pending: null, lastError: null }),
      };
    }
    case 'DomainUndefined':
      return e.data.removed
        ? { ...base, exists: false, removed: true, persistent: false, nextDefinition: null }
        : { ...base, persistent: false, nextDefinition: null };
    case 'DomainStartRequested':
    case 'DomainShutdownRequested':
    case 'DomainDestroyRequested':
    case 'DomainSuspendRequested':
    case 'DomainResumeRequested':
    case 'DomainRebootRequested':
    case 'DomainInterfaceAttachRequested':
    case 'DomainInterfaceDetachRequested':
    case 'DomainMemorySetRequested':
    case 'DomainVcpusSetRequested':
    case 'DomainResetRequested':
    case 'DomainManagedSaveRequested':
    case 'DomainDiskAttachRequested':
    case 'DomainDiskDetachRequested':
    case 'DomainDiskUpdateRequested':
    case 'DomainSaveRequested':
    case 'DomainSnapshotRequested':
    case 'DomainSnapshotRevertRequested':
    case 'DomainSnapshotDeleteRequested':
    case 'DomainSendKeyRequested':
    case 'DomainNmiInjectRequested':
    case 'DomainBlockResizeRequested':
    case 'DomainScreenshotRequested': {
      const op = OP_OF[e.type];
      // destroy superseding the start of a transient domain shares a commit with the failure it
      // records, and that failure settled the domain away; the start may still be booting the guest,
      // so the domain stays until the destroy reports.
      const superseding = !s.exists && s.removed && s.version === e.version;
      // An operator who starts the guest again takes it out of an evacuation (the move's own start
      // comes after the move, when nothing is being evacuated any more).
      const { evacuating, ...rest } = base;
      const keep = op === 'start' || op === 'resume' ? {} : evacuating ? { evacuating } : {};
      return {
        ...rest,
        ...keep,
        ...(superseding ? { exists: true, removed: false } : {}),
        pending: {
          op,
          taskId: e.id,
          requestedAt: e.time,
          deadline: e.data.deadline,
          ...carriedByIntent(e.data),
          ...(e.data.persistent !== undefined ? { persistent: e.data.persistent } : {}),
        },
        desired: op === 'snapshot-revert' && e.data.snapshot?.target ? e.data.snapshot.target : desiredAfter(op, e.data.paused ?? false, s.desired),
        lastError: null,
      };
    }
    case 'DomainOperationCompleted':
      return settle({
        ...base,
        ...(s.pending?.taskId === e.data.taskId ? { ...interfaceChange(s, s.pending), ...resourceOpChange(s, s.pending), ...diskChange(s, s.pending) } : {}),
        pending: s.pending?.taskId === e.data.taskId ? null : s.pending,
        observed: e.data.observed,
        interfaces: e.data.interfaces ?? s.interfaces,
        ...(e.data.devices ? { devices: e.data.devices } : {}),
        desired: e.data.observed.state,
      });
    case 'DomainOperationFailed': {
      const observed = e.data.observed ?? s.observed;
      return settle({
        ...base,
        pending: s.pending?.taskId === e.data.taskId ? null : s.pending,
        observed,
        desired: observed.state,
        lastError: { op: e.data.op, taskId: e.data.taskId, code: e.data.error.code, message: e.data.error.message, at: e.time },
      });
    }
    case 'DomainInterfacesObserved':
      return { ...base, interfaces: e.data.interfaces };
    case 'DomainDisksObserved':
      return { ...base, ...evolveDisksObserved(s, e.data) };
    case 'DomainRenamed': {
      const renamed = (d: DomainDefinition | null) => (d ? { ...d, name: e.data.name, ...(d.xml && e.data.xml ? { xml: e.data.xml } : {}) } : d);
      return { ...base, name: e.data.name, definition: renamed(s.definition), nextDefinition: renamed(s.nextDefinition) };
    }
    case 'DomainMetadataSet': {
      if (!s.definition) return base;
      const { field, value } = e.data;
      // The stored document of an XML define no longer says what the definition is: dumpxml
      // formats the model instead, which carries the new text.
      const set = (d: DomainDefinition): DomainDefinition => {
        const { [field]: _, xml: _xml, ...rest } = d;
        return value === '' ? rest : { ...rest, [field]: value };
      };
      const running = isActive(s.observed.state) || s.pending !== null;
      if (!running) return { ...base, definition: set(s.definition) };
      // A live change leaves the next boot as it was; a config change waits for it.
      const next = s.nextDefinition ?? s.definition;
      return {
        ...base,
        definition: e.data.live ? set(s.definition) : s.definition,
        nextDefinition: e.data.config ? set(next) : e.data.live ? next : s.nextDefinition,
      };
    }
    case 'DomainResourcesSet':
      return { ...base, ...evolveResources(s, e.data) };
    case 'DomainStateObserved':
      // Word from the host (or the operator) makes the state known again.
      return settle({
        ...base,
        observed: { state: e.data.state, reason: e.data.reason },
        desired: s.pending ? s.desired : e.data.state,
        hostLost: false,
      });
    case 'DomainHostLost':
      // Not settled: a domain of unknown state is neither removed nor given its next definition.
      return {
        ...base,
        hostLost: true,
        lastObserved: s.hostLost ? s.lastObserved : s.observed,
        observed: { state: 'nostate', reason: 'unknown' },
        desired: e.data.desired ?? s.desired,
        ...(e.data.leaseRevision !== undefined ? { hostLostRevision: e.data.leaseRevision } : {}),
      };
    case 'DomainEvacuationStarted':
      return { ...base, evacuating: { fromHostId: e.data.fromHostId, ...(e.data.start ? { start: e.data.start } : {}) } };
    case 'DomainFailedOver':
    case 'DomainEvacuated': {
      // The old host's guest is fenced or stopped: nothing runs until the new host starts it.
      const { evacuating: _done, devices: _gone, ...rest } = base;
      return {
        ...rest,
        hostId: e.data.hostId,
        placementEpoch: e.data.placementEpoch,
        hostLost: false,
        observed: { state: 'shutoff', reason: 'unknown' },
        interfaces: [],
      };
    }
    default:
      // A type this code does not know (written by a newer version, or by hand): the log is still
      // the truth, so the aggregate moves past it unchanged rather than stopping every reader on it.
      return base;
  }
};

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

/**
 * What a finished live interface change does to the definitions: the running one always changes; the
 * next boot's changes only when the change was also asked for the config.
 */
const interfaceChange = (s: DomainAggregate, p: PendingOperation): Partial<DomainAggregate> => {
  if ((p.op !== 'attach-interface' && p.op !== 'detach-interface') || !s.definition) return {};
  const change = (d: DomainDefinition) => (p.op === 'attach-interface' ? withInterface(d, p.iface) : withInterface(d, undefined, p.mac));
  const definition = change(s.definition);
  if (p.persistent) return { definition, nextDefinition: s.nextDefinition ? change(s.nextDefinition) : null };
  // A live-only change leaves the next boot as it was.
  return { definition, nextDefinition: s.nextDefinition ?? s.definition };
};
