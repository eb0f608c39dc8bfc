
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
