import { REQUESTED_EVENT, type DomainEventBody, type DomainOp } from './events.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import { checkManagedSave } from './autostart-save.ts';
import { checkSave } from './save-restore.ts';
import { carriedByIntent, type DomainAggregate, type PendingOperation } from './aggregate.ts';

/**
 * The domain decider's section for operations on a domain's host: one in flight at a time, each with
 * a deadline, checked against the last observed state with libvirt's rules and messages before its
 * intent is recorded. The other sections ask for their host operations through `decideOperation`.
 */

export const pendingExpired = (p: PendingOperation, now: Date): boolean => Date.parse(p.deadline) <= now.getTime();

export const timeoutFailure = (p: PendingOperation): DomainEventBody => ({
  type: 'DomainOperationFailed',
  data: {
    op: p.op,
    taskId: p.taskId,
    error: { code: 'timeout', message: `operation '${p.op}' did not finish before its deadline ${p.deadline}` },
  },
});

/** What an intent may carry: what its pending operation keeps, and what only its task needs. */
export type RequestArgs = Partial<Omit<PendingOperation, 'op' | 'taskId' | 'requestedAt' | 'deadline'>> & { paused?: boolean; screen?: number };

export const requestedEvent = (s: DomainAggregate, op: DomainOp, now: Date, timeoutMs: number, args: RequestArgs = {}): DomainEventBody => ({
  type: REQUESTED_EVENT[op],
  data: {
    hostId: s.hostId,
    placementEpoch: s.placementEpoch,
    deadline: new Date(now.getTime() + timeoutMs).toISOString(),
    ...(args.paused ? { paused: true } : {}),
    ...carriedByIntent(args),
    ...(args.persistent !== undefined ? { persistent: args.persistent } : {}),
    ...(args.screen !== undefined ? { screen: args.screen } : {}),
  },
});

/** libvirt's own words (virDomainObjCheckActive); the domain's name goes in the details. */
export const notRunning = (s: DomainAggregate) => virtError('operation-invalid', 'domain is not running', { domain: s.name });

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
export const requireHostKnown = (s: DomainAggregate): void => {
  if (s.hostLost) {
    throw virtError(
      'operation-invalid',
      `domain '${s.name}' is on host '${s.hostId}', which is lost: its state is unknown (host lost); once the host is known to be off, 'destroy --force' records the domain shut off`,
      { hostId: s.hostId, hostLost: true },
    );
  }
};

export const decideOperation = (op: DomainOp, s: DomainAggregate, now: Date, timeoutMs: number, args: RequestArgs = {}): DomainEventBody[] => {
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

export const requireDomain = (s: DomainAggregate, ref: string = s.id) => {
  if (!s.exists) throw virtError('no-domain', `Domain not found: no domain with matching uuid '${ref}'`);
};
