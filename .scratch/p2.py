def edit(p, pairs):
    s=open(p).read()
    for a,b in pairs:
        assert a in s, (p,a[:50]); s=s.replace(a,b)
    open(p,'w').write(s)
edit('services/host-agent/agent.ts',[
("""  runtimeInterfaces?: (uuid: string) => Promise<RuntimeInterface[]>;
}""","""  runtimeInterfaces?: (uuid: string) => Promise<RuntimeInterface[]>;
  /** How often the full resync compares the hypervisor with the log (it also follows every task). */
  resyncMs?: number;
}"""),
("""  /** What was last said about each guest's interfaces, so only changes are reported. */
  private readonly reportedInterfaces = new Map<string, string>();""","""  /** What was last said about each guest's interfaces, so only changes are reported. */
  private readonly reportedInterfaces = new Map<string, string>();
  /** Tasks being run now, from the queue or by the resync: one never runs twice at once. */
  private readonly inFlight = new Set<string>();
  private resyncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;"""),
("""    this.watchdog.unref();
    await this.worker.start();
  }""","""    this.watchdog.unref();
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
        await resync(this.n, this.resyncHost, 2 * this.ackWaitMs, this.log).catch((e) => this.log.warn('resync failed; the next one tries again', { error: String(e) }));
      } while (this.syncAgain);
    })().finally(() => (this.syncing = null));
    return this.syncing;
  }

  private readonly resyncHost: ResyncHost = {
    hostId: this.opts.hostId,
    driverFor: (type) => this.byType.get(type),
    observe: (o) => this.observed(o),
    knowsTask: (id) => this.inFlight.has(id) || this.journal.wasStarted(id) || this.journal.outcome(id) !== undefined,
    runMissed: async (task) => {
      if (this.inFlight.has(task.taskId) || !this.holdsLease) return;
      this.log.warn('resync: running an operation whose task never reached this host', { taskId: task.taskId, op: task.op, domainId: task.domainId });
      await this.claimAndRun(task, () => {});
    },
  };"""),
("""    const finished = this.journal.outcome(task.taskId);
    if (finished) {
      await this.report(finished);
      m.ack();
      return;
    }
    const claim""","""    const finished = this.journal.outcome(task.taskId);
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
    void this.requestResync();
  }

  /** Claims a task and runs it; 'lease' when the lease was lost before it could start. */
  private async claimAndRun(task: DomainTask, working: () => void): Promise<'done' | 'skipped' | 'lease'> {
    this.inFlight.add(task.taskId);
    try {
      return await this.claimAndRunOnce(task, working);
    } finally {
      this.inFlight.delete(task.taskId);
    }
  }

  private async claimAndRunOnce(task: DomainTask, working: () => void): Promise<'done' | 'skipped' | 'lease'> {
    const claim"""),
("""    if (!claim.proceed) {
      this.log.info('skipping a task that is no longer current', { taskId: task.taskId, op: task.op, reason: claim.reason });
      m.ack();
      return;
    }
    if (!this.holdsLease) {
      m.nak(1000);
      return;
    }
    const report = await this.execute(task, m);""","""    if (!claim.proceed) {
      this.log.info('skipping a task that is no longer current', { taskId: task.taskId, op: task.op, reason: claim.reason });
      return 'skipped';
    }
    if (!this.holdsLease) return 'lease';
    const report = await this.execute(task, working);"""),
("""    this.journal.markDone(task.taskId, report);
    await this.report(report);
    m.ack();
  }

  private async execute(task: DomainTask, m: JsMsg): Promise<ReportRequest> {""","""    this.journal.markDone(task.taskId, report);
    await this.report(report);
    return 'done';
  }

  private async execute(task: DomainTask, working: () => void): Promise<ReportRequest> {"""),
("""    const progress = setInterval(() => m.working(), Math.max(500, this.ackWaitMs / 3));""","""    const progress = setInterval(working, Math.max(500, this.ackWaitMs / 3));"""),
("""    if (this.watchdog) clearInterval(this.watchdog);
    await this.worker.stop(graceMs);""","""    if (this.watchdog) clearInterval(this.watchdog);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.worker.stop(graceMs);
    await this.syncing;"""),
("""import { ownDomains } from './own-domains.ts';""","""import { ownDomains } from './own-domains.ts';
import { resync, type ResyncHost } from './resync.ts';"""),
])
