import { restartsOnHostLoss } from '../../contracts/domain/ha.ts';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { nodeFacts } from '../../drivers/node-info.ts';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveImagePath } from '../../drivers/save-image.ts';
import type { JsMsg } from '@nats-io/jetstream';
import { runSnapshotTask } from './snapshot-tasks.ts';
import { isActive, type ObservedState, type RuntimeInterface } from '../../contracts/domain/state.ts';
import { isVirtError, virtError } from '../../contracts/errors.ts';
import { DEFAULT_LEASE_TIMINGS, type HostLiveness, type LeaseTimings, type RegisterReply } from '../../contracts/host/liveness.ts';
import type { HostCapabilities } from '../../contracts/host/events.ts';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import { ClaimReply, DomainTask, type ClaimRequest, type ReportRequest } from '../../contracts/tasks.ts';
import type { DomainView } from '../../contracts/views.ts';
import type { DomainObservation, HypervisorDriver, OperationOptions } from '../../drivers/hypervisor.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call, callEach, entryResult, errorBody } from '../../platform/rpc.ts';
import { RequestBatch } from '../../platform/request-batch.ts';
import { dropMovedGuests, GuestFence } from './fence.ts';
import { HostLease } from './lease.ts';
import { TaskJournal } from './task-journal.ts';
import { ownDomains } from './own-domains.ts';
import { resync, type ResyncHost } from './resync.ts';
import { FenceGuard } from './fence-guard.ts';
import { TaskWorker } from './task-worker.ts';
import { serveLiveReads } from './live-reads.ts';
import { screenshotFile, serveScreenshots } from './screenshots.ts';
import { contextFromTraceparent, inSpan } from '../../platform/telemetry.ts';

export interface HostAgentOptions {
  hostId: string;
  stateDir: string;
  /** Drivers by the domain types they run; the first one that runs a type is used for it. */
  drivers: HypervisorDriver[];
  heartbeatMs?: number;
  /** Lease renewal and self-fencing; `heartbeatMs` overrides `renewMs`. */
  timings?: LeaseTimings;
  /** What fencing does to running guests: pause them (the default) or destroy them. */
  fencePolicy?: 'pause' | 'destroy';
  agentVersion?: string;
  /** How long a task may go unacknowledged before it is given out again (after a crash). */
  ackWaitMs?: number;
  /** The host devices a guest's interfaces got (and the addresses it took), reported as they change. */
  runtimeInterfaces?: (uuid: string) => Promise<RuntimeInterface[]>;
  /** How often the full resync compares the hypervisor with the log (one also follows the tasks, see `resyncSoon`). */
  resyncMs?: number;
  /** Run a fence guard beside the agent, which kills the host's qemu guests of HA domains if the agent dies (see fence-guard.ts). */
  fenceGuard?: boolean;
  /** Absolute directories under which save and restore may write and read images; `<stateDir>/save` by default. */
  saveDirs?: string[];
}

/** Operations that must not happen twice for one request: a task found started after a crash is not run again. */
const ONCE_ONLY = new Set<DomainTask['op']>(['reboot', 'reset', 'send-key', 'inject-nmi']);

export const agentConsumerName = (hostId: string) => `agent-${hostId}`;

/**
 * One per host: takes only its own tasks, runs them through the drivers, reports what happened and
 * what it sees. It writes no events; it acknowledges a task only after its outcome is recorded.
 */
