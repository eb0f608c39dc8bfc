import type { Subscription } from '@nats-io/transport-node';
import { SetResourcesRequest } from '../../contracts/domain/resources.ts';
import { BlockResizeRequest, InjectNmiRequest, ScreenshotRequest, SendKeyRequest } from '../../contracts/domain/guest-actions.ts';
import {
  AttachInterfaceRequest,
  AutostartDomainRequest,
  CreateDomainRequest,
  RenameDomainRequest,
  SetMetadataRequest,
  DefineDomainRequest,
  DetachInterfaceRequest,
  DomainOpRequest,
  StartDomainRequest,
  UndefineDomainRequest,
  SaveDomainRequest,
  RestoreDomainRequest,
} from '../../contracts/domain/commands.ts';
import { SaveImageReply } from '../../contracts/domain/save-restore.ts';
import type { DomainOp } from '../../contracts/domain/events.ts';
import { SnapshotCreateRequest, SnapshotCurrentRequest, SnapshotDeleteRequest, SnapshotRevertRequest } from '../../contracts/domain/snapshots.ts';
import { SnapshotCommands } from './snapshot-commands.ts';
import { RegisterHostRequest } from '../../contracts/host/events.ts';
import { BUCKETS, QUEUES, STREAMS, subjects } from '../../contracts/subjects.ts';
import { ClaimRequests, ReportRequests, type ReportRequest } from '../../contracts/tasks.ts';
import { EventStore } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { answerEach, call, serve } from '../../platform/rpc.ts';
import { AgentReports } from './agent-reports.ts';
import { DeadlineKeeper } from './deadlines.ts';
import { FreshReads } from './fresh-reads.ts';
import { Outcomes } from './outcomes.ts';
import { BACKSTOP_MS, Dispatcher } from './dispatcher.ts';
import { CONSUMERS } from '../../platform/security/roles.ts';
import { DomainCommands } from './domain-commands.ts';
import { DeviceCommands } from './device-commands.ts';
import { AttachDiskRequest, ChangeMediaRequest, DetachDiskRequest, DeviceXmlRequest } from '../../contracts/domain/devices.ts';
import { NetworkCommands } from './network-commands.ts';
import { DefineNetworkRequest, NetworkAutostartRequest, NetworkOpRequest } from '../../contracts/network/commands.ts';
import { UpdateNetworkRequest } from '../../contracts/network/update.ts';
import { domainKind, hostKind } from './domain-kind.ts';
import { NameClaims } from './name-claims.ts';
import { Repository } from './repository.ts';
import { Scheduler } from './scheduler.ts';
import { DEFAULT_LEASE_TIMINGS, HEARTBEAT_INTERVAL_MS, type HostLiveness, type LeaseTimings } from '../../contracts/host/liveness.ts';
import { HostMonitor } from './host-monitor.ts';
import { HostCommands } from './host-commands.ts';
import { KvMirror } from '../../platform/kv-mirror.ts';
import { provisionLiveness } from '../../platform/provision.ts';
import { StorageService } from './storage-commands.ts';
import { commandApi, metaFrom } from './command-api.ts';
import { serveSecretCommands } from './secret-api.ts';

export interface CommandServiceOptions {
  /** Run the storage dispatcher in this process (one per deployment is enough; more are safe). */
  dispatcher?: boolean;
  /** Lease timings, validated by the caller; the defaults otherwise. */
  timings?: LeaseTimings;
  /** The key secret values are sealed under (services/command/secret-vault.ts); no secret verbs without it. */
  secretKey?: Buffer;
}

const hostOf = (subject: string) => subject.split('.')[1] ?? '';

