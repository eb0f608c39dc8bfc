import { SaveImageReply } from '../contracts/domain/save-restore.ts';
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { userInfo, hostname } from 'node:os';
import { DeliverPolicy, type OrderedConsumerOptions } from '@nats-io/jetstream';
import type { CommandAccepted as Recorded } from '../contracts/domain/commands.ts';
import type { CommandOutcome } from '../contracts/views.ts';
import type { DomainDefinitionInput } from '../contracts/domain/definition.ts';
import type { LifecycleOp } from '../contracts/domain/events.ts';
import type { DomainStats, NodeStats } from '../contracts/domain/stats.ts';
import type { ResourceChange } from '../contracts/domain/resources.ts';
import { isActive } from '../contracts/domain/state.ts';
import { isVirtError, virtError } from '../contracts/errors.ts';
import { LifecycleEvent } from '../contracts/lifecycle.ts';
import { STREAMS, subjects, type HostReadKind } from '../contracts/subjects.ts';
import type { DomainListRequest, DomainView, HostView } from '../contracts/views.ts';
import type { EvacuationItem } from '../contracts/host/events.ts';
import { BaseConfig, loadConfig, resolveNatsUrl } from '../platform/config.ts';
import { connectNats, decodeJson, isNoResponders, type Nats } from '../platform/nats.ts';
import { call } from '../platform/rpc.ts';
import { openConsole, type ConsoleOptions, type ConsoleSession } from './console.ts';
import type { NetworkCommandAccepted } from '../contracts/network/commands.ts';
import { NetworkLifecycleEvent } from '../contracts/network/lifecycle.ts';
import type { NetworkListRequest, NetworkView } from '../contracts/network/views.ts';
import type { DhcpLease } from '../contracts/network/leases.ts';
import type { StorageAccepted } from '../contracts/storage/commands.ts';
import type { SecretCommandAccepted } from '../contracts/secret/commands.ts';
import type { SecretListRequest, SecretView } from '../contracts/secret/views.ts';
import type { StoragePoolDefinitionInput, StorageVolumeDefinitionInput } from '../contracts/storage/definition.ts';
import type { PoolListRequest, PoolView, TaskOutcomeView, VolumeView } from '../contracts/storage/views.ts';
import { downloadVolume, uploadVolume, type StreamTarget, type TransferResult } from './volume-stream.ts';
import type { DomainCapsRequest } from '../contracts/host/domain-caps.ts';
import { ALL_CPUS, type NodeCpuMap, type NodeCpuStats, type VcpuInfo } from '../contracts/host/host-reads.ts';
import { parseBitmap } from '../contracts/xml/units.ts';

/**
 * A command unanswered this long is sent again under its id (the first copy may have crossed a route
 * to a server that died): shorter than the request timeout, so the copy still has the service's own
 * bounded JetStream wait before the caller gives up; the first copy stays awaited too.
 */
const COMMAND_RESEND = { resendAfterMs: 10_000 };

/** A domain command's reply: what was recorded and, when it waited for it (`waitMs`), the host's outcome. */
export type CommandAccepted = Recorded & { outcome?: CommandOutcome };
export type { DomainView, HostView, LifecycleEvent };
export type { NetworkCommandAccepted, NetworkLifecycleEvent, NetworkView };
export type { PoolView, StorageAccepted, VolumeView };
export type { SecretCommandAccepted, SecretView };
export type { ConsoleEnd, ConsoleOptions, ConsoleSession } from './console.ts';

export interface CommandOptions {
  /** Reuse one id to retry a command safely: it takes effect once and the reply repeats. */
  commandId?: string;
  correlationId?: string;
  timeoutSeconds?: number;
  /**
   * For an operation a host carries out (start, shutdown, destroy, ...): the reply waits up to this
   * long (at most 5000 ms) for the host's outcome to be recorded and carries it, so `outcome` need
   * not ask the views.
   */
  waitMs?: number;
}

/** How to log in, as flags would give it; `VIRTPLANE_*` variables and a config file fill the rest. */
export type ClientCredentials = Partial<Pick<BaseConfig, 'natsContext' | 'natsCreds' | 'natsNkey' | 'natsUser' | 'natsPassword' | 'natsToken' | 'natsCa' | 'natsCert' | 'natsKey' | 'principal' | 'dataDir'>> & { config?: string };

export interface ClientOptions {
  /** NATS URL(s); absent: the embedded default this project started. */
  url?: string;
  credentials?: ClientCredentials;
  /**
   * A note for the audit trail beside this client's commands. On an authenticated server the actor
   * recorded is the principal the server logged us in as, whatever this says.
   */
  actor?: string;
  requestTimeoutMs?: number;
  /**
   * Read-your-writes: every command returns only once the views show its effect (its version, or the
   * object's removal), so whatever reads next, from this process or another, never sees older state.
   */
  readYourWrites?: boolean;
}

/** How long a command waits for the views to show it before returning anyway. */
const REFLECT_WAIT_MS = 30_000;

const defaultActor = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `uid${process.getuid?.() ?? '?'}@${hostname()}`;
  }
};

/** The typed client: commands with generated ids, queries, and the lifecycle feed. */
export class VirtplaneClient {
  private constructor(
    readonly nats: Nats,
    private readonly actor: string,
    private readonly timeoutMs: number,
    private readonly owned: boolean,
    private readonly readYourWrites = false,
  ) {}

  static async connect(opts: ClientOptions = {}): Promise<VirtplaneClient> {
    const cfg = loadConfig(BaseConfig, { ...opts.credentials, ...(opts.url ? { natsUrl: opts.url } : {}) });
    const n = await connectNats(resolveNatsUrl(cfg), 'virtplane-client');
    return new VirtplaneClient(n, opts.actor ?? defaultActor(), opts.requestTimeoutMs ?? 30_000, true, opts.readYourWrites);
  }

  /** Wraps a connection the caller owns (tests, services embedding the client). */
  static over(n: Nats, opts: ClientOptions = {}): VirtplaneClient {
    return new VirtplaneClient(n, opts.actor ?? defaultActor(), opts.requestTimeoutMs ?? 30_000, false, opts.readYourWrites);
  }

