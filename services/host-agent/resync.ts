import { isActive } from '../../contracts/domain/state.ts';
import { DomainOp } from '../../contracts/domain/events.ts';
import type { DomainTask } from '../../contracts/tasks.ts';
import type { DiskModel } from '../../contracts/domain/definition.ts';
import type { DomainView } from '../../contracts/views.ts';
import type { DomainObservation, HypervisorDriver } from '../../drivers/hypervisor.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { ownDomains } from './own-domains.ts';

/** What the resync needs from its agent. */
export interface ResyncHost {
  hostId: string;
  driverFor(type: string): HypervisorDriver | undefined;
  /** Reports a state the host sees (an observation no operation asked for). */
  observe(o: DomainObservation): Promise<void>;
  /** The agent changed this guest moments ago: the views may not show it yet, so its state is no news. */
  actedRecently(domainId: string): boolean;
  /** Whether the agent has this task running, or has ever started or finished it. */
  knowsTask(taskId: string): boolean;
  /** Reports the disks a running guest really has, which its live definition does not say. */
  reportDisks(domainId: string, disks: DiskModel[]): Promise<void>;
  /** Runs a task the host never received, as if it had been delivered (claim, run, report). */
  runMissed(task: DomainTask): Promise<void>;
}

export interface ResyncCounts {
  /** Guests whose state differed from the log and were reported. */
  reported: number;
  /** Pending operations whose task never reached the host, run now. */
  missed: number;
  /** Running guests whose disks differed from their live definition and were reported. */
  disks: number;
}

/**
 * Level-triggered, as KubeVirt's virt-handler resyncs every VMI and Nova syncs power states: compare
 * what the hypervisor runs with what the log says about each of this host's domains, and repair the
 * difference. Nothing here trusts that an event was seen:
 * - a guest the log shows running that is gone or stopped (it died while nobody was looking) is
 *   reported as the driver finds it, as libvirt would show it;
 * - a guest that runs while the log shows it shut off is reported (guests whose domain moved to another
 *   host are destroyed by the ownership check, `dropMovedGuests`);
 * - an operation the log holds pending whose task this host never received (lost with a server, a
 *   consumer made anew) is run now, under the same claim as a delivered task, once `graceMs` has
 *   passed since it was requested so a task merely on its way is not raced.
 */
export const resync = async (n: Nats, host: ResyncHost, graceMs: number, log: Logger, now = Date.now()): Promise<ResyncCounts> => {
  const counts: ResyncCounts = { reported: 0, missed: 0, disks: 0 };
  const domains = await ownDomains(n, host.hostId);
  for (const v of domains) {
    if (v.hostLost || v.hostId !== host.hostId || host.actedRecently(v.id)) continue;
    const driver = host.driverFor(v.definition.type);
    if (!driver) continue;
    if (v.pending) {
      if (await runIfMissed(host, v, graceMs, now)) counts.missed++;
      continue;
    }
    const actual = await driver.state(v.id).catch(() => undefined);
    if (!actual) continue;
    // Only a difference in whether it runs, or in how it stands while it runs, is news worth a report.
    const differs = isActive(actual.state) !== isActive(v.observed.state) || (isActive(actual.state) && actual.state !== v.observed.state);
    if (!differs) {
      if (isActive(actual.state) && (await disksDiffer(host, driver, v, log))) counts.disks++;
      continue;
    }
    log.warn('resync: the guest is not as the log says; reporting what the host sees', { domainId: v.id, log: v.observed, host: actual });
    await host.observe({ uuid: v.id, ...actual, cause: 'found by resync' });
    counts.reported++;
  }
  return counts;
};

/**
 * A hot-plug that finished on the host after its operation was recorded failed (its report came past
 * the deadline), or an unplug the guest completed late, leaves the guest with other disks than its
 * live definition: the host says which it has, and the log follows.
 */
const disksDiffer = async (host: ResyncHost, driver: HypervisorDriver, v: DomainView, log: Logger): Promise<boolean> => {
  const disks = await driver.runtimeDisks?.(v.definition).catch(() => undefined);
  if (!disks) return false;
  const key = (l: Array<{ target: { dev: string } }>) => l.map((d) => d.target.dev).sort().join(',');
  if (key(disks) === key(v.definition.devices.disks)) return false;
  log.warn('resync: the guest has other disks than the log says; reporting what the host sees', { domainId: v.id, log: key(v.definition.devices.disks), host: key(disks) });
  await host.reportDisks(v.id, disks);
  return true;
};

const CARRIED_BY_TASK = new Set<DomainOp>(['attach-interface', 'detach-interface', 'set-memory', 'set-vcpus', 'attach-disk', 'detach-disk', 'update-disk', 'send-key', 'block-resize', 'screenshot']);

const runIfMissed = async (host: ResyncHost, v: DomainView, graceMs: number, now: number): Promise<boolean> => {
  const p = v.pending!;
  const op = DomainOp.safeParse(p.op);
  // Interface, memory, vCPU and disk changes carry what to change in their task alone: their deadline
  // settles a lost one. So do snapshot operations, whose snapshot the view does not carry. A reset or
  // a managed save needs nothing but the definition, as a power operation.
  if (!op.success || CARRIED_BY_TASK.has(op.data) || op.data.startsWith('snapshot-') || v.placementEpoch === undefined) return false;
  if (host.knowsTask(p.taskId) || now - Date.parse(p.requestedAt) < graceMs || Date.parse(p.deadline) <= now) return false;
  const task: DomainTask = {
    kind: 'domain',
    taskId: p.taskId,
    op: op.data,
    domainId: v.id,
    name: v.name,
    version: v.version,
    placementEpoch: v.placementEpoch,
    deadline: p.deadline,
    ...(op.data === 'start' && v.desired === 'paused' ? { paused: true } : {}),
    ...(op.data === 'start' && v.managedSave && p.file === undefined ? { restore: true } : {}),
    ...(p.file !== undefined ? { file: p.file } : {}),
    definition: v.definition,
    correlationId: p.taskId,
  };
  await host.runMissed(task);
  return true;
};