/** The command side: request handlers in a queue group (publishing the tasks they record), and deadline keeping. */
export class CommandService {
  private subs: Subscription[] = [];
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
    const dispatcher = new Dispatcher(this.n, store, this.log.child('dispatcher'));
    // A task not published is published by the backstop below: the command is answered either way.
    const domains = new Repository(store, domainKind, (before, events) =>
      dispatcher.committed(before, events).catch((e) => this.log.warn('could not publish a task; the backstop will', { error: String(e) })),
    );
    const hosts = new Repository(store, hostKind);
    const liveness = await this.n.kvm.open(BUCKETS.hostLiveness);
    this.liveness = new KvMirror<HostLiveness>(liveness, this.n.nc, HEARTBEAT_INTERVAL_MS);
    await this.liveness.start();
    const timings = this.opts.timings ?? DEFAULT_LEASE_TIMINGS;
    const scheduler = new Scheduler(this.liveness, timings);
    const commands = new DomainCommands(domains, new NameClaims(store, 'domain'), scheduler, (hostId, file) =>
      call<SaveImageReply>(this.n.nc, subjects.hostRead(hostId, 'save-image'), { file }, 10_000).then((r) => SaveImageReply.parse(r)),
    );
    const deadlines = new DeadlineKeeper(this.n, 'ev.domain.>', (id, taskId, meta) => commands.run(id, meta, { type: 'expire', taskId }), this.log.child('deadlines'), {
      afterMs: BACKSTOP_MS,
      run: (p) => dispatcher.backstop(domains, p),
    });
    this.deadlines = deadlines;
    // The keeper folds every domain commit anyway: loads (a host's claim, a define's look) use that fold.
    domains.vouchedBy(new FreshReads(store, 'ev.domain.>', deadlines));
    // A command that asks to wait is answered with its outcome, which the keeper sees in the log.
    const outcomes = new Outcomes(deadlines, domains);
    const reports = new AgentReports(domains, hosts, liveness, () => provisionLiveness(this.n).then(() => true, () => false));
    const networks = new NetworkCommands(store);
    const nc = this.n.nc;
    const q = QUEUES.command;
    const log = this.log;
    const api = commandApi(this.n, log);

