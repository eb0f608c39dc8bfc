import { DeadlineKeeper } from './deadlines.ts';
import type { Subscription } from '@nats-io/transport-node';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError, virtError } from '../../contracts/errors.ts';
import { canonicalIdentity, isUuid, uuidFromSeed } from '../../contracts/ids.ts';
import {
  CreateVolumeRequest,
  DEFAULT_STORAGE_TIMEOUT_MS,
  DefinePoolRequest,
  CloneVolumeRequest,
  CreatePoolRequest,
  DeleteVolumeRequest,
  PoolOpRequest,
  ResizeVolumeRequest,
  StartPoolRequest,
  type StorageCommand,
} from '../../contracts/storage/commands.ts';
import {
  checkPoolDefinition,
  decide,
  evolve,
  initialPoolState,
  inFlight,
  noPool,
  noVolume,
  poolCommandVersion,
  type PoolAggregate,
} from '../../contracts/storage/decider.ts';
import type { StoragePoolDefinition, StorageVolumeDefinition } from '../../contracts/storage/definition.ts';
import { STORAGE_INTENTS, type StorageEventBody, type StorageOp } from '../../contracts/storage/events.ts';
import { StorageClaimRequest, StorageReportRequest, storageSubjects, type StorageTask } from '../../contracts/storage/tasks.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { CommandApi } from './command-api.ts';
import type { EventStore } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { NameClaims } from './name-claims.ts';
import { parsePool } from './parse-pool.ts';
import { Repository, type AggregateKind, type Outcome } from './repository.ts';
import type { Scheduler } from './scheduler.ts';
import { StorageDispatcher } from './storage-dispatcher.ts';

export const poolKind: AggregateKind<PoolAggregate, StorageEventBody> = {
  type: 'pool',
  initial: initialPoolState,
  evolve,
  appliedVersion: poolCommandVersion,
};

export interface StorageAccepted extends Record<string, unknown> {
  poolId: string;
  pool: string;
  volume?: string;
  version: number;
  commandId: string;
  duplicate?: boolean;
  taskId?: string;
}

const timeoutOf = (op: StorageOp, req: { timeoutSeconds?: number | undefined }) =>
  req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : DEFAULT_STORAGE_TIMEOUT_MS[op];

const isIntent = (type: string) => type in STORAGE_INTENTS;

/** The command side of storage pools and their volumes: resolve, place, decide, append. */
export class StorageCommands {

  constructor(
    private readonly repo: Repository<PoolAggregate, StorageEventBody>,
    private readonly store: EventStore,
    private readonly names: NameClaims,
    private readonly hosts: Scheduler,
  ) {
    parsePool().warm();
  }

  /** Reads a pool fresh from the log, for the name claim protocol. */
  private readonly load = (uuid: string) => this.repo.load(uuid);

  private async definitionFrom(req: DefinePoolRequest | CreatePoolRequest, meta: CommandMeta): Promise<StoragePoolDefinition> {
    // Without a uuid, derive one from the command id: a retried define names the same pool. XML is
    // parsed off the request loop.
    if (req.xml !== undefined) return canonicalIdentity(await parsePool().parse('pool', req.xml, meta.commandId));
    const raw = req.definition;
    const withUuid = raw && typeof raw === 'object' && !Array.isArray(raw) && !('uuid' in raw) ? { ...raw, uuid: uuidFromSeed(meta.commandId) } : raw;
    return canonicalIdentity(await parsePool().validate('pool', withUuid));
  }

  /** A pool lives on one host: the one asked for, or the only one up. */
  private async place(name: string, requested?: string): Promise<string> {
    if (requested) {
      if (!this.hosts.known(requested)) throw virtError('no-host', `no host with id '${requested}' has registered`);
      return requested;
    }
    // A host whose lease is late but not revoked may be the only one: wait for it as domains do.
    const alive = (await this.hosts.settled(() => true)).map((h) => h.hostId).sort();
    if (alive.length === 1) return alive[0]!;
    if (alive.length === 0) throw virtError('no-host', `no live host to place storage pool '${name}' on`);
    throw virtError('invalid-arg', `storage pool '${name}' lives on one host: give a hostId (live hosts: ${alive.join(', ')})`);
  }