  /** Our own command subject when logged in (the server checks it is ours), else the unauthenticated form. */
  private commandSubject(aggregate: string, verb: string): string {
    return this.nats.principal ? subjects.commandFor(this.nats.principal, aggregate, verb) : subjects.command(aggregate, verb);
  }

  /**
   * Resolves once the views reflect `version` of the object, or show it gone: a get asked for that
   * version answers "not found" only from views at or past it. Views still behind (a projector
   * restarting) are waited for up to `waitMs`; then the command returns anyway, as it was accepted.
   */
  async reflect(kind: 'domain' | 'network' | 'pool' | 'secret', id: string, version: number, waitMs = REFLECT_WAIT_MS): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const left = Math.max(0, Math.min(10_000, deadline - Date.now()));
      try {
        await call<Record<string, unknown>>(this.nats.nc, subjects.query(kind, 'get'), { [kind]: id, minVersion: version, waitMs: left }, left + this.timeoutMs);
        return;
      } catch (e) {
        const code = (e as { code?: string })?.code;
        if (code === 'no-domain' || code === 'no-network' || code === 'no-storage-pool' || code === 'no-secret') return;
        if ((code === 'timeout' || noResponders(e)) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (code === 'timeout' || noResponders(e)) return;
        throw e;
      }
    }
  }

  private async reflected<T>(sent: Promise<T>, kind: 'domain' | 'network' | 'pool' | 'secret', id: (r: T) => string, version: (r: T) => number): Promise<T> {
    const r = await sent;
    if (this.readYourWrites) await this.reflect(kind, id(r), version(r));
    return r;
  }

  private command(verb: string, body: Record<string, unknown>, opts: CommandOptions = {}): Promise<CommandAccepted> {
    return this.reflected(this.sendCommand(verb, body, opts), 'domain', (r) => r.domainId, (r) => r.version);
  }

  private sendCommand(verb: string, body: Record<string, unknown>, opts: CommandOptions = {}): Promise<CommandAccepted> {
    return call<CommandAccepted>(
      this.nats.nc,
      this.commandSubject('domain', verb),
      {
        ...body,
        commandId: opts.commandId ?? randomUUID(),
        actor: this.actor,
        ...(opts.correlationId ? { correlationId: opts.correlationId } : {}),
        ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
        ...(opts.waitMs ? { waitMs: opts.waitMs } : {}),
      },
      this.timeoutMs,
      COMMAND_RESEND,
    );
  }

  /** A JSON definition is typed (a misspelt field does not compile) and checked again by the command service. */
  define(input: { definition: DomainDefinitionInput; hostId?: string } | { xml: string; hostId?: string }, opts?: CommandOptions) {
    return this.command('define', input, opts);
  }

  /** virsh create: a domain started from a definition, transient unless it is already defined. */
  create(
    input: ({ definition: DomainDefinitionInput } | { xml: string }) & { hostId?: string; paused?: boolean },
    opts?: CommandOptions,
  ) {
    return this.command('create', input, opts);
  }

  /** virsh desc: sets the description (or title); '' removes it. Neither scope: live if running, else config. */
  setMetadata(domain: string, field: 'description' | 'title', value: string, opts: CommandOptions & { live?: boolean; config?: boolean } = {}) {
    return this.command('desc', { domain, field, value, ...(opts.live ? { live: true } : {}), ...(opts.config ? { config: true } : {}) }, opts);
  }

  /**
   * virsh metadata --set/--remove: the application element under namespace `uri` in the domain's
   * <metadata>, stored under prefix `key`; `xml` null removes it. Neither scope: live if running, else config.
   */
  setAppMetadata(domain: string, uri: string, key: string | undefined, xml: string | null, opts: CommandOptions & { live?: boolean; config?: boolean } = {}) {
    return this.command(
      'desc',
      { domain, field: 'metadata', uri, ...(key !== undefined ? { key } : {}), value: xml ?? '', ...(opts.live ? { live: true } : {}), ...(opts.config ? { config: true } : {}) },
      opts,
    );
  }

  /** virsh setmem, setmaxmem, setvcpus. Neither scope: live if running, else config. */
  setResources(domain: string, change: ResourceChange, opts: CommandOptions & { live?: boolean; config?: boolean } = {}) {
    return this.command('set-resources', { domain, change, ...(opts.live ? { live: true } : {}), ...(opts.config ? { config: true } : {}) }, opts);
  }

  /** virsh domrename: a shut off persistent domain takes a new name. */
  rename(domain: string, newName: string, opts?: CommandOptions) {
    return this.command('rename', { domain, newName }, opts);
  }

  /**
   * `managedSave`: a saved state goes with the domain (virsh undefine --managed-save); without it, one refuses the undefine.
   * `snapshotsMetadata`: so does its snapshot metadata (--snapshots-metadata); without it, an inactive domain with snapshots stays.
   */
  undefine(domain: string, opts: CommandOptions & { managedSave?: boolean; snapshotsMetadata?: boolean } = {}) {
    return this.command('undefine', { domain, ...(opts.managedSave ? { managedSave: true } : {}), ...(opts.snapshotsMetadata ? { snapshotsMetadata: true } : {}) }, opts);
  }

  /**
   * virsh snapshot-create-as (`name`, `description`) or snapshot-create (`xml`, a <domainsnapshot> document); follow with `outcome`.
   * `diskOnly`: an external snapshot, each disk on a new qcow2 overlay; `disks`: --diskspec.
   */
  snapshotCreate(
    domain: string,
    spec: { name?: string; description?: string; xml?: string; diskOnly?: boolean; disks?: Array<{ name: string; snapshot?: 'external' | 'internal' | 'no'; file?: string }> },
    opts?: CommandOptions,
  ) {
    return this.command('snapshot-create', { domain, ...spec }, opts);
  }

  /** virsh snapshot-revert: `name`, or the current snapshot; `running`/`paused` override the snapshot's state. */
  snapshotRevert(domain: string, spec: { name?: string; running?: boolean; paused?: boolean }, opts?: CommandOptions) {
    return this.command('snapshot-revert', { domain, ...spec }, opts);
  }

  /** virsh snapshot-current <name>: that snapshot becomes current (metadata only). */
  snapshotSetCurrent(domain: string, name: string, opts?: CommandOptions) {
    return this.command('snapshot-current', { domain, name }, opts);
  }

  /** virsh snapshot-delete: `name`, or the current snapshot; with `children`, `childrenOnly` or only its `metadata`. */
  snapshotDelete(domain: string, spec: { name?: string; children?: boolean; childrenOnly?: boolean; metadata?: boolean }, opts?: CommandOptions) {
    return this.command('snapshot-delete', { domain, ...spec }, opts);
  }

  /** virsh autostart: start the domain when its host's agent starts (`false`: --disable). */
  autostart(domain: string, enable = true, opts?: CommandOptions) {
    return this.command('autostart', { domain, ...(enable ? {} : { disable: true }) }, opts);
  }

  /** virsh reset: a hard reset of the running guest; it stays running (or paused). */
  reset(domain: string, opts?: CommandOptions) {
    return this.command('reset', { domain }, opts);
  }

  /** virsh send-key: the keys pressed together on the running guest, recorded with who asked. */
  sendKey(domain: string, keys: { codeset?: string; keycodes: number[]; holdtimeMs?: number }, opts?: CommandOptions) {
    return this.command('send-key', { domain, ...keys }, opts);
  }

  /** virsh blockresize: the disk of `path` (target or source) to `bytes`, under the running guest. */
  blockResize(domain: string, path: string, bytes: number, opts?: CommandOptions) {
    return this.command('blockresize', { domain, path, bytes }, opts);
  }

  /** virsh screenshot: the host takes the picture; `screenshotBytes` reads it from that host once the task is done. */
  screenshot(domain: string, screen = 0, opts?: CommandOptions) {
    return this.command('screenshot', { domain, screen }, opts);
  }

  /** The picture a finished screenshot task left on its host, read in pieces. */
  async screenshotBytes(hostId: string, taskId: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let offset = 0; ; ) {
      const r = await this.askHost<{ size: number; data: string }>(hostId, 'screenshot', { taskId, offset });
      const part = Buffer.from(r.data, 'base64');
      parts.push(part);
      offset += part.length;
      if (offset >= r.size || part.length === 0) return Buffer.concat(parts);
    }
  }

  /** virsh inject-nmi: a non-maskable interrupt to the running guest, recorded with who asked. */
  injectNmi(domain: string, opts?: CommandOptions) {
    return this.command('inject-nmi', { domain }, opts);
  }

  /** virsh managedsave: save the guest's state on its host and stop it; the next start resumes it. */
  managedSave(domain: string, opts?: CommandOptions) {
    return this.command('managedsave', { domain }, opts);
  }

  /**
   * virsh save: the running guest's state into `file` on its host (an absolute path inside that
   * host's image directories); the domain is then shut off (saved).
   */
  save(domain: string, file: string, opts?: CommandOptions) {
    return this.command('save', { domain, file }, opts);
  }

  /**
   * virsh restore: the domain `file` records, started from it on `hostId` (by default the live host
   * that holds the file). `paused`/`running` override the state it was saved in.
   */
  restore(file: string, opts: CommandOptions & { hostId?: string; paused?: boolean; running?: boolean } = {}) {
    return this.command(
      'restore',
      { file, ...(opts.hostId ? { hostId: opts.hostId } : {}), ...(opts.paused ? { paused: true } : {}), ...(opts.running ? { running: true } : {}) },
      opts,
    );
  }

  /** virsh save-image-dumpxml: the definition a saved image on `hostId` records, and whether its guest ran. */
  async saveImage(file: string, hostId: string): Promise<SaveImageReply> {
    return SaveImageReply.parse(await this.askHost(hostId, 'save-image', { file }));
  }

  /** virsh managedsave-remove: drop the saved state, so the next start boots afresh. */
  managedSaveRemove(domain: string, opts?: CommandOptions) {
    return this.command('managedsave-remove', { domain }, opts);
  }

  start(domain: string, opts: CommandOptions & { paused?: boolean } = {}) {
    return this.command('start', { domain, ...(opts.paused ? { paused: true } : {}) }, opts);
  }

  operation(op: Exclude<LifecycleOp, 'start'>, domain: string, opts?: CommandOptions) {
    return this.command(op, { domain }, opts);
  }

  /** virsh attach-interface: live on a running domain, config on a shut off one, unless told. */
  attachInterface(domain: string, iface: Record<string, unknown>, opts: CommandOptions & { live?: boolean; config?: boolean } = {}) {
    return this.command('attach-interface', { domain, iface, ...(opts.live ? { live: true } : {}), ...(opts.config ? { config: true } : {}) }, opts);
  }

  detachInterface(domain: string, mac: string, opts: CommandOptions & { live?: boolean; config?: boolean } = {}) {
    return this.command('detach-interface', { domain, mac, ...(opts.live ? { live: true } : {}), ...(opts.config ? { config: true } : {}) }, opts);
  }

  /**
   * virsh attach-disk: `disk` as the JSON model of a `<disk>` (source, target, driver, device,
   * readonly). With no scope the running guest changes, as virsh's flagless call does.
   */
  attachDisk(domain: string, disk: Record<string, unknown>, opts: CommandOptions & DeviceScope = {}) {
    return this.command('attach-disk', { domain, disk, ...scopeOf(opts) }, opts);
  }

  /** virsh detach-disk: `target` is the disk's target (vdb) or its source path. */
  detachDisk(domain: string, target: string, opts: CommandOptions & DeviceScope = {}) {
    return this.command('detach-disk', { domain, target, ...scopeOf(opts) }, opts);
  }

  /** virsh attach-device, detach-device, update-device: one `<disk>` or `<interface>` element. */
  deviceXml(verb: 'attach-device' | 'detach-device' | 'update-device', domain: string, xml: string, opts: CommandOptions & DeviceScope = {}) {
    return this.command(verb, { domain, xml, ...scopeOf(opts) }, opts);
  }

  /** virsh change-media: eject, insert or update a cdrom's or floppy's media. */
  changeMedia(domain: string, target: string, action: 'eject' | 'insert' | 'update', source?: string, opts: CommandOptions & DeviceScope = {}) {
    return this.command('change-media', { domain, target, action, ...(source ? { source } : {}), ...scopeOf(opts) }, opts);
  }

  shutdown = (domain: string, opts?: CommandOptions) => this.operation('shutdown', domain, opts);
  /** `force`: the domain's host is lost and the operator says it is off; the domain is recorded shut off. */
  destroy = (domain: string, opts: CommandOptions & { force?: boolean } = {}) =>
    opts.force ? this.command('destroy', { domain, force: true }, opts) : this.operation('destroy', domain, opts);
  suspend = (domain: string, opts?: CommandOptions) => this.operation('suspend', domain, opts);
  resume = (domain: string, opts?: CommandOptions) => this.operation('resume', domain, opts);
  reboot = (domain: string, opts?: CommandOptions) => this.operation('reboot', domain, opts);

  async get(domain: string, opts: { minVersion?: number; settled?: boolean; waitMs?: number } = {}): Promise<DomainView> {
    const r = await call<{ domain: DomainView }>(this.nats.nc, subjects.query('domain', 'get'), { domain, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs);
    return r.domain;
  }

  /** Domains page by page (`pageSize` each at most), following the cursors to the end. */
  listPages(filter: Partial<DomainListRequest> = {}): AsyncGenerator<DomainView[]> {
    return this.pages<DomainView>(subjects.query('domain', 'list'), 'domains', filter);
  }

  async list(filter: Partial<DomainListRequest> = {}): Promise<DomainView[]> {
    return collect(this.listPages(filter));
  }

  async hosts(opts: { pageSize?: number } = {}): Promise<HostView[]> {
    return collect(this.pages<HostView>(subjects.query('host', 'list'), 'hosts', opts));
  }

  /**
   * Every page of a list query. Each page after the first asks for the log position the first one
   * reflected, so a page answered by another projector replica is never older than the ones before.
   */
  private async *pages<T>(subject: string, field: string, body: Record<string, unknown>, position: 'minSeq' | 'minVersion' = 'minSeq'): AsyncGenerator<T[]> {
    let cursor: string | undefined;
    let at = body[position] as number | undefined;
    const waitMs = (body.waitMs as number | undefined) ?? 5000;
    for (;;) {
      const r = await call<{ seq?: number; version?: number; next?: string } & Record<string, unknown>>(
        this.nats.nc,
        subject,
        { ...body, ...(cursor ? { cursor } : {}), ...(at !== undefined ? { [position]: at } : {}) },
        waitMs + this.timeoutMs,
      );
      yield r[field] as T[];
      if (!r.next) return;
      cursor = r.next;
      const reached = position === 'minSeq' ? r.seq : r.version;
      if (reached !== undefined) at = Math.max(at ?? 0, reached);
    }
  }

  /** One host's view; `no-host` when no such host has registered. */
  async host(hostId: string): Promise<HostView> {
    const h = (await this.hosts()).find((x) => x.hostId === hostId);
    if (!h) throw virtError('no-host', `no host with id '${hostId}' has registered`);
    return h;
  }

  /**
   * A running domain's counters now, read by the agent of the host that runs it (virsh domstats and
   * the monitoring verbs); never from the log.
   */
  async domainStats(domain: string): Promise<{ view: DomainView; stats: DomainStats }> {
    const view = await this.get(domain);
    if (!isActive(view.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: view.name });
    const r = await this.askHost<{ stats: DomainStats }>(view.hostId, 'domain-stats', { domainId: view.id, definition: view.definition });
    return { view, stats: r.stats };
  }

  /** A host's memory now and each NUMA cell's free memory (virsh nodememstats, freecell). */
  async nodeStats(hostId: string): Promise<NodeStats> {
    return (await this.askHost<{ stats: NodeStats }>(hostId, 'node-stats', {})).stats;
  }

  /** virsh domcapabilities: what a host's hypervisor offers a domain, asked of it now. */
  async domainCapabilities(hostId: string, req: DomainCapsRequest = {}): Promise<string> {
    return (await this.askHost<{ xml: string }>(hostId, 'domain-caps', { ...req })).xml;
  }

  /**
   * virsh vcpuinfo: a running guest's vCPUs, asked of its host; a guest that is not running has no
   * vCPU threads, so each is given with what it may run on, as virsh falls back to virDomainGetVcpuPinInfo.
   */
  async vcpuInfo(domain: string): Promise<{ view: DomainView; running: boolean; vcpus: VcpuInfo[]; hostCpus: number }> {
    const view = await this.get(domain);
    if (isActive(view.observed.state)) {
      const r = await this.askHost<{ vcpus: VcpuInfo[]; hostCpus: number }>(view.hostId, 'vcpu-info', { domainId: view.id, definition: view.definition });
      return { view, running: true, ...r };
    }
    const def = view.nextDefinition ?? view.definition;
    const map = await this.nodeCpuMap(view.hostId);
    const mask = def.vcpu?.cpuset ? parseBitmap(def.vcpu.cpuset) : undefined;
    const affinity = mask && mask.size > 0 ? [...mask].sort((a, b) => a - b) : Array.from({ length: map.present }, (_, i) => i);
    const vcpus = Array.from({ length: def.vcpu?.current ?? def.vcpus }, (_, number) => ({ number, state: 'offline' as const, cpu: -1, timeNs: 0, affinity }));
    return { view, running: false, vcpus, hostCpus: map.present };
  }

  /** virsh domtime: a running guest's clock, as its host's driver reads it. */
  async domainTime(domain: string): Promise<{ seconds: number; nseconds: number }> {
    const view = await this.get(domain);
    if (!isActive(view.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: view.name });
    return this.askHost(view.hostId, 'domain-time', { domainId: view.id, definition: view.definition });
  }

  /** virsh maxvcpus: the most vCPUs a guest of `type` may have on the host. */
  async maxVcpus(hostId: string, type?: string): Promise<number> {
    return (await this.askHost<{ max: number }>(hostId, 'max-vcpus', type === undefined ? {} : { type })).max;
  }

  /**
   * virsh nodecpustats: a host's CPU times since boot, all CPUs (-1) or one. A negative CPU other than
   * -1 is refused here, as libvirt's virNodeGetCPUStats refuses it before asking any driver.
   */
  async nodeCpuStats(hostId: string, cpu = ALL_CPUS): Promise<NodeCpuStats> {
    if (!Number.isInteger(cpu) || cpu < ALL_CPUS || cpu > 0x7fffffff) {
      throw virtError('invalid-arg', 'cpuNum in virNodeGetCPUStats only accepts -1 as a negative value', { raw: true });
    }
    return (await this.askHost<{ stats: NodeCpuStats }>(hostId, 'node-cpu-stats', cpu === ALL_CPUS ? {} : { cpu })).stats;
  }

  /** virsh nodecpumap: how many CPUs a host has and which are online. */
  async nodeCpuMap(hostId: string): Promise<NodeCpuMap> {
    return this.askHost<NodeCpuMap>(hostId, 'node-cpu-map', {});
  }

  /** virsh sysinfo: a host's SMBIOS as libvirt's sysinfo XML. */
  async sysinfo(hostId: string): Promise<string> {
    return (await this.askHost<{ xml: string }>(hostId, 'sysinfo', {})).xml;
  }

  /** A live reading only the host's own agent can give: nobody listening means that agent is down. */
  private async askHost<T>(hostId: string, what: HostReadKind, body: Record<string, unknown>): Promise<T> {
    try {
      return await call<T>(this.nats.nc, subjects.hostRead(hostId, what), body, this.timeoutMs);
    } catch (e) {
      // call() has waited out its grace for a responder to appear; only that host's agent could answer.
      if (isNoResponders(e) || (isVirtError(e) && (e.details as { noResponders?: string } | undefined)?.noResponders)) {
        throw virtError('operation-failed', `host '${hostId}' does not answer: its agent is not running`, { hostId });
      }
      throw e;
    }
  }

  /** Maintenance on: no new domain is placed on the host (its domains stay); off: placement again. */
  hostMaintenance(host: string, on: boolean, opts: CommandOptions = {}) {
    return call<{ hostId: string; maintenance: boolean; version: number }>(
      this.nats.nc,
      this.commandSubject('host', 'maintenance'),
      { host, on, commandId: opts.commandId ?? randomUUID(), actor: this.actor },
      this.timeoutMs,
    );
  }

  /** host-evacuate, one pass: maintenance on, then each domain's evacuation recorded (see `evacuateHost`). */
  hostEvacuate(host: string, opts: CommandOptions & { force?: boolean } = {}) {
    return call<{ hostId: string; maintenance: boolean; domains: EvacuationItem[] }>(
      this.nats.nc,
      this.commandSubject('host', 'evacuate'),
      { host, ...(opts.force ? { force: true } : {}), commandId: opts.commandId ?? randomUUID(), actor: this.actor },
      this.timeoutMs,
      COMMAND_RESEND,
    );
  }

  /** Removes a host with no domains; a removed host may not register until it is enrolled again. */
  hostRemove(host: string, opts: CommandOptions = {}) {
    return call<{ hostId: string; removed: boolean; version: number }>(
      this.nats.nc,
      this.commandSubject('host', 'remove'),
      { host, commandId: opts.commandId ?? randomUUID(), actor: this.actor },
      this.timeoutMs,
    );
  }

  /** Lets a removed host register again (host-enroll does this after giving it new keys). */
  hostReadmit(host: string, opts: CommandOptions = {}) {
    return call<{ hostId: string; readmitted: boolean; version: number }>(
      this.nats.nc,
      this.commandSubject('host', 'readmit'),
      { host, commandId: opts.commandId ?? randomUUID(), actor: this.actor },
      this.timeoutMs,
    );
  }

  /**
   * Waits until the host has carried out what `accepted` asked for, and returns the view then.
   * Throws the host's error when the operation failed, and `timeout` when it is still running.
   */
  async outcome(accepted: CommandAccepted, timeoutMs = 120_000): Promise<DomainView> {
    const v = await this.outcomeOrGone(accepted, timeoutMs);
    if (!v) throw virtError('no-domain', `domain '${accepted.name}' was removed`);
    return v;
  }

  /**
   * As `outcome`, but a domain removed meanwhile gives null: how destroy and shutdown of a transient
   * domain end (removal settles only a domain that is not running, so the guest is down).
   */
  async outcomeOrGone(accepted: CommandAccepted, timeoutMs = 120_000): Promise<DomainView | null> {
    const deadline = Date.now() + timeoutMs;
    // `timeout` while the views have not reached the command (a projector restarting): wait on.
    // Only `no-domain` from views at or past the command's version means the domain is gone.
    const ask = () =>
      this.get(accepted.domainId, { minVersion: accepted.version, settled: true, waitMs: Math.max(0, Math.min(25_000, deadline - Date.now())) }).catch((e) => {
        if (e?.code === 'no-domain') return null;
        // No projector answering (one restarting) is a wait too, not an outcome.
        const waiting = e?.code === 'timeout' || noResponders(e);
        if (waiting && Date.now() < deadline) return undefined;
        throw e;
      });
    // The reply waited for the outcome (`waitMs`) and got it: nothing to ask first.
    for (let v = accepted.outcome ? accepted.outcome.domain : await ask(); ; v = await ask()) {
      if (v === undefined) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      if (!v) return null;
      if (accepted.taskId && v.lastError?.taskId === accepted.taskId) {
        throw virtError(v.lastError.code as never, v.lastError.message, { domain: v.name, op: v.lastError.op });
      }
      if (!accepted.taskId || v.pending?.taskId !== accepted.taskId) return v;
      if (Date.now() >= deadline) {
        throw virtError('timeout', `domain '${v.name}': operation '${v.pending.op}' still in progress after ${timeoutMs} ms`);
      }
    }
  }

  /** Lifecycle events as they happen (or from the start of the stream), in libvirt's vocabulary. */
  lifecycle(opts: { domainId?: string; hostId?: string; from?: 'new' | 'all'; signal?: AbortSignal } = {}): AsyncGenerator<LifecycleEvent> {
    return this.feed(subjects.lifecycle(opts.hostId ?? '*', opts.domainId ?? '*'), LifecycleEvent, opts);
  }

  /** Events of one subject filter on the LIFECYCLE stream, skipping anything that is not of `schema`. */
  private async *feed<T>(filter: string, schema: z.ZodType<T>, opts: { from?: 'new' | 'all'; signal?: AbortSignal }): AsyncGenerator<T> {
    const consumerOpts: Partial<OrderedConsumerOptions> = {
      // A single string, not an array: 2.9 servers have no multi-filter consumers.
      filter_subjects: filter,
      deliver_policy: opts.from === 'all' ? DeliverPolicy.All : DeliverPolicy.New,
    };
    const consumer = await this.nats.js.consumers.get(STREAMS.lifecycle, consumerOpts);
    const messages = await consumer.consume();
    const stop = () => void messages.close();
    opts.signal?.addEventListener('abort', stop, { once: true });
    if (opts.signal?.aborted) stop();
    try {
      for await (const m of messages) {
        const parsed = schema.safeParse(decodeJson(m.data));
        if (parsed.success) yield parsed.data;
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      await messages.close();
    }
  }

  // ---- Networks ---------------------------------------------------------------------------------

  private networkCommand(verb: string, body: Record<string, unknown>, opts: Omit<CommandOptions, 'timeoutSeconds'> = {}): Promise<NetworkCommandAccepted> {
    const sent = call<NetworkCommandAccepted>(
      this.nats.nc,
      this.commandSubject('network', verb),
      { ...body, commandId: opts.commandId ?? randomUUID(), actor: this.actor, ...(opts.correlationId ? { correlationId: opts.correlationId } : {}) },
      this.timeoutMs,
      COMMAND_RESEND,
    );
    return this.reflected(sent, 'network', (r) => r.networkId, (r) => r.version);
  }

  /** Defines (or redefines) a persistent network from the JSON model or libvirt network XML. */
  netDefine(input: { definition: Record<string, unknown> } | { xml: string }, opts?: CommandOptions) {
    return this.networkCommand('define', input, opts);
  }

  /** `virsh net-create`: start a network from this definition; a new one is gone once destroyed. */
  netCreate(input: { definition: Record<string, unknown> } | { xml: string }, opts?: CommandOptions) {
    return this.networkCommand('create', input, opts);
  }

  netUndefine(network: string, opts?: CommandOptions) {
    return this.networkCommand('undefine', { network }, opts);
  }

  netStart(network: string, opts?: CommandOptions) {
    return this.networkCommand('start', { network }, opts);
  }

  netDestroy(network: string, opts?: CommandOptions) {
    return this.networkCommand('destroy', { network }, opts);
  }

  /** virsh net-update: `command` (add, add-first, add-last, delete, modify) of `section` with one element. */
  netUpdate(network: string, input: { command: string; section: string; xml: string; parentIndex?: number; config?: boolean; live?: boolean }, opts?: CommandOptions) {
    return this.networkCommand('update', { network, ...input }, opts);
  }

  netAutostart(network: string, enable = true, opts?: CommandOptions) {
    return this.networkCommand('autostart', { network, enable }, opts);
  }

  async netGet(network: string, opts: { minVersion?: number; waitMs?: number } = {}): Promise<NetworkView> {
    const r = await call<{ network: NetworkView }>(this.nats.nc, subjects.query('network', 'get'), { network, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs);
    return r.network;
  }

  async netList(filter: Partial<NetworkListRequest> = {}): Promise<NetworkView[]> {
    return collect(this.pages<NetworkView>(subjects.query('network', 'list'), 'networks', filter));
  }

  /** Network lifecycle events (DEFINED, UNDEFINED, STARTED, STOPPED) as they happen, or from the start. */
  netEvents(opts: { networkId?: string; from?: 'new' | 'all'; signal?: AbortSignal } = {}): AsyncGenerator<NetworkLifecycleEvent> {
    return this.feed(subjects.networkLifecycle(opts.networkId ?? '*'), NetworkLifecycleEvent, opts);
  }

  /**
   * virsh net-dhcp-leases: each live host's dnsmasq leases of the network, read at that moment (a
   * network's guests get their addresses from the host they run on). Sorted by MAC, as virsh sorts.
   */
  async netDhcpLeases(network: string, opts: { mac?: string } = {}): Promise<DhcpLease[]> {
    const view = await this.netGet(network);
    const hosts = (await this.hosts()).filter((h) => h.alive !== false && !h.removed && !h.lost);
    const per = await Promise.all(
      hosts.map((h) =>
        this.askHost<{ leases: DhcpLease[] }>(h.hostId, 'dhcp-leases', { networkId: view.id, name: view.name, ...(opts.mac ? { mac: opts.mac } : {}) }).then(
          (r) => r.leases,
          // A host whose agent does not answer has no dnsmasq of ours running to ask.
          (e: unknown) => {
            if (isVirtError(e) && e.code === 'operation-failed' && (e.details as { hostId?: string } | undefined)?.hostId === h.hostId) return [];
            throw e;
          },
        ),
      ),
    );
    return per.flat().sort((a, b) => (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : a.address.localeCompare(b.address)));
  }

  // ---- End of networks --------------------------------------------------------------------------

  // ---- Secrets ----------------------------------------------------------------------------------

  private secretCommand<T extends { secretId: string; version?: number }>(verb: string, body: Record<string, unknown>, opts: Omit<CommandOptions, 'timeoutSeconds'> = {}): Promise<T> {
    return call<T>(
      this.nats.nc,
      this.commandSubject('secret', verb),
      { ...body, commandId: opts.commandId ?? randomUUID(), actor: this.actor, ...(opts.correlationId ? { correlationId: opts.correlationId } : {}) },
      this.timeoutMs,
      COMMAND_RESEND,
    );
  }

  /** `virsh secret-define`: libvirt secret XML; a document without <uuid> gets one. */
  secretDefine(xml: string, opts?: CommandOptions) {
    return this.reflected(this.secretCommand<SecretCommandAccepted>('define', { xml }, opts), 'secret', (r) => r.secretId, (r) => r.version);
  }

  secretUndefine(secret: string, opts?: CommandOptions) {
    return this.reflected(this.secretCommand<SecretCommandAccepted>('undefine', { secret }, opts), 'secret', (r) => r.secretId, (r) => r.version);
  }

  /** Sets a secret's value (bytes); it is sent base64 to the command service, which alone can read it back. */
  secretSetValue(secret: string, value: Uint8Array, opts?: CommandOptions) {
    const sent = this.secretCommand<SecretCommandAccepted>('set-value', { secret, value: Buffer.from(value).toString('base64') }, opts);
    return this.reflected(sent, 'secret', (r) => r.secretId, (r) => r.version);
  }

  /** A secret's value: refused for a private secret, and for principals that are not operators. */
  async secretGetValue(secret: string): Promise<Buffer> {
    const r = await this.secretCommand<{ secretId: string; value: string }>('get-value', { secret });
    return Buffer.from(r.value, 'base64');
  }

  async secretGet(secret: string, opts: { minVersion?: number; waitMs?: number } = {}): Promise<SecretView> {
    const r = await call<{ secret: SecretView }>(this.nats.nc, subjects.query('secret', 'get'), { secret, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs);
    return r.secret;
  }

  async secretList(filter: Partial<SecretListRequest> = {}): Promise<SecretView[]> {
    return collect(this.pages<SecretView>(subjects.query('secret', 'list'), 'secrets', filter));
  }

  // ---- End of secrets ---------------------------------------------------------------------------

  // ---- Storage pools and volumes ----------------------------------------------------------------

  private storageCommand(aggregate: 'pool' | 'vol', verb: string, body: Record<string, unknown>, opts: CommandOptions = {}): Promise<StorageAccepted> {
    return this.reflected(this.sendStorageCommand(aggregate, verb, body, opts), 'pool', (r) => r.poolId, (r) => r.version);
  }

  private sendStorageCommand(aggregate: 'pool' | 'vol', verb: string, body: Record<string, unknown>, opts: CommandOptions = {}): Promise<StorageAccepted> {
    return call<StorageAccepted>(
      this.nats.nc,
      this.commandSubject(aggregate, verb),
      {
        ...body,
        commandId: opts.commandId ?? randomUUID(),
        actor: this.actor,
        ...(opts.correlationId ? { correlationId: opts.correlationId } : {}),
        ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
      },
      this.timeoutMs,
      COMMAND_RESEND,
    );
  }

  /** Defines (or redefines) a pool from the JSON model or libvirt pool XML, on `hostId` or the only live host. */
  poolDefine(
    input: { definition: StoragePoolDefinitionInput | Record<string, unknown>; hostId?: string } | { xml: string; hostId?: string },
    opts?: Omit<CommandOptions, 'timeoutSeconds'>,
  ) {
    return this.storageCommand('pool', 'define', input, opts);
  }

  /** `virsh pool-create`: define and start in one; a new pool is transient, gone once it stops. */
  poolCreate(
    input: ({ definition: StoragePoolDefinitionInput | Record<string, unknown> } | { xml: string }) & { hostId?: string; build?: boolean },
    opts?: CommandOptions,
  ) {
    return this.storageCommand('pool', 'create', input, opts);
  }

  poolBuild(pool: string, opts?: CommandOptions) {
    return this.storageCommand('pool', 'build', { pool }, opts);
  }

  /** `build`: build the pool first, as `virsh pool-start --build`. */
  poolStart(pool: string, opts: CommandOptions & { build?: boolean } = {}) {
    return this.storageCommand('pool', 'start', { pool, ...(opts.build ? { build: true } : {}) }, opts);
  }

  /** `virsh pool-autostart [--disable]`: its host starts it when its agent starts. */
  poolAutostart(pool: string, enable = true, opts?: Omit<CommandOptions, 'timeoutSeconds'>) {
    return this.storageCommand('pool', 'autostart', { pool, ...(enable ? {} : { disable: true }) }, opts);
  }

  poolDestroy(pool: string, opts?: Omit<CommandOptions, 'timeoutSeconds'>) {
    return this.storageCommand('pool', 'destroy', { pool }, opts);
  }

  poolUndefine(pool: string, opts?: Omit<CommandOptions, 'timeoutSeconds'>) {
    return this.storageCommand('pool', 'undefine', { pool }, opts);
  }

  async poolGet(pool: string, opts: { minVersion?: number; waitMs?: number } = {}): Promise<PoolView> {
    return (await call<{ pool: PoolView }>(this.nats.nc, subjects.query('pool', 'get'), { pool, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs)).pool;
  }

  /** Active pools, or all with `all`, as `virsh pool-list [--all]`. */
  async poolList(filter: Partial<PoolListRequest> = {}): Promise<PoolView[]> {
    return collect(this.pages<PoolView>(subjects.query('pool', 'list'), 'pools', filter));
  }

  /** Creates a volume in an active pool from the JSON model or libvirt volume XML. */
  volCreate(pool: string, input: { definition: StorageVolumeDefinitionInput | Record<string, unknown> } | { xml: string }, opts?: CommandOptions) {
    return this.storageCommand('vol', 'create', { pool, ...input }, opts);
  }

  /** `volume`: its name in `pool`, or its key (path). */
  volDelete(pool: string, volume: string, opts?: CommandOptions) {
    return this.storageCommand('vol', 'delete', { pool, volume }, opts);
  }

  /** `virsh pool-refresh`: the pool's volumes become what its host finds in it now. */
  poolRefresh(pool: string, opts?: CommandOptions) {
    return this.storageCommand('pool', 'refresh', { pool }, opts);
  }

  /** `virsh pool-delete`: removes an inactive pool's (empty) directory; the pool stays defined. */
  poolDelete(pool: string, opts?: CommandOptions) {
    return this.storageCommand('pool', 'delete', { pool }, opts);
  }

  /** `capacityBytes`: the new capacity, or the change with `delta`; below the current one only with `shrink`. */
  volResize(pool: string, volume: string, capacityBytes: number, opts: CommandOptions & { delta?: boolean; shrink?: boolean } = {}) {
    const { delta, shrink, ...rest } = opts;
    return this.storageCommand('vol', 'resize', { pool, volume, capacityBytes, ...(delta ? { delta } : {}), ...(shrink ? { shrink } : {}) }, rest);
  }

  /** Overwrites the volume's content with zeros. */
  volWipe(pool: string, volume: string, opts?: CommandOptions) {
    return this.storageCommand('vol', 'wipe', { pool, volume }, opts);
  }

  /** Copies `volume` to a new volume `newName` in the same pool. */
  volClone(pool: string, volume: string, newName: string, opts?: CommandOptions) {
    return this.storageCommand('vol', 'clone', { pool, volume, newName }, opts);
  }

  /** `volume`: a name with `opts.pool`, `pool/name`, or a key (path). */
  async volGet(volume: string, opts: { pool?: string; minVersion?: number; waitMs?: number } = {}): Promise<VolumeView> {
    return (await call<{ volume: VolumeView }>(this.nats.nc, subjects.query('vol', 'get'), { volume, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs)).volume;
  }

  async volList(pool: string, opts: { minVersion?: number; waitMs?: number; pageSize?: number } = {}): Promise<VolumeView[]> {
    return collect(this.pages<VolumeView>(subjects.query('vol', 'list'), 'volumes', { pool, ...opts }, 'minVersion'));
  }

  /**
   * Waits until the host has carried out what `accepted` asked for (build, start, volume create or
   * delete) and returns the pool then. Throws the host's error when it failed, `timeout` while it runs.
   */
  async storageOutcome(accepted: StorageAccepted, timeoutMs = 120_000): Promise<PoolView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(25_000, deadline - Date.now()));
      const r = await call<{ pool: PoolView; task?: TaskOutcomeView }>(
        this.nats.nc,
        subjects.query('pool', 'get'),
        { pool: accepted.poolId, minVersion: accepted.version, waitMs, ...(accepted.taskId ? { task: accepted.taskId } : {}) },
        waitMs + this.timeoutMs,
      );
      if (r.task && !r.task.ok && r.task.error) {
        throw virtError(r.task.error.code, r.task.error.message, { pool: r.pool.name, op: r.task.op, ...(r.task.name ? { volume: r.task.name } : {}) });
      }
      if (!accepted.taskId || !r.pool.inFlight.some((t) => t.taskId === accepted.taskId)) return r.pool;
      if (Date.now() >= deadline) {
        throw virtError('timeout', `pool '${r.pool.name}': task ${accepted.taskId} still in progress after ${timeoutMs} ms`);
      }
    }
  }

  /** Which host streams a volume: `volume` as volGet takes it. */
  private async streamTarget(volume: string, pool?: string): Promise<StreamTarget & { pool: string }> {
    const v = await this.volGet(volume, pool ? { pool } : {});
    const p = await this.poolGet(v.poolId);
    return { hostId: p.hostId, poolId: p.id, volume: v.name, pool: p.name };
  }

  /**
   * `virsh vol-upload`: `file`'s bytes (at most `length`) into the volume's file from `offset`,
   * streamed to the pool's host. The bytes stay out of the log; afterwards a pool refresh records
   * the volume's new size and allocation (`recorded` false when the pool was busy and it was not).
   */
  async volUpload(
    volume: string,
    file: string,
    opts: { pool?: string; offset?: number; length?: number; sparse?: boolean } = {},
  ): Promise<TransferResult & { pool: string; volume: string; recorded: boolean }> {
    const t = await this.streamTarget(volume, opts.pool);
    const r = await uploadVolume(this.nats.nc, t, file, opts);
    const recorded = await this.poolRefresh(t.poolId)
      .then((a) => this.storageOutcome(a, 60_000))
      .then(
        () => true,
        () => false,
      );
    return { ...r, pool: t.pool, volume: t.volume, recorded };
  }

  /** `virsh vol-download`: the volume's bytes from `offset` (at most `length`) into `file`. */
  async volDownload(volume: string, file: string, opts: { pool?: string; offset?: number; length?: number } = {}): Promise<TransferResult & { pool: string; volume: string }> {
    const t = await this.streamTarget(volume, opts.pool);
    return { ...(await downloadVolume(this.nats.nc, t, file, opts)), pool: t.pool, volume: t.volume };
  }

  // ---- End of storage ---------------------------------------------------------------------------

  /** A running guest's serial console on its host (virsh console): bytes both ways until closed. */
  console(domain: Pick<DomainView, 'id' | 'hostId'>, opts: ConsoleOptions): Promise<ConsoleSession> {
    return openConsole(this.nats, { hostId: domain.hostId, domainId: domain.id }, opts);
  }

  async close(): Promise<void> {
    if (this.owned) await this.nats.close();
  }
}

const collect = async <T>(pages: AsyncGenerator<T[]>): Promise<T[]> => {
  const all: T[] = [];
  for await (const page of pages) all.push(...page);
  return all;
};

/** Nobody subscribed to the subject (the transport's error, or the rpc layer's translation of it). */
const noResponders = (e: unknown): boolean =>
  isNoResponders(e) ||
  (e instanceof Error && (e as { code?: string }).code === 'operation-failed' && e.message.startsWith('no service answers'));

/** virsh's --live, --config, --current and --persistent for the device verbs. */
export interface DeviceScope {
  live?: boolean;
  config?: boolean;
  current?: boolean;
  persistent?: boolean;
}

const scopeOf = (o: DeviceScope): DeviceScope => ({
  ...(o.live ? { live: true } : {}),
  ...(o.config ? { config: true } : {}),
  ...(o.current ? { current: true } : {}),
  ...(o.persistent ? { persistent: true } : {}),
});