    this.subs.push(...api.serve('domain', 'define', DefineDomainRequest, (r, meta) => commands.define(r, meta)));
    this.subs.push(...api.serve('domain', 'create', CreateDomainRequest, (r, meta) => commands.create(r, meta)));
    this.subs.push(...api.serve('domain', 'desc', SetMetadataRequest, (r, meta) => commands.setMetadata(r, meta)));
    this.subs.push(...api.serve('domain', 'rename', RenameDomainRequest, (r, meta) => commands.rename(r, meta)));
    this.subs.push(...api.serve('domain', 'set-resources', SetResourcesRequest, (r, meta) => commands.setResources(r, meta)));
    this.subs.push(...api.serve('domain', 'undefine', UndefineDomainRequest, (r, meta) => commands.undefine(r, meta)));
    this.subs.push(...api.serve('domain', 'autostart', AutostartDomainRequest, (r, meta) => commands.setAutostart(r, meta)));
    this.subs.push(...api.serve('domain', 'reset', DomainOpRequest, outcomes.waiting((r, meta) => commands.hostOperation('reset', r, meta))));
    this.subs.push(...api.serve('domain', 'send-key', SendKeyRequest, (r, meta) => commands.sendKey(r, meta)));
    this.subs.push(...api.serve('domain', 'inject-nmi', InjectNmiRequest, (r, meta) => commands.injectNmi(r, meta)));
    this.subs.push(...api.serve('domain', 'screenshot', ScreenshotRequest, (r, meta) => commands.screenshot(r, meta)));
    this.subs.push(...api.serve('domain', 'blockresize', BlockResizeRequest, (r, meta) => commands.blockResize(r, meta)));
    this.subs.push(...api.serve('domain', 'managedsave', DomainOpRequest, outcomes.waiting((r, meta) => commands.hostOperation('managedsave', r, meta))));
    this.subs.push(...api.serve('domain', 'save', SaveDomainRequest, outcomes.waiting((r, meta) => commands.save(r, meta))));
    this.subs.push(...api.serve('domain', 'restore', RestoreDomainRequest, (r, meta) => commands.restore(r, meta)));
    this.subs.push(...api.serve('domain', 'managedsave-remove', DomainOpRequest, (r, meta) => commands.removeManagedSave(r, meta)));
    const snapshots = new SnapshotCommands(commands);
    this.subs.push(...api.serve('domain', 'snapshot-create', SnapshotCreateRequest, (r, meta) => snapshots.create(r, meta)));
    this.subs.push(...api.serve('domain', 'snapshot-revert', SnapshotRevertRequest, (r, meta) => snapshots.revert(r, meta)));
    this.subs.push(...api.serve('domain', 'snapshot-delete', SnapshotDeleteRequest, (r, meta) => snapshots.delete(r, meta)));
    this.subs.push(...api.serve('domain', 'snapshot-current', SnapshotCurrentRequest, (r, meta) => snapshots.setCurrent(r, meta)));
    this.subs.push(...api.serve('domain', 'start', StartDomainRequest, outcomes.waiting((r, meta) => commands.operation('start', r, meta))));
    this.subs.push(...api.serve('domain', 'attach-interface', AttachInterfaceRequest, outcomes.waiting((r, meta) => commands.attachInterface(r, meta))));
    this.subs.push(...api.serve('domain', 'detach-interface', DetachInterfaceRequest, outcomes.waiting((r, meta) => commands.detachInterface(r, meta))));
    const devices = new DeviceCommands(commands);
    this.subs.push(...api.serve('domain', 'attach-disk', AttachDiskRequest, (r, meta) => devices.attachDisk(r, meta)));
    this.subs.push(...api.serve('domain', 'detach-disk', DetachDiskRequest, (r, meta) => devices.detachDisk(r, meta)));
    this.subs.push(...api.serve('domain', 'attach-device', DeviceXmlRequest, (r, meta) => devices.attachDevice(r, meta)));
    this.subs.push(...api.serve('domain', 'detach-device', DeviceXmlRequest, (r, meta) => devices.detachDevice(r, meta)));
    this.subs.push(...api.serve('domain', 'update-device', DeviceXmlRequest, (r, meta) => devices.updateDevice(r, meta)));
    this.subs.push(...api.serve('domain', 'change-media', ChangeMediaRequest, (r, meta) => devices.changeMedia(r, meta)));
    for (const op of ['shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const satisfies DomainOp[]) {
      this.subs.push(...api.serve('domain', op, DomainOpRequest, outcomes.waiting((r, meta) => commands.operation(op, r, meta))));
    }

    this.subs.push(...api.serve('network', 'define', DefineNetworkRequest, (r, meta) => networks.define(r, meta)));
    this.subs.push(...api.serve('network', 'create', DefineNetworkRequest, (r, meta) => networks.create(r, meta)));
    this.subs.push(...api.serve('network', 'undefine', NetworkOpRequest, (r, meta) => networks.undefine(r, meta)));
    this.subs.push(...api.serve('network', 'start', NetworkOpRequest, (r, meta) => networks.start(r, meta)));
    this.subs.push(...api.serve('network', 'destroy', NetworkOpRequest, (r, meta) => networks.destroy(r, meta)));
    this.subs.push(...api.serve('network', 'autostart', NetworkAutostartRequest, (r, meta) => networks.autostart(r, meta)));
    this.subs.push(...api.serve('network', 'update', UpdateNetworkRequest, (r, meta) => networks.update(r, meta)));

    if (this.opts.secretKey) this.subs.push(...(await serveSecretCommands(this.n, store, this.opts.secretKey, api)));

    this.subs.push(serve(nc, subjects.agent('*', 'register'), q, RegisterHostRequest, (r, m, tp) => reports.register(hostOf(m.subject), r, metaFrom({}, tp)), log));
    this.subs.push(
      serve(nc, subjects.agent('*', 'claim'), q, ClaimRequests, async (r, m) => {
        const host = hostOf(m.subject);
        const now = new Date();
        return 'claims' in r ? { results: await answerEach(r.claims, (c) => reports.claim(host, c, now), log) } : reports.claim(host, r, now);
      }, log),
    );
    this.subs.push(
      serve(nc, subjects.agent('*', 'report'), q, ReportRequests, async (r, m, tp) => {
        const host = hostOf(m.subject);
        const record = (one: ReportRequest) => reports.report(host, one, metaFrom({ commandId: one.reportId, actor: `host:${host}` }, tp));
        return 'reports' in r ? { results: await answerEach(r.reports, record, log) } : record(r);
      }, log),
    );

    this.monitor = new HostMonitor(store, hosts, commands, scheduler, this.liveness, liveness, timings, log.child('hosts'), this.n.nc);
    const monitor = this.monitor;
    // One reader of domain commits for both: each commit is delivered to this process once, not twice.
    this.deadlines.follow((c) => monitor.foldDomain(c));
    await this.deadlines.start();
    await this.monitor.start({ domainsFed: true });
    // Maintenance, and a removed host (always in maintenance), take no new domain.
    scheduler.excluded = (hostId) => monitor.inMaintenance(hostId);
    scheduler.leaseClock = () => monitor.leaseClock;
    this.subs.push(...new HostCommands(hosts, commands, monitor, liveness, log.child('hosts')).serve(api));
    // The durable consumer that relayed intents to hosts before tasks were published by their command.
    await this.n.jsm.consumers.delete(STREAMS.events, CONSUMERS.dispatcher).catch(() => undefined);
    this.storage = await StorageService.start(this.n, store, scheduler, log.child('storage'), api, { dispatcher: this.opts.dispatcher !== false });
    await nc.flush();
  }


  async stop(): Promise<void> {
    for (const s of this.subs) await s.drain().catch(() => undefined);
    this.subs = [];
    await this.monitor?.stop();
    await this.storage?.stop();
    this.liveness?.stop();
    await this.deadlines?.stop();
  }
}