  define = (req: DefinePoolRequest, meta: CommandMeta) =>
    this.defineOrCreate(req, meta, (definition, hostId, claimSeq) => ({ type: 'define', definition, hostId, claimSeq }));

  /** `virsh pool-create`: define (transiently, for a new pool) and start in one command. */
  create = (req: CreatePoolRequest, meta: CommandMeta) =>
    this.defineOrCreate(req, meta, (definition, hostId, claimSeq) => ({
      type: 'create',
      definition,
      hostId,
      claimSeq,
      build: req.build ?? false,
      timeoutMs: timeoutOf('pool-start', req),
    }));

  private async defineOrCreate(
    req: DefinePoolRequest | CreatePoolRequest,
    meta: CommandMeta,
    commandFor: (def: StoragePoolDefinition, hostId: string, claimSeq: number) => StorageCommand,
  ): Promise<StorageAccepted> {
    const def = await this.definitionFrom(req, meta);
    checkPoolDefinition(def);
    const existing = await this.repo.load(def.uuid);
    // A redefinition keeps the pool where it is; the decider ignores the host then.
    const hostId = existing.exists ? existing.hostId : await this.place(def.name, req.hostId);
    const command = (claimSeq: number): StorageCommand => commandFor(def, hostId, claimSeq);
    // Decided once before the name claim, so a refused define stores nothing, not even a claim.
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
    if (!found) throw noPool(ref);
    return { id: found.uuid, remembered: found.remembered };
  }

  undefine = (req: PoolOpRequest, meta: CommandMeta) => this.run(req.pool, meta, () => ({ type: 'undefine' }));
  build = (req: PoolOpRequest, meta: CommandMeta) => this.run(req.pool, meta, () => ({ type: 'build', timeoutMs: timeoutOf('pool-build', req) }));
  start = (req: StartPoolRequest, meta: CommandMeta) =>
    this.run(req.pool, meta, () => ({ type: 'start', build: req.build ?? false, timeoutMs: timeoutOf('pool-start', req) }));
  destroy = (req: PoolOpRequest, meta: CommandMeta) => this.run(req.pool, meta, () => ({ type: 'destroy' }));

  async volCreate(req: CreateVolumeRequest, meta: CommandMeta): Promise<StorageAccepted> {
    let volume: StorageVolumeDefinition;
    if (req.xml !== undefined) volume = await parsePool().parse('volume', req.xml);
    else volume = await parsePool().validate('volume', req.definition);
    const accepted = await this.run(req.pool, meta, () => ({ type: 'vol-create', volume, timeoutMs: timeoutOf('vol-create', req) }));
    return { ...accepted, volume: volume.name };
  }

  volDelete = (req: DeleteVolumeRequest, meta: CommandMeta) => this.onVolume(req, meta, (name) => ({ type: 'vol-delete', name, timeoutMs: timeoutOf('vol-delete', req) }));

  refresh = (req: PoolOpRequest, meta: CommandMeta) => this.run(req.pool, meta, () => ({ type: 'refresh', timeoutMs: timeoutOf('pool-refresh', req) }));
  /** `virsh pool-delete`: the pool's directory, not its definition. */
  deletePool = (req: PoolOpRequest, meta: CommandMeta) => this.run(req.pool, meta, () => ({ type: 'delete', timeoutMs: timeoutOf('pool-delete', req) }));

  volResize = (req: ResizeVolumeRequest, meta: CommandMeta) =>
    this.onVolume(req, meta, (name) => ({ type: 'vol-resize', name, capacityBytes: req.capacityBytes, delta: req.delta ?? false, shrink: req.shrink ?? false, timeoutMs: timeoutOf('vol-resize', req) }));
  volWipe = (req: DeleteVolumeRequest, meta: CommandMeta) => this.onVolume(req, meta, (name) => ({ type: 'vol-wipe', name, timeoutMs: timeoutOf('vol-wipe', req) }));

