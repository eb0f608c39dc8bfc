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

