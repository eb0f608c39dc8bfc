import {
  DEFAULT_TIMEOUT_MS,
  type AttachInterfaceRequest,
  type AutostartDomainRequest,
  type UndefineDomainRequest,
  type CreateDomainRequest,
  type SetMetadataRequest,
  type RenameDomainRequest,
  type DefineDomainRequest,
  type DetachInterfaceRequest,
  type DomainCommand,
  type DomainOpRequest,
  type RestoreDomainRequest,
  type SaveDomainRequest,
} from '../../contracts/domain/commands.ts';
import { checkRestoreFlags, type SaveImageReply } from '../../contracts/domain/save-restore.ts';
import { decide, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { SetResourcesRequest } from '../../contracts/domain/resources.ts';
import type { BlockResizeRequest, InjectNmiRequest, ScreenshotRequest, SendKeyRequest } from '../../contracts/domain/guest-actions.ts';
import { DomainDefinition, InterfaceModel } from '../../contracts/domain/definition.ts';
import type { DomainEventBody, LifecycleOp } from '../../contracts/domain/events.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { fromZodError, isVirtError, virtError } from '../../contracts/errors.ts';
import { canonicalIdentity, isUuid, seededRandomBytes, uuidFromSeed } from '../../contracts/ids.ts';
import type { NameClaims } from './name-claims.ts';
import { parsePool } from './parse-pool.ts';
import type { Outcome, Repository } from './repository.ts';
import type { Scheduler } from './scheduler.ts';

export interface Accepted extends Record<string, unknown> {
  domainId: string;
  name: string;
  version: number;
  commandId: string;
  duplicate?: boolean;
  taskId?: string;
}

/** The command side of the domain aggregate: resolve references, place, decide, append. */
export class DomainCommands {
  constructor(
    private readonly repo: Repository<DomainAggregate, DomainEventBody>,
    private readonly names: NameClaims,
    private readonly scheduler: Scheduler,
    /** What an image on a host holds, asked of that host's agent (hostread.<host>.save-image). */
    private readonly readImage: (hostId: string, file: string) => Promise<SaveImageReply> = () => Promise.reject(virtError('operation-unsupported', 'no host can be asked about saved images')),
  ) {
    parsePool().warm();
  }

  /** Reads a domain fresh from the log, for the name claim protocol. */
  private readonly load = (uuid: string) => this.repo.load(uuid);

  private async definitionFrom(req: DefineDomainRequest | CreateDomainRequest, meta: CommandMeta): Promise<DomainDefinition> {
    // Without a uuid, derive one from the command id: a retried define then names the same domain
    // (and generated MAC addresses come out the same too). XML is parsed off the request loop.
    if (req.xml !== undefined) return canonicalIdentity(await parsePool().parse('domain', req.xml, meta.commandId));
    const raw = req.definition;
    const withUuid = raw && typeof raw === 'object' && !('uuid' in raw) ? { ...raw, uuid: uuidFromSeed(meta.commandId) } : raw;
    return canonicalIdentity(await parsePool().validate('domain', withUuid));
  }

  async define(req: DefineDomainRequest, meta: CommandMeta): Promise<Accepted> {
    const def = await this.definitionFrom(req, meta);
    const existing = await this.repo.load(def.uuid);
    // Placement is chosen up front; the decider keeps an existing domain where it is.
    let hostId: string;
    try {
      // A redefinition stays where it is, so it need not wait for a host in doubt.
      hostId = existing.exists ? this.scheduler.pick(def.type, req.hostId) : await this.scheduler.place(def.type, req.hostId);
    } catch (e) {
      // Redefining a domain whose host is away is fine: it stays where it is.
      if (!existing.exists) throw e;
      hostId = existing.hostId;
    }
    const command = (claimSeq: number): DomainCommand => ({ type: 'define', definition: def, hostId, claimSeq });
    // Decided once before the name claim, so a define refused for what it asks stores nothing.
    decide(command(Number.MAX_SAFE_INTEGER), existing, meta.now);
    const claimSeq = await this.names.claim(def.name, def.uuid, meta, this.load, { likelyFree: !existing.exists && existing.version === 0 });
    const out = await this.repo.execute(def.uuid, meta, (s) => decide(command(claimSeq), s, meta.now));
    this.names.remember(def.name, def.uuid);
    return this.accepted(out, meta);
  }

  /** virsh create: the name is claimed as for define, and the start is recorded in the same commit. */
  async create(req: CreateDomainRequest, meta: CommandMeta): Promise<Accepted> {
    const def = await this.definitionFrom(req, meta);
    const existing = await this.repo.load(def.uuid);
    const hostId = existing.exists ? existing.hostId : await this.scheduler.place(def.type, req.hostId);
    const timeoutMs = req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS.start;
    const command = (claimSeq: number): DomainCommand => ({ type: 'create', definition: def, hostId, claimSeq, paused: req.paused ?? false, timeoutMs });
    decide(command(Number.MAX_SAFE_INTEGER), existing, meta.now);
    const claimSeq = await this.names.claim(def.name, def.uuid, meta, this.load);
    const out = await this.repo.execute(def.uuid, meta, (s) => decide(command(claimSeq), s, meta.now));
    this.names.remember(def.name, def.uuid);
    return this.accepted(out, meta);
  }

  /** The uuid a reference names, and whether the answer came from memory. */
  private async resolve(ref: string): Promise<{ id: string; remembered: boolean }> {
    if (isUuid(ref)) return { id: ref.toLowerCase(), remembered: false };
    const found = await this.names.uuidOf(ref);
    if (!found) throw virtError('no-domain', `Domain not found: no domain with matching name '${ref}'`);
    return { id: found.uuid, remembered: found.remembered };
  }

  async undefine(req: UndefineDomainRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'undefine', ...(req.managedSave ? { managedSave: true } : {}), ...(req.snapshotsMetadata ? { snapshotsMetadata: true } : {}) });
  }

  /** virsh reset and managedsave: host operations that no power verb asks for. */
  async hostOperation(op: 'reset' | 'managedsave', req: DomainOpRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: op, timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS[op] });
  }

  /** virsh send-key: recorded with the keys asked for, then pressed by the domain's host (guest-actions.ts). */
  async sendKey(req: SendKeyRequest, meta: CommandMeta): Promise<Accepted> {
    const keys = { codeset: req.codeset, keycodes: req.keycodes, ...(req.holdtimeMs ? { holdtimeMs: req.holdtimeMs } : {}) };
    return this.run(req.domain, meta, { type: 'send-key', keys, timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS['send-key'] });
  }

  /** virsh inject-nmi: recorded, then sent by the domain's host. */
  async injectNmi(req: InjectNmiRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'inject-nmi', timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS['inject-nmi'] });
  }

  /** virsh blockresize: recorded with the disk and its new size, then resized under the guest by its host. */
  async blockResize(req: BlockResizeRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'block-resize', path: req.path, bytes: req.bytes, timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS['block-resize'] });
  }

  /** virsh screenshot: recorded (who looked at which guest's screen), then taken by its host. */
  async screenshot(req: ScreenshotRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'screenshot', screen: req.screen, timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS.screenshot });
  }

  /** virsh save: to a file on the domain's host, which checks the path against its image directories. */
  async save(req: SaveDomainRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'save', file: req.file, timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS.save });
  }

  /**
   * virsh restore: the image's own definition, read on the host that holds it, names the domain;
   * it is claimed and started from the image as a create is, in one commit.
   */
  async restore(req: RestoreDomainRequest, meta: CommandMeta): Promise<Accepted> {
    const { hostId, image } = await this.findImage(req.file, req.hostId);
    const def = canonicalIdentity(await parsePool().parse('domain', image.xml, meta.commandId));
    checkRestoreFlags(def.type, req);
    // The host must run domains of this type; the image says which.
    this.scheduler.pick(def.type, hostId);
    const existing = await this.repo.load(def.uuid);
    const paused = req.paused ? true : req.running ? false : !image.running;
    const timeoutMs = req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS.start;
    const command = (claimSeq: number): DomainCommand => ({ type: 'restore', definition: def, hostId, claimSeq, file: req.file, paused, timeoutMs });
    decide(command(Number.MAX_SAFE_INTEGER), existing, meta.now);
    const claimSeq = await this.names.claim(def.name, def.uuid, meta, this.load);
    const out = await this.repo.execute(def.uuid, meta, (s) => decide(command(claimSeq), s, meta.now));
    this.names.remember(def.name, def.uuid);
    return this.accepted(out, meta);
  }

  /**
   * The host named, or else the live host that holds the file: each is asked, as the file is only
   * where it was written. More than one (or none that answers) needs the operator to say which.
   */
  private async findImage(file: string, hostId?: string): Promise<{ hostId: string; image: SaveImageReply }> {
    if (hostId) {
      if (!this.scheduler.known(hostId)) throw virtError('no-host', `no host with id '${hostId}' has registered`);
      return { hostId, image: await this.readImage(hostId, file) };
    }
    const hosts = this.scheduler.alive().map((h) => h.hostId);
    if (hosts.length === 1) return { hostId: hosts[0]!, image: await this.readImage(hosts[0]!, file) };
    const answers = await Promise.allSettled(hosts.map(async (h) => ({ hostId: h, image: await this.readImage(h, file) })));
    const found = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    if (found.length === 1) return found[0]!;
    if (found.length > 1) throw virtError('invalid-arg', `'${file}' is on hosts ${found.map((f) => f.hostId).join(', ')}: name one with --host`, { hosts: found.map((f) => f.hostId) });
    const first = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected');
    if (first && isVirtError(first.reason) && first.reason.code !== 'timeout') throw first.reason;
    throw virtError('operation-failed', `cannot read domain image '${file}': No such file or directory`, { file, raw: true });
  }

  async removeManagedSave(req: DomainOpRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'managedsave-remove' });
  }

  async setAutostart(req: AutostartDomainRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'set-autostart', autostart: !req.disable });
  }

  /**
   * virsh domrename: the new name is claimed as a define claims it, so two renames or a rename and a
   * define racing for one name cannot both win; the old name is free once the rename lands.
   */
  async rename(req: RenameDomainRequest, meta: CommandMeta): Promise<Accepted> {
    const stale = (s: DomainAggregate) => !isUuid(req.domain) && (!s.exists || s.name !== req.domain);
    let { id, remembered } = await this.resolve(req.domain);
    let existing = await this.repo.load(id);
    if (stale(existing) && remembered) {
      // Only an answer from memory can be stale: look the name up afresh, once.
      this.names.forget(req.domain);
      ({ id, remembered } = await this.resolve(req.domain));
      existing = await this.repo.load(id);
    }
    if (stale(existing)) throw virtError('no-domain', `Domain not found: no domain with matching name '${req.domain}'`);
    const own = await this.names.holder(existing.name);
    const releaseClaimSeq = own?.uuid === id ? own.seq : undefined;
    const command = (claimSeq: number): DomainCommand => ({ type: 'rename', newName: req.newName, claimSeq, ...(releaseClaimSeq !== undefined ? { releaseClaimSeq } : {}) });
    decide(command(Number.MAX_SAFE_INTEGER), existing, meta.now);
    const claimSeq = await this.names.claim(req.newName, id, meta, this.load).catch((e: unknown) => {
      // libvirt's words for a name another domain holds.
      if (isVirtError(e) && e.code === 'operation-failed') throw virtError('operation-invalid', `domain with name '${req.newName}' already exists`);
      throw e;
    });
    const out = await this.repo.execute(id, meta, (s) => decide(command(claimSeq), s, meta.now));
    this.names.remember(req.newName, id);
    this.names.forget(existing.name);
    return this.accepted(out, meta);
  }

  /** virsh desc: a description or title set in the log, on the live or persistent definition. */
  async setMetadata(req: SetMetadataRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, {
      type: 'set-metadata',
      field: req.field,
      value: req.value,
      live: req.live ?? false,
      config: req.config ?? false,
      ...(req.uri !== undefined ? { uri: req.uri } : {}),
      ...(req.key !== undefined ? { key: req.key } : {}),
    });
  }

  /** virsh setmem, setmaxmem, setvcpus: a change of memory or vCPU counts, checked and recorded (resources.ts). */
  async setResources(req: SetResourcesRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, { type: 'set-resources', change: req.change, live: req.live ?? false, config: req.config ?? false });
  }

  async operation(op: LifecycleOp, req: DomainOpRequest & { paused?: boolean }, meta: CommandMeta): Promise<Accepted> {
    const timeoutMs = req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS[op];
    const cmd: DomainCommand =
      op === 'start'
        ? { type: 'start', paused: req.paused ?? false, timeoutMs }
        : op === 'destroy' && req.force
          ? { type: 'destroy', timeoutMs, force: true }
          : { type: op, timeoutMs };
    return this.run(req.domain, meta, cmd);
  }

  async attachInterface(req: AttachInterfaceRequest, meta: CommandMeta): Promise<Accepted> {
    const parsed = InterfaceModel.safeParse(req.iface);
    if (!parsed.success) throw fromZodError(parsed.error);
    // libvirt gives an interface without a MAC one in 52:54:00; seeded, so a retry picks the same.
    const b = seededRandomBytes(meta.commandId)(3);
    const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
    const iface = { ...parsed.data, mac: parsed.data.mac ?? `52:54:00:${hex}` };
    return this.run(req.domain, meta, {
      type: 'attach-interface',
      iface,
      live: req.live ?? false,
      config: req.config ?? false,
      timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS['attach-interface'],
    });
  }

  async detachInterface(req: DetachInterfaceRequest, meta: CommandMeta): Promise<Accepted> {
    return this.run(req.domain, meta, {
      type: 'detach-interface',
      mac: req.mac,
      live: req.live ?? false,
      config: req.config ?? false,
      timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS['detach-interface'],
    });
  }

  /** Applies a command to a domain the caller names by uuid or name. */
  async run(ref: string, meta: CommandMeta, cmd: DomainCommand): Promise<Accepted> {
    const byName = !isUuid(ref);
    for (let attempt = 0; ; attempt++) {
      const { id, remembered } = await this.resolve(ref);
      try {
        return this.accepted(
          await this.repo.execute(id, meta, (s) => {
            // A name may have moved to another domain since it was looked up.
            if (byName && (!s.exists || s.name !== ref)) throw virtError('no-domain', `Domain not found: no domain with matching name '${ref}'`);
            return decide(cmd, s, meta.now);
          }),
          meta,
        );
      } catch (e) {
        if (!(isVirtError(e) && e.code === 'no-domain' && byName)) throw e;
        // Only an answer from memory can be stale; a fresh look-up's answer is final.
        if (attempt > 0 || !remembered) throw e;
        this.names.forget(ref);
      }
    }
  }

  private accepted(out: Outcome<DomainAggregate>, meta: CommandMeta): Accepted {
    return {
      domainId: out.state.id,
      name: out.state.name,
      version: out.version,
      commandId: meta.commandId,
      ...(out.duplicate ? { duplicate: true } : {}),
      // On a duplicate the task is whatever the first attempt started, still pending or not.
      ...(taskIdOf(out) ? { taskId: taskIdOf(out) } : {}),
    };
  }
}

const taskIdOf = (out: Outcome<DomainAggregate>): string | undefined =>
  out.events.find((e) => e.type.endsWith('Requested'))?.id ??
  (out.duplicate && out.state.pending && out.state.version === out.version ? out.state.pending.taskId : undefined);