  async volClone(req: CloneVolumeRequest, meta: CommandMeta): Promise<StorageAccepted> {
    const accepted = await this.onVolume(req, meta, (name) => ({ type: 'vol-clone', name, newName: req.newName, timeoutMs: timeoutOf('vol-clone', req) }));
    return { ...accepted, volume: req.newName };
  }

  /** A command on one volume, named by its name or (as virsh also takes) its key, the path. */
  private async onVolume(req: DeleteVolumeRequest, meta: CommandMeta, command: (name: string) => StorageCommand): Promise<StorageAccepted> {
    let name = req.volume;
    const accepted = await this.run(req.pool, meta, (s) => {
      if (req.volume.startsWith('/')) name = s.volumes.find((v) => v.path === req.volume)?.name ?? '';
      if (!name) throw noVolume(req.volume);
      return command(name);
    });
    return { ...accepted, volume: name };
  }

  /** Applies a command to a pool the caller names by uuid or name. */
  async run(ref: string, meta: CommandMeta, command: (s: PoolAggregate) => StorageCommand): Promise<StorageAccepted> {
    const byName = !isUuid(ref);
    for (let attempt = 0; ; attempt++) {
      const { id, remembered } = await this.resolve(ref);
      try {
        const out = await this.repo.execute(id, meta, (s) => {
          // A name may have moved to another pool since it was looked up.
          if (byName && (!s.exists || s.name !== ref)) throw noPool(ref);
          return decide(command(s), s, meta.now);
        });
        return await this.accepted(out, meta);
      } catch (e) {
        if (!(isVirtError(e) && e.code === 'no-storage-pool' && byName)) throw e;
        // Only an answer from memory can be stale; a fresh look-up's answer is final.
        if (attempt > 0 || !remembered) throw e;
        this.names.forget(ref);
      }
    }
  }

  /** May the host run this task now? Only while it is still in flight on a pool the host owns. */
  async claim(subjectHost: string, req: StorageClaimRequest, now: Date) {
    // Read through to the log: a cached state could let a superseded task run.
    const s = await this.repo.load(req.poolId);
    const refuse = (reason: string) => ({ proceed: false, reason });
    if (!s.exists) return refuse('pool no longer exists');
    if (s.hostId !== subjectHost) return refuse(`pool lives on host '${s.hostId}'`);
    const p = inFlight(s).find((t) => t.taskId === req.taskId);
    if (!p) return refuse('task is no longer in flight');
    if (Date.parse(p.deadline) <= now.getTime()) return refuse('task deadline has passed');
    return { proceed: true };
  }

  /** Hosts never write events: a report is recorded through the decider, from the pool's own host only. */
  async report(subjectHost: string, req: StorageReportRequest, meta: CommandMeta) {
    // Ownership is checked against the state the append is conditioned on: no window between the two.
    const out = await this.repo.execute(req.poolId, meta, (state) => {
      if (!state.exists) return [];
      if (state.hostId !== subjectHost) throw virtError('unauthorized', `host '${subjectHost}' does not own storage pool ${req.poolId}`);
      const cmd: StorageCommand = req.kind === 'completed' ? { type: 'complete', taskId: req.taskId, result: req.result } : { type: 'fail', taskId: req.taskId, error: req.error };
      return decide(cmd, state, meta.now);
    });
    return { recorded: out.events.length > 0, version: out.version };
  }

  private async accepted(out: Outcome<PoolAggregate>, meta: CommandMeta): Promise<StorageAccepted> {
    let taskId = out.events.find((e) => isIntent(e.type))?.id;
    if (out.duplicate && !taskId) {
      // A retry: the task is whatever the first attempt started, found in the commit it stored.
      const [commit] = await this.store.read(subjects.aggregate('pool', out.state.id), out.version - 1, out.version + 1);
      taskId = commit?.events.find((e) => isIntent(e.type))?.id;
    }
    return {
      poolId: out.state.id,
      pool: out.state.name,
      version: out.version,
      commandId: meta.commandId,
      ...(out.duplicate ? { duplicate: true } : {}),
      ...(taskId ? { taskId } : {}),
    };
  }
}

