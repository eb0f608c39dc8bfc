import type { DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import { restartsOnHostLoss } from './ha.ts';
import type { DomainAggregate } from './aggregate.ts';
import { decideOperation, pendingExpired, requestedEvent } from './operations.ts';

/**
 * The domain decider's section for a domain whose host goes away: declared lost, restarted elsewhere
 * when its definition asks for it (failover), or moved off by an operator (host-evacuate).
 */

/**
 * The domain's host was declared lost. Its operation in flight fails now (the host will not report),
 * releasing the domain, and its state becomes unknown: nothing on a lost host is known any more, a
 * shut off guest included (a start's report may have been lost with the host). What the domain asked
 * for before the loss is kept, so a start in flight still counts as wanting to run. A transient
 * domain that never ran goes with its failed start. One loss (one expired lease) marks a domain once,
 * so a domain an operator has since declared off is not marked again.
 */
export const decideHostLost = (s: DomainAggregate, hostId: string, leaseRevision?: number): DomainEventBody[] => {
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
export const decideFailover = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'failover' }>, now: Date): DomainEventBody[] => {
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
export const decideEvacuate = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'evacuate' }>, now: Date): DomainEventBody[] => {
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
export const decideEvacuateMove = (s: DomainAggregate, cmd: Extract<DomainCommand, { type: 'evacuate-move' }>, now: Date): DomainEventBody[] => {
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
