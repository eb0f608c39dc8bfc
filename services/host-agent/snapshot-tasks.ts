import type { ObservedState } from '../../contracts/domain/state.ts';
import { virtError } from '../../contracts/errors.ts';
import type { DomainTask } from '../../contracts/tasks.ts';
import type { HypervisorDriver, OperationOptions } from '../../drivers/hypervisor.ts';

/**
 * The host's half of virsh snapshot-create, snapshot-revert and snapshot-delete. Each is safe to run
 * again for the same task (after an agent was killed mid-way, or a task delivered twice): the
 * drivers report a snapshot they already hold as taken and a deleted one as gone, so a snapshot is
 * taken once and the log records it once, when the command service accepts the first report.
 */
export const runSnapshotTask = (d: HypervisorDriver, t: DomainTask, opts: OperationOptions): Promise<ObservedState> => {
  const snapshot = t.snapshot;
  if (!snapshot) throw virtError('invalid-arg', `task ${t.taskId} names no snapshot`);
  switch (t.op) {
    case 'snapshot-create':
      if (!d.snapshotCreate) throw virtError('operation-unsupported', `the ${d.name} driver cannot take snapshots`);
      return d.snapshotCreate(t.definition, snapshot, opts);
    case 'snapshot-revert':
      if (!d.snapshotRevert) throw virtError('operation-unsupported', `the ${d.name} driver cannot revert to snapshots`);
      return d.snapshotRevert(t.definition, snapshot, opts);
    case 'snapshot-delete':
      if (!d.snapshotDelete) throw virtError('operation-unsupported', `the ${d.name} driver cannot delete snapshots`);
      return d.snapshotDelete(t.definition, snapshot, opts);
    default:
      throw virtError('internal-error', `operation '${t.op}' is not a snapshot operation`);
  }
};
