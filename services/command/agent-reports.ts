import type { KV } from '@nats-io/kv';
import { decide, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import { DEFAULT_TIMEOUT_MS } from '../../contracts/domain/commands.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError, virtError } from '../../contracts/errors.ts';
import { decideRegister, requireNotRemoved, type HostAggregate } from '../../contracts/host/decider.ts';
import type { HostEventBody, RegisterHostRequest } from '../../contracts/host/events.ts';
import type { ClaimRequest, ReportRequest } from '../../contracts/tasks.ts';
import { withJsRetry } from '../../platform/js-retry.ts';
import { encodeJson } from '../../platform/nats.ts';
import type { Repository } from './repository.ts';
import type { HostLiveness, RegisterReply } from '../../contracts/host/liveness.ts';

/**
 * What host agents tell the command service. Agents never write events: the service checks that the
 * subject's host owns the domain, then records the report through the same decider as any command.
 */
export class AgentReports {
  constructor(
    private readonly domains: Repository<DomainAggregate, DomainEventBody>,
    private readonly hosts: Repository<HostAggregate, HostEventBody>,
    private readonly liveness: KV,
    private readonly reprovision: () => Promise<boolean>,
  ) {}

  /**
   * Records the registration and grants the lease: an unconditional write, since a registration
   * takes the lease over from whatever the host's previous process held. The agent renews it from
   * the revision answered here.
   */
  async register(subjectHost: string, req: RegisterHostRequest, meta: CommandMeta): Promise<RegisterReply> {
    if (req.hostId !== subjectHost) throw virtError('unauthorized', `host '${subjectHost}' cannot register as '${req.hostId}'`);
    // A removed host gets no lease at all: refused before one is written.
    requireNotRemoved(await this.hosts.load(req.hostId));
    // The lease is granted first and its revision recorded: a loss decided against an older lease
    // then finds the host's aggregate moved on, and is decided again as stale.
    const lease: HostLiveness = { hostId: req.hostId, instanceId: req.instanceId, at: meta.now.toISOString(), activeDomains: 0, capabilities: req.capabilities };
    const put = () => this.liveness.put(req.hostId, encodeJson(lease));
    let leaseRevision: number;
    try {
      leaseRevision = await put();
    } catch {
      // The bucket itself may be gone (a server that lost it, an operator who removed it): make it
      // again if so, then wait out whatever else it was (a leader election).
      await this.reprovision();
      leaseRevision = await withJsRetry('lease write', put);
    }
    // Each grant is its own command: a retried registration is granted (and recorded) anew.
    let out;
    try {
      out = await this.hosts.execute(req.hostId, { ...meta, commandId: `${meta.commandId}:${leaseRevision}` }, (s) => decideRegister({ ...req, leaseRevision }, s));
    } catch (e) {
      // Removed between the look and the grant: the lease just written goes too, unless renewed since.
      if (isVirtError(e) && e.code === 'unauthorized') await this.liveness.delete(req.hostId, { previousSeq: leaseRevision }).catch(() => undefined);
      throw e;
    }
    const returned = out.events.some((e) => e.type === 'HostReturned');
    return { hostId: req.hostId, version: out.version, leaseRevision, ...(returned ? { returned } : {}) };
  }

  /** May the agent run this task now? Only if it is still the domain's pending operation on this host. */
  async claim(subjectHost: string, req: ClaimRequest, now: Date) {
    // As fresh as a read of the log (Repository.load): a state missing a commit could let a superseded task run.
    const s = await this.domains.load(req.domainId);
    const refuse = (reason: string) => ({ proceed: false, reason });
    if (!s.exists) return refuse('domain no longer exists');
    if (s.hostId !== subjectHost) return refuse(`domain is placed on host '${s.hostId}'`);
    if (s.placementEpoch !== req.placementEpoch) return refuse('placement changed since the task was issued');
    if (!s.pending || s.pending.taskId !== req.taskId) return refuse('task is no longer the pending operation');
    if (Date.parse(s.pending.deadline) <= now.getTime()) return refuse('task deadline has passed');
    return { proceed: true };
  }

  async report(subjectHost: string, req: ReportRequest, meta: CommandMeta) {
    // Ownership is checked inside the decision, against the state the append is conditioned on:
    // no separate read, and no window between check and write.
    const out = await this.domains.execute(req.domainId, meta, (state) => {
      if (!state.exists) return [];
      if (state.hostId !== subjectHost) throw virtError('unauthorized', `host '${subjectHost}' does not own domain ${req.domainId}`);
      switch (req.kind) {
        case 'completed':
          return decide(
            { type: 'complete', taskId: req.taskId, observed: req.observed, ...(req.interfaces ? { interfaces: req.interfaces } : {}), ...(req.devices ? { devices: req.devices } : {}) },
            state,
            meta.now,
          );
        case 'failed':
          return decide({ type: 'fail', taskId: req.taskId, error: req.error, ...(req.observed ? { observed: req.observed } : {}) }, state, meta.now);
        case 'interfaces':
          return decide({ type: 'observe-interfaces', interfaces: req.interfaces }, state, meta.now);
        case 'disks':
          return decide({ type: 'observe-disks', disks: req.disks }, state, meta.now);
        case 'observed':
          return decide({ type: 'observe', state: req.observed.state, reason: req.observed.reason, ...(req.cause ? { cause: req.cause } : {}) }, state, meta.now);
        case 'autostart':
          return decide({ type: 'autostart-boot', hostId: subjectHost, timeoutMs: DEFAULT_TIMEOUT_MS.start }, state, meta.now);
      }
    });
    return { recorded: out.events.length > 0, version: out.version };
  }
}