/** Request handlers, the storage dispatcher and deadline keeping, started and stopped as one. */
export class StorageService {
  private subs: Subscription[] = [];
  private dispatcher: StorageDispatcher | null = null;
  private deadlines: DeadlineKeeper | null = null;
  readonly commands: StorageCommands;

  private constructor(
    private readonly n: Nats,
    store: EventStore,
    hosts: Scheduler,
    private readonly log: Logger,
  ) {
    this.commands = new StorageCommands(new Repository(store, poolKind), store, new NameClaims(store, 'pool'), hosts);
  }

  static async start(n: Nats, store: EventStore, hosts: Scheduler, log: Logger, api: CommandApi, opts: { dispatcher: boolean }): Promise<StorageService> {
    const svc = new StorageService(n, store, hosts, log);
    await svc.begin(api, opts.dispatcher);
    return svc;
  }

  private async begin(api: CommandApi, dispatch: boolean): Promise<void> {
    const { nc } = this.n;
    const q = QUEUES.command;
    const c = this.commands;
    const log = this.log;
    const hostOf = (subject: string) => subject.split('.')[1] ?? '';
    this.subs.push(
      ...api.serve('pool', 'define', DefinePoolRequest, (r, meta) => c.define(r, meta)),
      ...api.serve('pool', 'undefine', PoolOpRequest, (r, meta) => c.undefine(r, meta)),
      ...api.serve('pool', 'build', PoolOpRequest, (r, meta) => c.build(r, meta)),
      ...api.serve('pool', 'start', StartPoolRequest, (r, meta) => c.start(r, meta)),
      ...api.serve('pool', 'destroy', PoolOpRequest, (r, meta) => c.destroy(r, meta)),
      ...api.serve('vol', 'create', CreateVolumeRequest, (r, meta) => c.volCreate(r, meta)),
      ...api.serve('vol', 'delete', DeleteVolumeRequest, (r, meta) => c.volDelete(r, meta)),
      ...api.serve('pool', 'create', CreatePoolRequest, (r, meta) => c.create(r, meta)),
      ...api.serve('pool', 'refresh', PoolOpRequest, (r, meta) => c.refresh(r, meta)),
      ...api.serve('pool', 'delete', PoolOpRequest, (r, meta) => c.deletePool(r, meta)),
      ...api.serve('vol', 'resize', ResizeVolumeRequest, (r, meta) => c.volResize(r, meta)),
      ...api.serve('vol', 'wipe', DeleteVolumeRequest, (r, meta) => c.volWipe(r, meta)),
      ...api.serve('vol', 'clone', CloneVolumeRequest, (r, meta) => c.volClone(r, meta)),
      serve(nc, storageSubjects.claim('*'), q, StorageClaimRequest, (r, m) => c.claim(hostOf(m.subject), r, new Date()), log),
      serve(
        nc,
        storageSubjects.report('*'),
        q,
        StorageReportRequest,
        (r, m, tp) => c.report(hostOf(m.subject), r, api.metaFrom({ commandId: r.reportId, actor: `host:${hostOf(m.subject)}` }, tp)),
        log,
      ),
    );
    this.deadlines = new DeadlineKeeper(this.n, 'ev.pool.>', (id, taskId, meta) => c.run(id, meta, () => ({ type: 'expire', taskId })), log.child('deadlines'));
    await this.deadlines.start();
    if (dispatch) {
      this.dispatcher = new StorageDispatcher(this.n, log.child('dispatcher'));
      await this.dispatcher.start();
    }
  }


  async stop(): Promise<void> {
    for (const s of this.subs) await s.drain().catch(() => undefined);
    this.subs = [];
    await this.dispatcher?.stop();
    await this.deadlines?.stop();
  }
}
