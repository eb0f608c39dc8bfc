import { randomUUID } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { AttachInterfaceRequest, DefineDomainRequest, DetachInterfaceRequest, DomainOpRequest, StartDomainRequest } from '../../contracts/domain/commands.ts';
import type { DomainOp } from '../../contracts/domain/events.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { HostMaintenanceRequest, RegisterHostRequest } from '../../contracts/host/events.ts';
import { decideMaintenance } from '../../contracts/host/decider.ts';
import { BUCKETS, QUEUES, subjects } from '../../contracts/subjects.ts';
import { ClaimRequest, ReportRequest } from '../../contracts/tasks.ts';
import { EventStore } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { AgentReports } from './agent-reports.ts';
import { DeadlineKeeper } from './deadlines.ts';
import { Dispatcher } from './dispatcher.ts';
import { DomainCommands } from './domain-commands.ts';
import { NetworkCommands } from './network-commands.ts';
import { DefineNetworkRequest, NetworkAutostartRequest, NetworkOpRequest } from '../../contracts/network/commands.ts';
import { domainKind, hostKind } from './domain-kind.ts';
import { NameClaims } from './name-claims.ts';
import { Repository } from './repository.ts';
import { Scheduler } from './scheduler.ts';
import { DEFAULT_LEASE_TIMINGS, type HostLiveness, type LeaseTimings } from '../../contracts/host/liveness.ts';
import { HostMonitor } from './host-monitor.ts';
import { KvMirror } from '../../platform/kv-mirror.ts';
import { provisionLiveness } from '../../platform/provision.ts';
import { StorageService } from './storage-commands.ts';

export interface CommandServiceOptions {
  /** Run the dispatcher in this process (one per deployment is enough; more are safe). */
  dispatcher?: boolean;
  /** Lease timings, validated by the caller; the defaults otherwise. */
  timings?: LeaseTimings;
}

const metaFrom = (
  req: { commandId?: string | undefined; actor?: string | undefined; correlationId?: string | undefined },
  traceparent: string | undefined,
): CommandMeta => {
  const commandId = req.commandId ?? randomUUID();
  return {
    commandId,
    actor: req.actor ?? 'anonymous',
    correlationId: req.correlationId ?? commandId,
    causationId: commandId,
    traceContext: traceparent ? { traceparent } : {},
    now: new Date(),
  };
};

const hostOf = (subject: string) => subject.split('.')[1] ?? '';

/** The command side: request handlers in a queue group, the dispatcher, and deadline keeping. */
export class CommandService {
  private subs: Subscription[] = [];
  private dispatcher: Dispatcher | null = null;
  private liveness: KvMirror<HostLiveness> | null = null;
  private storage: StorageService | null = null;
  private deadlines: DeadlineKeeper | null = null;
  private monitor: HostMonitor | null = null;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
    private readonly opts: CommandServiceOptions = {},
  ) {}

  async start(): Promise<void> {
    const store = new EventStore(this.n);
    const domains = new Repository(store, domainKind);
    const hosts = new Repository(store, hostKind);
    const liveness = await this.n.kvm.open(BUCKETS.hostLiveness);
    this.liveness = new KvMirror<HostLiveness>(liveness);
    await this.liveness.start();
    const timings = this.opts.timings ?? DEFAULT_LEASE_TIMINGS;
    const scheduler = new Scheduler(this.liveness, timings);
    const commands = new DomainCommands(domains, new NameClaims(store, 'domain'), scheduler);
    const reports = new AgentReports(domains, hosts, liveness, () => provisionLiveness(this.n).then(() => true, () => false));
    const networks = new NetworkCommands(store);
    const nc = this.n.nc;
    const q = QUEUES.command;
    const log = this.log;

    this.subs.push(serve(nc, subjects.command('domain', 'define'), q, DefineDomainRequest, (r, _m, tp) => commands.define(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('domain', 'undefine'), q, DomainOpRequest, (r, _m, tp) => commands.undefine(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('domain', 'start'), q, StartDomainRequest, (r, _m, tp) => commands.operation('start', r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('domain', 'attach-interface'), q, AttachInterfaceRequest, (r, _m, tp) => commands.attachInterface(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('domain', 'detach-interface'), q, DetachInterfaceRequest, (r, _m, tp) => commands.detachInterface(r, metaFrom(r, tp)), log));
    for (const op of ['shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const satisfies DomainOp[]) {
      this.subs.push(serve(nc, subjects.command('domain', op), q, DomainOpRequest, (r, _m, tp) => commands.operation(op, r, metaFrom(r, tp)), log));
    }

    this.subs.push(serve(nc, subjects.command('network', 'define'), q, DefineNetworkRequest, (r, _m, tp) => networks.define(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('network', 'undefine'), q, NetworkOpRequest, (r, _m, tp) => networks.undefine(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('network', 'start'), q, NetworkOpRequest, (r, _m, tp) => networks.start(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('network', 'destroy'), q, NetworkOpRequest, (r, _m, tp) => networks.destroy(r, metaFrom(r, tp)), log));
    this.subs.push(serve(nc, subjects.command('network', 'autostart'), q, NetworkAutostartRequest, (r, _m, tp) => networks.autostart(r, metaFrom(r, tp)), log));

    this.subs.push(serve(nc, subjects.agent('*', 'register'), q, RegisterHostRequest, (r, m, tp) => reports.register(hostOf(m.subject), r, metaFrom({}, tp)), log));
    this.subs.push(serve(nc, subjects.agent('*', 'claim'), q, ClaimRequest, (r, m) => reports.claim(hostOf(m.subject), r, new Date()), log));
    this.subs.push(
      serve(nc, subjects.agent('*', 'report'), q, ReportRequest, (r, m, tp) => reports.report(hostOf(m.subject), r, metaFrom({ commandId: r.reportId, actor: `host:${hostOf(m.subject)}` }, tp)), log),
    );

    this.deadlines = new DeadlineKeeper(this.n, 'ev.domain.>', (id, taskId, meta) => commands.run(id, meta, { type: 'expire', taskId }), log.child('deadlines'));
    await this.deadlines.start();
    this.monitor = new HostMonitor(store, hosts, commands, scheduler, this.liveness, liveness, timings, log.child('hosts'), this.n.nc);
    await this.monitor.start();
    const monitor = this.monitor;
    scheduler.excluded = (hostId) => monitor.inMaintenance(hostId);
    this.subs.push(
      serve(nc, subjects.command('host', 'maintenance'), q, HostMaintenanceRequest, async (r, _m, tp) => {
        const out = await hosts.execute(r.host, metaFrom(r, tp), (s) => decideMaintenance(r.on, s));
        // Answered once this replica places by it; other replicas follow the log within moments.
        await monitor.reached(r.host, out.version);
        return { hostId: r.host, maintenance: out.state.maintenance ?? false, version: out.version };
      }, log),
    );
    if (this.opts.dispatcher !== false) {
      this.dispatcher = new Dispatcher(this.n, store, log.child('dispatcher'));
      await this.dispatcher.start();
    }
    this.storage = await StorageService.start(this.n, store, scheduler, log.child('storage'), metaFrom, { dispatcher: this.opts.dispatcher !== false });
    await nc.flush();
  }


  async stop(): Promise<void> {
    for (const s of this.subs) await s.drain().catch(() => undefined);
    this.subs = [];
    await this.monitor?.stop();
    await this.dispatcher?.stop();
    await this.storage?.stop();
    this.liveness?.stop();
    await this.deadlines?.stop();
  }
}