export class HostAgent {
  readonly instanceId = randomUUID();
  private readonly saveDirs: string[];
  private readonly worker: TaskWorker<DomainTask>;
  private heartbeat: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private lease: HostLease | null = null;
  private beating = false;
  private beats = 0;
  private resyncing = false;
  private reportingInterfaces = false;
  /** Fenced: the lease ran out, guests were stopped, and no task runs until a lease is held again. */
  private fenced = false;
  private fencing: Promise<void> = Promise.resolve();
  private readonly fence: GuestFence;
  private unsubscribe: Array<() => void> = [];
  private readonly journal: TaskJournal<ReportRequest>;
  private readonly byType = new Map<string, HypervisorDriver>();
  /** What was last said about each guest's interfaces, so only changes are reported. */
  private readonly reportedInterfaces = new Map<string, string>();
  /** Tasks being run now, from the queue or by the resync: one never runs twice at once. */
  private readonly inFlight = new Set<string>();
  private resyncTimer: NodeJS.Timeout | null = null;
  private resyncSoonTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private guard: FenceGuard | null = null;
  /** Guests whose domain is restarted elsewhere when this host is lost: the only ones the guard fences. */
  private readonly haGuests = new Set<string>();
  /** Claims asked at once (a pull batch of tasks) share one request; each is decided against the log on its own. */
  private readonly claims = new RequestBatch<ClaimRequest, unknown>((claims) => callEach(this.n.nc, subjects.agent(this.hostId, 'claim'), 'claims', claims));
  /** Reports sent at once (tasks finishing together) share one request; each is recorded, or refused, on its own. */
  private readonly reports = new RequestBatch<{ report: ReportRequest; timeoutMs: number }, unknown>((batch) =>
    callEach(this.n.nc, subjects.agent(this.hostId, 'report'), 'reports', batch.map((b) => b.report), Math.min(...batch.map((b) => b.timeoutMs))),
  );
  /** When the agent last finished a task on each domain (only the recent ones are kept). */
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly n: Nats,
    private readonly opts: HostAgentOptions,
    private readonly log: Logger,
  ) {
    this.journal = new TaskJournal(join(opts.stateDir, 'tasks.jsonl'));
    this.saveDirs = opts.saveDirs ?? [resolve(opts.stateDir, 'save')];
    this.fence = new GuestFence(opts.drivers, opts.fencePolicy ?? 'pause', log);
    this.worker = new TaskWorker(
      n,
      {
        stream: STREAMS.tasks,
        name: agentConsumerName(opts.hostId),
        filterSubject: subjects.task(opts.hostId),
        // Long operations send progress, which restarts this clock.
        ackWaitMs: this.ackWaitMs,
        maxAckPending: 1024,
        batch: 256,
        schema: DomainTask,
        key: (t) => t.domainId,
        what: 'task',
      },
      (task, m) => inSpan(`task ${task.op}`, contextFromTraceparent(task.traceparent), () => this.run(task, m)),
      log,
    );
  }

  private get ackWaitMs(): number {
    return this.opts.ackWaitMs ?? 15_000;
  }

  get hostId(): string {
    return this.opts.hostId;
  }

  private get timings(): LeaseTimings {
    return this.opts.timings ?? DEFAULT_LEASE_TIMINGS;
  }

  /** True while the agent has fenced itself (tests and operators read it from the log line too). */
  get isFenced(): boolean {
    return this.fenced;
  }

  async start(): Promise<void> {
    if (this.opts.fenceGuard) {
      this.guard = new FenceGuard(this.opts.stateDir, this.timings.fenceMs);
      this.guard.start();
    }
    const caps = await this.capabilities();
    this.lease = new HostLease(
      this.n,
      this.hostId,
      async () => {
        const reply = await call<RegisterReply>(this.n.nc, subjects.agent(this.hostId, 'register'), {
          hostId: this.hostId,
          hostname: osHostname(),
          instanceId: this.instanceId,
          agentVersion: this.opts.agentVersion ?? '0.1.0',
          capabilities: caps,
        });
        const lease: HostLiveness = { hostId: this.hostId, instanceId: this.instanceId, at: new Date().toISOString(), activeDomains: 0, capabilities: caps };
        return { lease, revision: reply.leaseRevision, ...(reply.returned ? { returned: true } : {}) };
      },
      this.log,
      async (grant) => {
        // A server that lost the lease may have lost this host's consumers with it.
        await this.worker.ensureConsumer();
        await this.regained(grant.returned ?? false);
      },
      this.timings.fenceMs,
    );
    const grant = await this.lease.acquire();
    for (const d of this.opts.drivers) this.unsubscribe.push(d.onObservation((o) => void this.observed(o)));
    this.unsubscribe.push(serveLiveReads(this.n, this.hostId, (type) => this.byType.get(type), this.log, this.saveDirs));
    this.unsubscribe.push(serveScreenshots(this.n, this.hostId, this.opts.stateDir, this.log));
    await this.reconcile();
    await this.autostart();
    // A host declared lost while its agent was away: what moved elsewhere must not run here too.
    if (grant.returned) await this.dropMoved();
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.opts.heartbeatMs ?? this.timings.renewMs);
    this.heartbeat.unref();
    this.watchdog = setInterval(() => this.checkLease(), Math.max(20, Math.min(250, Math.floor(this.timings.fenceMs / 10))));
    this.watchdog.unref();
    this.resyncTimer = setInterval(() => void this.requestResync(), this.opts.resyncMs ?? 30_000);
    this.resyncTimer.unref();
    await this.worker.start();
  }

  /** Asks for a full resync; one runs at a time, and a request during one runs another after it. */
  requestResync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        if (!this.holdsLease) return;
        await resync(this.n, this.resyncHost(), 2 * this.ackWaitMs, this.log).catch((e) => this.log.warn('resync failed; the next one tries again', { error: String(e) }));
      } while (this.syncAgain);
    })().finally(() => (this.syncing = null));
    return this.syncing;
  }

  /**
   * After a task: one full resync once the grace a task on its way is given has passed, however many
   * tasks finish meanwhile. A resync lists every domain of the host; one after each task, as before,
   * kept a busy host listing its domains back to back, and could not run a missed operation any
   * sooner, since one younger than the grace is left alone.
   */
  private resyncSoon(): void {
    if (this.resyncSoonTimer) return;
    this.resyncSoonTimer = setTimeout(() => {
      this.resyncSoonTimer = null;
      void this.requestResync();
    }, 2 * this.ackWaitMs);
    this.resyncSoonTimer.unref();
  }

  private resyncHost(): ResyncHost {
    return {
    hostId: this.opts.hostId,
    driverFor: (type) => this.byType.get(type),
    observe: (o) => this.observed(o),
    actedRecently: (id) => Date.now() - (this.touched.get(id) ?? 0) < 2 * this.ackWaitMs,
    knowsTask: (id) => this.inFlight.has(id) || this.journal.wasStarted(id) || this.journal.outcome(id) !== undefined,
    reportDisks: (domainId, disks) =>
      this.report({ kind: 'disks', reportId: `disks:${this.hostId}:${randomUUID()}`, domainId, disks }).catch((e) =>
        this.log.warn('could not report disks', { domainId, error: String(e) }),
      ),
    runMissed: async (task) => {
      if (this.inFlight.has(task.taskId) || !this.holdsLease) return;
      this.log.warn('resync: running an operation whose task never reached this host', { taskId: task.taskId, op: task.op, domainId: task.domainId });
      await this.claimAndRun(task, () => {});
    },
    };
  }

  /** The lease ran out: fence, whatever the connection and the beat are doing. */
  private checkLease(): void {
    if (this.fenced || !this.lease || this.lease.valid) return;
    this.fenced = true;
    this.log.warn('lease not renewed in time: fencing this host', { hostId: this.hostId, fenceMs: this.timings.fenceMs, policy: this.fence.policy });
    this.fencing = this.fencing.then(() => this.fence.all());
  }

  /**
   * A lease is held again. If the host was declared lost meanwhile, what it paused stays paused (it
   * may run elsewhere now) and guests whose ownership moved are destroyed; otherwise nobody acted on
   * the loss, and the guests it paused are resumed.
   */
  private async regained(returned: boolean): Promise<void> {
    await this.fencing;
    const wasFenced = this.fenced;
    this.fenced = false;
    // Beside the beat: the renewals go on while guests are resumed or checked.
    if (returned) {
      this.fence.forget();
      void (async () => {
        await this.reconcile().catch((e) => this.log.warn('could not reconcile after returning', { error: String(e) }));
        await this.dropMoved();
      })();
    } else if (wasFenced) {
      void this.fence.resume(() => this.holdsLease);
    }
  }

  /** Destroys local guests whose domain now belongs to another host (see `dropMovedGuests`). */
  dropMoved(): Promise<void> {
    return dropMovedGuests(this.n, this.hostId, this.opts.drivers, this.log);
  }

  private async capabilities(): Promise<HostCapabilities> {
    const [all, node] = await Promise.all([Promise.all(this.opts.drivers.map((d) => d.capabilities())), nodeFacts()]);
    for (const [i, c] of all.entries()) for (const t of c.domainTypes) if (!this.byType.has(t)) this.byType.set(t, this.opts.drivers[i]!);
    const first = all[0];
    return {
      driver: all.map((c) => c.driver).join(','),
      domainTypes: [...this.byType.keys()],
      cpus: first?.cpus ?? 0,
      memoryKiB: first?.memoryKiB ?? 0,
      // The machine's CPU topology, for virsh nodeinfo; the drivers' own features after it.
      features: Object.assign({}, node, ...all.map((c) => c.features)),
    };
  }

  private driverFor(type: string): HypervisorDriver {
    const d = this.byType.get(type);
    if (!d) throw virtError('no-supported-driver', `no driver on host '${this.hostId}' runs domains of type '${type}'`);
    return d;
  }

  /** Read at the moment of acting, not only from the watchdog: a process that stood still must not act on a lease it lost meanwhile. */
  private get holdsLease(): boolean {
    return !this.fenced && (this.lease?.valid ?? false);
  }

  private async run(task: DomainTask, m: JsMsg): Promise<void> {
    if (!this.holdsLease) {
      // No lease, no work: the task comes back once the host holds a lease again (or goes stale).
      m.nak(1000);
      return;
    }
    const finished = this.journal.outcome(task.taskId);
    if (finished) {
      await this.report(finished);
      m.ack();
      return;
    }
    // The resync runs it already (it had not arrived): it is acknowledged once that has reported.
    if (this.inFlight.has(task.taskId)) {
      m.nak(1000);
      return;
    }
    const outcome = await this.claimAndRun(task, () => m.working());
    if (outcome === 'lease') m.nak(1000);
    else m.ack();
    this.resyncSoon();
  }

  /** Claims a task and runs it; 'lease' when the lease was lost before it could start. */
  private async claimAndRun(task: DomainTask, working: () => void): Promise<'done' | 'skipped' | 'lease'> {
    this.inFlight.add(task.taskId);
    try {
      return await this.claimAndRunOnce(task, working);
    } finally {
      this.inFlight.delete(task.taskId);
      const now = Date.now();
      this.touched.set(task.domainId, now);
      for (const [id, at] of this.touched) if (now - at > 2 * this.ackWaitMs) this.touched.delete(id);
    }
  }

  private async claimAndRunOnce(task: DomainTask, working: () => void): Promise<'done' | 'skipped' | 'lease'> {
    const claim = ClaimReply.parse(entryResult(await this.claims.ask({ taskId: task.taskId, domainId: task.domainId, placementEpoch: task.placementEpoch })));
    if (!claim.proceed) {
      this.log.info('skipping a task that is no longer current', { taskId: task.taskId, op: task.op, reason: claim.reason });
      if (this.journal.wasStarted(task.taskId)) await this.abandon(task);
      return 'skipped';
    }
    if (!this.holdsLease) return 'lease';
    this.noteHa(task.definition.uuid, task.definition);
    const report = await this.execute(task, working);
    // The lease ran out while the guest was being changed: it is fenced like the others.
    if (this.fenced) {
      const d = this.byType.get(task.definition.type);
      if (d) await (this.fencing = this.fencing.then(() => this.fence.guest(d, task.domainId)));
    }
    await this.journal.markDone(task.taskId, report);
    await this.report(report);
    return 'done';
  }

  /**
   * A task this host began and never reported, which the log no longer waits for (its deadline
   * passed while the agent was away): what it left that the log will not record is undone where the
   * driver knows how, so the guest stays as the log has it. Only a snapshot-create leaves such a thing.
   */
  private async abandon(task: DomainTask): Promise<void> {
    if (task.op !== 'snapshot-create' || !task.snapshot) return;
    try {
      const d = this.driverFor(task.definition.type);
      await d.snapshotAbandon?.(task.definition, task.snapshot, {
        taskId: task.taskId,
        progress: (message) => this.log.warn('abandoned snapshot', { taskId: task.taskId, message }),
      });
      this.log.info('undid an abandoned snapshot-create', { taskId: task.taskId, domainId: task.domainId });
    } catch (e) {
      this.log.warn('could not undo an abandoned snapshot-create', { taskId: task.taskId, error: String(e) });
    }
  }

  private async execute(task: DomainTask, working: () => void): Promise<ReportRequest> {
    const reportId = `${task.taskId}:outcome`;
    let driver: HypervisorDriver;
    try {
      driver = this.driverFor(task.definition.type);
    } catch (e) {
      return { kind: 'failed', reportId, domainId: task.domainId, taskId: task.taskId, error: errorBody(e, this.log) };
    }
    const uuid = task.definition.uuid;
    if (ONCE_ONLY.has(task.op) && this.journal.wasStarted(task.taskId)) {
      // It may have happened already before a crash: never reboot or reset a guest, press its keys or
      // send it an NMI twice for one request.
      return { kind: 'completed', reportId, domainId: task.domainId, taskId: task.taskId, observed: await driver.state(uuid) };
    }
    await this.journal.markStarted(task.taskId);
    const deadline = Math.max(0, Date.parse(task.deadline) - Date.now());
    const overdue = AbortSignal.timeout(deadline);
    const signal = AbortSignal.any([this.worker.signal, overdue]);
    const progress = setInterval(working, Math.max(500, this.ackWaitMs / 3));
    const opts: OperationOptions = { signal, taskId: task.taskId, progress: (message) => this.log.info('progress', { taskId: task.taskId, message }) };
    try {
      const observed: ObservedState = await this.perform(driver, task, opts);
      const interfaces = await this.opts.runtimeInterfaces?.(uuid);
      if (interfaces) this.reportedInterfaces.set(uuid, JSON.stringify(interfaces));
      // A guest left running says which ports and ptys it got; a failure to ask costs only the live XML.
      const devices = isActive(observed.state) ? await driver.runtimeDevices?.(uuid).catch((e) => void this.log.warn('could not read runtime devices', { uuid, error: String(e) })) : undefined;
      return {
        kind: 'completed',
        reportId,
        domainId: task.domainId,
        taskId: task.taskId,
        observed,
        ...(interfaces ? { interfaces } : {}),
        ...(devices ? { devices } : {}),
      };
    } catch (e) {
      const observed = await driver.state(uuid).catch(() => undefined);
      return {
        kind: 'failed',
        reportId,
        domainId: task.domainId,
        taskId: task.taskId,
        // Cut short at its deadline, whatever the driver said about the abort: the same outcome the
        // control plane records when the deadline passes without a report.
        error: overdue.aborted || (signal.aborted && !isVirtError(e)) ? { code: 'timeout', message: `operation '${task.op}' did not finish before its deadline ${task.deadline}` } : errorBody(e, this.log),
        ...(observed ? { observed } : {}),
      };
    } finally {
      clearInterval(progress);
    }
  }

  private async perform(d: HypervisorDriver, t: DomainTask, opts: OperationOptions): Promise<ObservedState> {
    const uuid = t.definition.uuid;
    switch (t.op) {
      case 'start':
        if (t.file !== undefined) return this.restoreFrom(d, t, t.file, opts);
        return d.start(t.definition, { ...opts, paused: t.paused ?? false, ...(t.restore ? { restore: true } : {}) });
      case 'shutdown':
        return d.shutdown(t.definition, opts);
      case 'destroy':
        return d.destroy(uuid, opts);
      case 'suspend':
        return d.suspend(uuid, opts);
      case 'resume':
        return d.resume(uuid, opts);
      case 'reboot':
        return d.reboot(t.definition, opts);
      case 'attach-interface':
      case 'detach-interface':
        return this.changeInterface(d, t, opts);
      case 'set-memory':
        if (!d.setMemory || t.memoryKiB === undefined) throw virtError('operation-unsupported', `the ${d.name} driver cannot resize a running guest's memory`);
        return d.setMemory(uuid, t.memoryKiB).then(() => d.state(uuid));
      case 'set-vcpus':
        if (!d.setVcpus || t.vcpus === undefined) throw virtError('operation-unsupported', `the ${d.name} driver cannot change a running guest's vCPUs`);
        return d.setVcpus(uuid, t.vcpus, opts).then(() => d.state(uuid));
      case 'reset':
        if (!d.reset) throw virtError('operation-unsupported', `the ${d.name} driver cannot reset a guest`);
        return d.reset(uuid, opts);
      case 'managedsave':
        if (!d.managedSave) throw virtError('operation-unsupported', `the ${d.name} driver cannot save a guest's state`);
        return d.managedSave(t.definition, opts);
      case 'attach-disk':
      case 'detach-disk':
      case 'update-disk':
        return this.changeDisk(d, t, opts);
      case 'save': {
        if (!d.saveTo || t.file === undefined) throw virtError('operation-unsupported', `the ${d.name} driver cannot save a guest's state to a file`);
        return d.saveTo(t.definition, await resolveImagePath(this.saveDirs, t.file), opts);
      }
      case 'snapshot-create':
      case 'snapshot-revert':
      case 'snapshot-delete':
        return runSnapshotTask(d, t, opts);
      case 'send-key':
        if (!d.sendKey || !t.keys) throw virtError('operation-unsupported', `the ${d.name} driver cannot send keys to a guest`);
        return d.sendKey(uuid, t.keys, opts).then(() => d.state(uuid));
      case 'inject-nmi':
        if (!d.injectNmi) throw virtError('operation-unsupported', `the ${d.name} driver cannot inject an NMI into a guest`);
        return d.injectNmi(uuid, opts).then(() => d.state(uuid));
      case 'screenshot': {
        if (!d.screenshot) throw virtError('operation-unsupported', `the ${d.name} driver cannot take screenshots`);
        await d.screenshot(t.definition, t.screen ?? 0, await screenshotFile(this.opts.stateDir, t.taskId), opts);
        return d.state(uuid);
      }
      case 'block-resize':
        if (!d.blockResize || !t.target || t.bytes === undefined) throw virtError('operation-unsupported', `the ${d.name} driver cannot resize a running guest's disks`);
        return d.blockResize(t.definition, t.target, t.bytes, opts).then(() => d.state(uuid));
    }
  }

  /** Each is idempotent in the driver: a task run again after a crash finds the disk as it left it. */
  private async changeDisk(d: HypervisorDriver, t: DomainTask, opts: OperationOptions): Promise<ObservedState> {
    if (t.op === 'attach-disk') {
      if (!d.attachDisk || !t.disk) throw virtError('operation-unsupported', `the ${d.name} driver cannot plug disks into a running guest`);
      await d.attachDisk(t.definition, t.disk, opts);
    } else if (t.op === 'detach-disk') {
      if (!d.detachDisk || !t.target) throw virtError('operation-unsupported', `the ${d.name} driver cannot unplug disks from a running guest`);
      await d.detachDisk(t.definition, t.target, opts);
    } else {
      if (!d.updateDisk || !t.disk) throw virtError('operation-unsupported', `the ${d.name} driver cannot change a running guest's media`);
      await d.updateDisk(t.definition, t.disk, opts);
    }
    return d.state(t.definition.uuid);
  }


  /** virsh restore: only an image inside this host's image directories (drivers/save-image.ts). */
  private async restoreFrom(d: HypervisorDriver, t: DomainTask, file: string, opts: OperationOptions): Promise<ObservedState> {
    return d.start(t.definition, { ...opts, paused: t.paused ?? false, restoreFile: await resolveImagePath(this.saveDirs, file) });
  }

  private async changeInterface(d: HypervisorDriver, t: DomainTask, opts: OperationOptions): Promise<ObservedState> {
    if (t.op === 'attach-interface') {
      if (!d.attachInterface || !t.iface) throw virtError('operation-unsupported', `the ${d.name} driver cannot plug interfaces into a running guest`);
      await d.attachInterface(t.definition, t.iface, opts);
    } else {
      if (!d.detachInterface || !t.mac) throw virtError('operation-unsupported', `the ${d.name} driver cannot unplug interfaces from a running guest`);
      await d.detachInterface(t.definition, t.mac, opts);
    }
    return d.state(t.definition.uuid);
  }

  /** Retries until the command service has it: a report is the only record of what the host did. */
  private report(r: ReportRequest): Promise<void> {
    return this.worker.report(subjects.agent(this.hostId, 'report'), r, (x, timeoutMs) => this.reports.ask({ report: x, timeoutMs }).then(entryResult));
  }

  private async observed(o: DomainObservation): Promise<void> {
    await this.report({
      kind: 'observed',
      reportId: `obs:${this.hostId}:${randomUUID()}`,
      domainId: o.uuid,
      observed: { state: o.state, reason: o.reason },
      ...(o.cause ? { cause: o.cause } : {}),
    }).catch((e) => this.log.warn('could not report an observation', { uuid: o.uuid, error: String(e) }));
  }

  /**
   * After a restart, tell the command service what the hypervisor really has, where views disagree
   * (or, with `onlyUnknown`, only for domains shown unknown since this host was lost).
   */
  async reconcile(onlyUnknown = false): Promise<void> {
    const domains = await ownDomains(this.n, this.hostId);
    for (const v of domains) this.noteHa(v.id, v.definition);
    if (!onlyUnknown) this.guard?.fence(this.haGuests);
    for (const v of domains) {
      if (onlyUnknown && !v.hostLost) continue;
      const driver = this.byType.get(v.definition.type);
      if (!driver) continue;
      const actual = await driver.state(v.id);
      // A domain of a host that was lost is told its state again, whatever it was.
      if (actual.state !== v.observed.state || v.hostLost) {
        await this.observed({ uuid: v.id, ...actual, cause: 'found on agent start' });
      }
    }
  }

  /**
   * libvirt starts its autostart domains when its daemon starts; the agent asks for theirs once per
   * start, after telling what the hypervisor has. The command service decides against the log, so a
   * domain started meanwhile, or one moved elsewhere, is left alone.
   */
  private async autostart(): Promise<void> {
    for (const v of await ownDomains(this.n, this.hostId)) {
      if (!v.autostart || !v.persistent || v.pending || isActive(v.observed.state)) continue;
      this.log.info('starting an autostart domain', { domainId: v.id, name: v.name });
      await this.report({ kind: 'autostart', reportId: `autostart:${this.instanceId}:${v.id}`, domainId: v.id });
    }
  }

  private noteHa(uuid: string, def: Parameters<typeof restartsOnHostLoss>[0]): void {
    if (restartsOnHostLoss(def)) this.haGuests.add(uuid);
    else this.haGuests.delete(uuid);
  }

  /** Reports guests whose interfaces changed since last said: a device, or an address a lease gave. */
  private async syncInterfaces(): Promise<void> {
    if (!this.opts.runtimeInterfaces) return;
    for (const d of this.opts.drivers) {
      for (const dom of await d.list()) {
        const interfaces = await this.opts.runtimeInterfaces(dom.uuid);
        const said = JSON.stringify(interfaces);
        if ((this.reportedInterfaces.get(dom.uuid) ?? '[]') === said) continue;
        await this.report({ kind: 'interfaces', reportId: `ifs:${this.hostId}:${randomUUID()}`, domainId: dom.uuid, interfaces });
        this.reportedInterfaces.set(dom.uuid, said);
      }
    }
  }

  /** One beat at a time: a renewal is conditioned on the revision the previous one wrote. */
  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    const began = performance.now();
    const steps: Record<string, number> = {};
    const step = (name: string) => (steps[name] = Math.round(performance.now() - began));
    try {
      // The lease first: reports about interfaces may wait on a command service that is not there.
      const active = (await Promise.all(this.opts.drivers.map((d) => d.list()))).reduce((n, l) => n + l.length, 0);
      step('listed');
      await this.lease?.beat(active);
      step('renewed');
      if (this.fenced && this.lease?.valid) {
        // Renewed the same lease after all: the control plane never acted on the gap.
        await this.regained(false);
      }
      if (this.fenced) return;
      // Beside the beat as well: a report waits on the command service, and the next renewal must not.
      if (!this.reportingInterfaces) {
        this.reportingInterfaces = true;
        void this.syncInterfaces()
          .catch((e) => this.log.warn('could not report interfaces', { error: String(e) }))
          .finally(() => (this.reportingInterfaces = false));
      }
      // Level-triggered: now and then, look for guests whose domain moved while nobody told this host.
      if (++this.beats % 10 === 0 && !this.resyncing) {
        // Beside the beat, never in its way: a renewal must not wait on a long resync.
        this.resyncing = true;
        void (async () => {
          await this.reconcile(true).catch((e) => this.log.warn('could not resync domains shown unknown', { error: String(e) }));
          await this.dropMoved();
        })().finally(() => (this.resyncing = false));
      }
    } catch (e) {
      this.log.warn('heartbeat failed', { error: String(e) });
    } finally {
      this.beating = false;
      const took = performance.now() - began;
      if (took > this.timings.renewMs) this.log.warn('heartbeat took longer than the renewal interval', { ms: Math.round(took), ...steps });
    }
  }

  /** Stops taking tasks and lets running ones finish; a task cut short is not acknowledged and comes back. */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.resyncSoonTimer) clearTimeout(this.resyncSoonTimer);
    this.guard?.stop();
    await this.worker.stop(graceMs);
    await this.syncing;
    for (const u of this.unsubscribe) u();
    await this.journal.close();
    await Promise.all(this.opts.drivers.map((d) => d.close()));
  }
}
