import { DEFAULT_TIMEOUT_MS, type DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { isActive, type DomainStateName, type ObservedState } from './state.ts';
import { virtError } from '../errors.ts';
import { decideResources } from './resources.ts';
import { formatDomainXml } from '../xml/domain.ts';
import { requireLiveClaim } from '../name-claim.ts';
import { decideFlags, undefineSaveEvents } from './autostart-save.ts';
import { decideDisk } from './devices.ts';
import { decideRestore } from './save-restore.ts';
import { withAppMetadata } from './metadata.ts';
import { decideSnapshot, undefineSnapshotEvents } from './snapshots.ts';
import { defineToStart } from './define-to-start.ts';
import { checkGuestAction, resolveBlockResize } from './guest-actions.ts';
import type { DomainAggregate } from './aggregate.ts';
import { decideOperation, notRunning, onTestDriver, pendingExpired, requestedEvent, requireDomain, requireHostKnown, timeoutFailure } from './operations.ts';
import { decideEvacuate, decideEvacuateMove, decideFailover, decideHostLost } from './host-loss.ts';
import { decideInterface } from './interfaces.ts';

/**
 * The domain decider: pure functions, no I/O. `decide` answers a command with events or throws a
 * VirtError in libvirt's vocabulary; `evolve` folds one event into the state. The command service
 * and the projector share `evolve`, so the view can never disagree with what the decider saw.
 */

export { carriedByIntent, commandVersion, initialDomainState, OP_OF, type DomainAggregate, type PendingOperation } from './aggregate.ts';
export { onTestDriver } from './operations.ts';
export { awaitsFailover, evacuationStopped } from './host-loss.ts';
export { evolve } from './evolve.ts';

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

const observationEvents = (
  s: DomainAggregate,
  state: DomainStateName,
  reason: ObservedState['reason'],
  cause?: string,
): DomainEventBody[] =>
  s.observed.state === state && s.observed.reason === reason
    ? []
    : [{ type: 'DomainStateObserved', data: { state, reason, ...(cause ? { cause } : {}) } }];
