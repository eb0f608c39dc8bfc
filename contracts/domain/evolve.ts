import type { DomainDefinition } from './definition.ts';
import type { DomainEventBody } from './events.ts';
import { isActive } from './state.ts';
import { evolveResources, resourceOpChange } from './resources.ts';
import type { Envelope } from '../envelope.ts';
import { applyRevocation } from '../name-claim.ts';
import { evolveFlags } from './autostart-save.ts';
import { diskChange, evolveDisksObserved } from './devices.ts';
import { evolveSnapshots } from './snapshots.ts';
import { rememberCommand } from '../recent-commands.ts';
import { carriedByIntent, desiredAfter, OP_OF, type DomainAggregate } from './aggregate.ts';
import { interfaceChange } from './interfaces.ts';

/**
 * The domain decider's `evolve`, which the command service and the projector share (decider.ts). The
 * sections that keep state of their own (resources, devices, flags, snapshots) fold it in their modules.
 */

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
