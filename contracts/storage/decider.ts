import type { Envelope } from '../envelope.ts';
import { applyRevocation, requireLiveClaim, type ClaimFence } from '../name-claim.ts';
import { virtError, type VirtErrorBody } from '../errors.ts';
import { formatVolumeXml } from '../xml/index.ts';
import type { StorageCommand, StorageResult } from './commands.ts';
import type { StoragePoolDefinition, StorageVolumeDefinition } from './definition.ts';
import { decidePoolFlags, evolvePoolFlags } from './autostart.ts';
import { STORAGE_INTENTS, type PoolStats, type StorageEventBody, type StorageOp, type VolumeInfo } from './events.ts';
import { rememberCommand, versionOfCommand } from '../recent-commands.ts';

/**
 * The storage pool decider: pure, like the domain's. A pool lives on one host and holds its volumes,
 * so every volume operation is decided against the pool it belongs to (a volume needs an active pool,
 * a pool with volume work in flight cannot be stopped). Rules and messages follow libvirt's storage
 * driver (`storagePool*`, `storageVol*`).
 */

/** Pool types a virtplane host can build and start. */
export const SUPPORTED_POOL_TYPES = ['dir'] as const;
/** Volume formats a dir pool creates through qemu-img. */
export const VOLUME_FORMATS = ['raw', 'qcow2'] as const;

export interface StoragePending {
  op: StorageOp;
  /** The intent event's id, which is also the task id. */
  taskId: string;
  requestedAt: string;
  deadline: string;
  /** A clone's source volume, which may not go away while it is copied. */
  source?: string;
}

export interface VolumeEntry {
  name: string;
  /** Key and path alike: `<pool target path>/<name>`. */
  path: string;
  definition: StorageVolumeDefinition;
  /** What the host last saw of the file; null until the create is reported. */
  info: VolumeInfo | null;
  pending: StoragePending | null;
}

/** How a host operation ended, kept for a while so whoever waits on it can learn the result. */
export interface TaskOutcome {
  taskId: string;
  op: StorageOp;
  /** The volume, for volume operations. */
  name?: string;
  ok: boolean;
  error?: VirtErrorBody;
  at: string;
}

export interface PoolAggregate extends ClaimFence {
  exists: boolean;
  removed: boolean;
  id: string;
  name: string;
  definition: StoragePoolDefinition | null;
  /** A definition recorded while the pool was active: it takes effect when the pool stops. */
  nextDefinition: StoragePoolDefinition | null;
  /**
   * False for a pool made by pool-create: it is gone once it stops. States stored before pools could
   * be transient lack it, and are persistent: read it with `isPersistent`.
   */
  persistent?: boolean;
  hostId: string;
  active: boolean;
  /** virsh pool-autostart; absent when off (contracts/storage/autostart.ts). */
  autostart?: boolean;
  stats: PoolStats | null;
  /** Build or start in flight. */
  pending: StoragePending | null;
  volumes: VolumeEntry[];
  recentTasks: TaskOutcome[];
  version: number;
  recentCommands: Array<[string, number]>;
}

const RECENT_TASKS = 32;

export const initialPoolState = (id: string): PoolAggregate => ({
  exists: false,
  removed: false,
  id,
  name: '',
  definition: null,
  nextDefinition: null,
  persistent: false,
  hostId: '',
  active: false,
  stats: null,
  pending: null,
  volumes: [],
  recentTasks: [],
  version: 0,
  recentCommands: [],
  revokedClaimsUpTo: 0,
});

export const isPersistent = (s: PoolAggregate): boolean => s.persistent !== false;

export const poolCommandVersion = (s: PoolAggregate, commandId: string): number | undefined => versionOfCommand(s, commandId);

/** libvirt's virStoragePoolState names. */
export const poolStateName = (s: PoolAggregate): 'inactive' | 'building' | 'running' =>
  s.active ? 'running' : s.pending?.op === 'pool-build' ? 'building' : 'inactive';

/** Every operation in flight on the pool and its volumes. */
export const inFlight = (s: PoolAggregate): StoragePending[] => [
  ...(s.pending ? [s.pending] : []),
  ...s.volumes.flatMap((v) => (v.pending ? [v.pending] : [])),
];

/** A path as libvirt sanitizes it: no repeated or trailing slashes. */
export const cleanPath = (p: string): string => {
  const collapsed = p.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/$/, '') : collapsed;
};

export const poolTargetPath = (s: Pick<PoolAggregate, 'definition'>): string => cleanPath(s.definition?.target?.path ?? '');

export const volumePath = (s: Pick<PoolAggregate, 'definition'>, name: string): string => `${poolTargetPath(s)}/${name}`;

export const findVolume = (s: PoolAggregate, name: string): VolumeEntry | undefined => s.volumes.find((v) => v.name === name);

// ---------------------------------------------------------------------------------------------
// Errors, in libvirt's words

export const noPool = (ref: string, by: 'name' | 'uuid' = 'name') =>
  virtError('no-storage-pool', `no storage pool with matching ${by} '${ref}'`);
export const noVolume = (name: string) => virtError('no-storage-vol', `no storage vol with matching name '${name}'`);
const notActive = (s: PoolAggregate) => virtError('operation-invalid', `storage pool '${s.name}' is not active`);
const alreadyActive = (s: PoolAggregate) => virtError('operation-invalid', `storage pool '${s.name}' is already active`);
const stillActive = (s: PoolAggregate) => virtError('operation-invalid', `storage pool '${s.name}' is active`);
const asyncJobs = (s: PoolAggregate) => virtError('operation-invalid', `pool '${s.name}' has asynchronous jobs running.`, { inFlight: inFlight(s) });

const requirePool = (s: PoolAggregate) => {
  if (!s.exists) throw noPool(s.id, 'uuid');
};
const requireActive = (s: PoolAggregate) => {
  requirePool(s);
  if (!s.active) throw notActive(s);
};

// ---------------------------------------------------------------------------------------------
// Deadlines

const expired = (p: StoragePending, now: Date) => Date.parse(p.deadline) <= now.getTime();

const timeoutFailure = (p: StoragePending, name?: string): StorageEventBody => ({
  type: 'StorageOperationFailed',
  data: {
    op: p.op,
    taskId: p.taskId,
    ...(name !== undefined ? { name } : {}),
    error: { code: 'timeout', message: `operation '${p.op}' did not finish before its deadline ${p.deadline}` },
  },
});

/**
 * An operation past its deadline never blocks the pool: a command decided after it first records
 * the timeout, and is decided against the state that leaves.
 */
const settleExpired = (s: PoolAggregate, now: Date): { state: PoolAggregate; before: StorageEventBody[] } => {
  const before: StorageEventBody[] = [];
  if (s.pending && expired(s.pending, now)) before.push(timeoutFailure(s.pending));
  for (const v of s.volumes) if (v.pending && expired(v.pending, now)) before.push(timeoutFailure(v.pending, v.name));
  const state = before.reduce((acc, body) => evolve(acc, synthetic(body, s, now)), s);
  return { state, before };
};

const synthetic = (body: StorageEventBody, s: PoolAggregate, now: Date): Envelope<StorageEventBody> => ({
  ...body,
  id: '',
  aggregateType: 'pool',
  aggregateId: s.id,
  time: now.toISOString(),
  actor: '',
  commandId: '',
  causationId: '',
  correlationId: '',
  traceContext: {},
  schemaVersion: 1,
  version: s.version,
});

const deadline = (now: Date, timeoutMs: number) => new Date(now.getTime() + timeoutMs).toISOString();

// ---------------------------------------------------------------------------------------------
// decide

/** What a pool definition must satisfy; also checked before a name is claimed for it. */
export const checkPoolDefinition = (def: StoragePoolDefinition): void => {
  if (!(SUPPORTED_POOL_TYPES as readonly string[]).includes(def.type)) {
    throw virtError('operation-unsupported', `storage pool type '${def.type}' is not supported: virtplane hosts manage ${SUPPORTED_POOL_TYPES.map((t) => `'${t}'`).join(', ')} pools`);
  }
  const path = def.target?.path;
  if (!path || !path.startsWith('/')) {
    throw virtError('invalid-arg', `storage pool target path '${path ?? ''}' must be an absolute path`);
  }
};

/** The volume as it will be stored: key and path in the pool, format and backing store made explicit. */
const placeVolume = (s: PoolAggregate, v: StorageVolumeDefinition): StorageVolumeDefinition => {
  if (v.name === '.' || v.name === '..') throw virtError('invalid-arg', `invalid argument: volume name '${v.name}' cannot name a file in the pool`);
  const format = v.target?.format ?? 'raw';
  if (!(VOLUME_FORMATS as readonly string[]).includes(format)) {
    throw virtError('operation-unsupported', `storage volume format '${format}' is not supported: use ${VOLUME_FORMATS.join(' or ')}`);
  }
  if (v.type !== undefined && v.type !== 'file') {
    throw virtError('operation-unsupported', `volume type '${v.type}' is not supported in a 'dir' pool: use 'file'`);
  }
  if (v.backingStore && format === 'raw') throw virtError('operation-unsupported', 'backing storage not supported for raw volumes');
  const path = volumePath(s, v.name);
  let backingStore = v.backingStore;
  if (backingStore) {
    if (!backingStore.path) throw virtError('invalid-arg', `volume '${v.name}': <backingStore> needs a <path>`);
    // qemu-img resolves a relative backing file against the image's directory, which is the pool's.
    const backingPath = backingStore.path.startsWith('/') ? cleanPath(backingStore.path) : `${poolTargetPath(s)}/${cleanPath(backingStore.path)}`;
    if (backingPath === path) throw virtError('invalid-arg', `volume '${v.name}' cannot be its own backing store`);
    backingStore = { ...backingStore, path: backingPath };
  }
  // libvirt ignores a key or path given for a new volume: both follow from the pool and the name.
  const placed: StorageVolumeDefinition = {
    ...v,
    type: 'file',
    key: path,
    allocationBytes: v.allocationBytes ?? v.capacityBytes,
    target: { ...v.target, path, format },
    ...(backingStore ? { backingStore } : {}),
  };
  return v.xml !== undefined ? { ...placed, xml: formatVolumeXml(placed) } : placed;
};

const taskFor = (s: PoolAggregate, taskId: string): { pending: StoragePending; volume?: VolumeEntry } | null => {
  if (s.pending?.taskId === taskId) return { pending: s.pending };
  const volume = s.volumes.find((v) => v.pending?.taskId === taskId);
  return volume?.pending ? { pending: volume.pending, volume } : null;
};

const completion = (taskId: string, result: StorageResult, pending: StoragePending, volume?: VolumeEntry): StorageEventBody => {
  if (result.op !== pending.op) {
    throw virtError('invalid-arg', `the report for task ${taskId} is for '${result.op}' but the task is '${pending.op}'`);
  }
  const stats = (r: { stats?: PoolStats }) => (r.stats ? { stats: r.stats } : {});
  switch (result.op) {
    case 'pool-build':
      return { type: 'PoolBuilt', data: { taskId } };
    case 'pool-start':
      return { type: 'PoolStarted', data: { taskId, ...stats(result), volumes: result.volumes } };
    case 'vol-create':
      return { type: 'VolumeCreated', data: { taskId, name: volume!.name, info: result.info, ...stats(result) } };
    case 'vol-delete':
      return { type: 'VolumeDeleted', data: { taskId, name: volume!.name, ...stats(result) } };
    case 'pool-refresh':
      return { type: 'PoolRefreshed', data: { taskId, ...stats(result), volumes: result.volumes } };
    case 'pool-delete':
      return { type: 'PoolDeleted', data: { taskId } };
    case 'vol-resize':
      return { type: 'VolumeResized', data: { taskId, name: volume!.name, info: result.info, ...stats(result) } };
    case 'vol-wipe':
      return { type: 'VolumeWiped', data: { taskId, name: volume!.name, info: result.info, ...stats(result) } };
    case 'vol-clone':
      return { type: 'VolumeCloned', data: { taskId, name: volume!.name, info: result.info, ...stats(result) } };
  }
};

/** A volume some host work is on: libvirt's words for a volume being built or in use. */
const requireIdle = (s: PoolAggregate, v: VolumeEntry) => {
  if (v.pending?.op === 'vol-create' || v.pending?.op === 'vol-clone') throw virtError('operation-invalid', `volume '${v.name}' is still being allocated.`);
  if (v.pending) throw virtError('operation-invalid', `volume '${v.name}' has asynchronous jobs running.`, { inFlight: [v.pending] });
  const cloning = s.volumes.find((o) => o.pending?.op === 'vol-clone' && o.pending.source === v.name);
  if (cloning) throw virtError('operation-invalid', `volume '${v.name}' is still in use.`, { inFlight: [cloning.pending] });
};

/** The capacity a resize asks for, by libvirt's rules and in its order (storageVolResize). */
const resizeTarget = (s: PoolAggregate, v: VolumeEntry, cmd: { capacityBytes: number; delta: boolean; shrink: boolean }): number => {
  const current = v.info?.capacityBytes ?? v.definition.capacityBytes;
  const allocation = v.info?.allocationBytes ?? v.definition.allocationBytes ?? 0;
  const target = cmd.delta ? (cmd.shrink ? current - Math.min(cmd.capacityBytes, current) : current + cmd.capacityBytes) : cmd.capacityBytes;
  if (target < allocation) throw virtError('invalid-arg', "invalid argument: can't shrink capacity below existing allocation");
  if (target < current && !cmd.shrink) {
    throw virtError('invalid-arg', "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified");
  }
  if (s.stats && target - current > s.stats.availableBytes) throw virtError('operation-failed', 'Not enough space left in storage pool');
  return target;
};

export const decide = (cmd: StorageCommand, s0: PoolAggregate, now: Date): StorageEventBody[] => {
  switch (cmd.type) {
    case 'complete':
    case 'fail': {
      requirePool(s0);
      const t = taskFor(s0, cmd.taskId);
      // A stale or repeated report: the operation was already recorded, or given up at its deadline.
      if (!t) return [];
      if (cmd.type === 'complete') return [completion(cmd.taskId, cmd.result, t.pending, t.volume)];
      return [
        {
          type: 'StorageOperationFailed',
          data: { op: t.pending.op, taskId: cmd.taskId, ...(t.volume ? { name: t.volume.name } : {}), error: cmd.error },
        },
      ];
    }
    case 'expire': {
      if (!s0.exists) return [];
      const t = taskFor(s0, cmd.taskId);
      return t && expired(t.pending, now) ? [timeoutFailure(t.pending, t.volume?.name)] : [];
    }
    default:
      break;
  }

  const { state: s, before } = settleExpired(s0, now);
  const decided = (events: StorageEventBody[]) => [...before, ...events];
  switch (cmd.type) {
    case 'define': {
      if (s.exists && s.name !== cmd.definition.name) {
        throw virtError('operation-failed', `pool '${s.name}' is already defined with uuid ${s.id}`);
      }
      requireLiveClaim(s, cmd.claimSeq, 'pool', cmd.definition.name);
      checkPoolDefinition(cmd.definition);
      return decided([{ type: 'PoolDefined', data: { definition: cmd.definition, hostId: s.exists ? s.hostId : cmd.hostId, added: !s.exists } }]);
    }
    case 'create': {
      if (s.exists && s.name !== cmd.definition.name) {
        throw virtError('operation-failed', `pool '${s.name}' is already defined with uuid ${s.id}`);
      }
      if (s.exists && s.active) throw alreadyActive(s);
      if (s.exists && s.pending) throw asyncJobs(s);
      requireLiveClaim(s, cmd.claimSeq, 'pool', cmd.definition.name);
      checkPoolDefinition(cmd.definition);
      const hostId = s.exists ? s.hostId : cmd.hostId;
      const target = { path: cleanPath(cmd.definition.target?.path ?? ''), ...(cmd.definition.target?.permissions ? { permissions: cmd.definition.target.permissions } : {}) };
      return decided([
        { type: 'PoolCreated', data: { definition: cmd.definition, hostId } },
        { type: 'PoolStartRequested', data: { hostId, deadline: deadline(now, cmd.timeoutMs), target, build: cmd.build } },
      ]);
    }
    case 'undefine':
      requirePool(s);
      if (s.active) throw stillActive(s);
      if (inFlight(s).length > 0) throw asyncJobs(s);
      return decided([{ type: 'PoolUndefined', data: {} }]);
    case 'build':
    case 'start': {
      requirePool(s);
      if (s.active) throw alreadyActive(s);
      if (s.pending) throw asyncJobs(s);
      const target = { path: poolTargetPath(s), ...(s.definition?.target?.permissions ? { permissions: s.definition.target.permissions } : {}) };
      const intent = { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), target };
      return decided([
        cmd.type === 'build'
          ? { type: 'PoolBuildRequested', data: intent }
          : { type: 'PoolStartRequested', data: { ...intent, build: cmd.build } },
      ]);
    }
    case 'destroy':
      requireActive(s);
      if (inFlight(s).length > 0) throw asyncJobs(s);
      return decided([{ type: 'PoolDestroyed', data: {} }]);
    case 'set-autostart':
      requirePool(s);
      return decided(decidePoolFlags(cmd, s, isPersistent(s), () => []));
    case 'autostart-boot': {
      const events = decidePoolFlags(cmd, s, isPersistent(s), () => decide({ type: 'start', build: false, timeoutMs: cmd.timeoutMs }, s, now));
      return events.length > 0 ? decided(events) : [];
    }
    case 'vol-create': {
      requireActive(s);
      if (findVolume(s, cmd.volume.name)) throw virtError('operation-failed', `storage volume '${cmd.volume.name}' exists already`);
      const volume = placeVolume(s, cmd.volume);
      return decided([{ type: 'VolumeCreateRequested', data: { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), volume } }]);
    }
    case 'vol-delete': {
      requireActive(s);
      const v = findVolume(s, cmd.name);
      if (!v) throw noVolume(cmd.name);
      if (v.pending?.op === 'vol-create') throw virtError('operation-invalid', `volume '${v.name}' is still being allocated.`);
      if (v.pending?.op === 'vol-delete') throw virtError('operation-invalid', `volume '${v.name}' is already being deleted`);
      // A resize, wipe or clone still reads or writes the file.
      const using = v.pending ?? s.volumes.find((o) => o.pending?.op === 'vol-clone' && o.pending.source === v.name)?.pending;
      if (using) throw virtError('operation-invalid', `volume '${v.name}' is still in use.`, { inFlight: [using] });
      return decided([{ type: 'VolumeDeleteRequested', data: { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), name: v.name, path: v.path } }]);
    }
    case 'refresh':
    case 'delete': {
      requirePool(s);
      if (cmd.type === 'refresh' && !s.active) throw notActive(s);
      if (cmd.type === 'delete' && s.active) throw stillActive(s);
      if (inFlight(s).length > 0) throw asyncJobs(s);
      const target = { path: poolTargetPath(s) };
      const intent = { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), target };
      return decided([cmd.type === 'refresh' ? { type: 'PoolRefreshRequested', data: intent } : { type: 'PoolDeleteRequested', data: intent }]);
    }
    case 'vol-resize':
    case 'vol-wipe': {
      requireActive(s);
      const v = findVolume(s, cmd.name);
      if (!v) throw noVolume(cmd.name);
      requireIdle(s, v);
      const intent = { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), name: v.name, path: v.path };
      if (cmd.type === 'vol-wipe') return decided([{ type: 'VolumeWipeRequested', data: intent }]);
      const capacityBytes = resizeTarget(s, v, cmd);
      return decided([{ type: 'VolumeResizeRequested', data: { ...intent, capacityBytes, shrink: cmd.shrink } }]);
    }
    case 'vol-clone': {
      requireActive(s);
      const v = findVolume(s, cmd.name);
      if (!v) throw noVolume(cmd.name);
      if (v.pending?.op === 'vol-create' || v.pending?.op === 'vol-clone') throw virtError('operation-invalid', `volume '${v.name}' is still being allocated.`);
      if (findVolume(s, cmd.newName)) throw virtError('operation-failed', `storage volume '${cmd.newName}' exists already`);
      // The copy has the source's format, capacity and backing file; its own name, key and path.
      const { xml: _xml, key: _key, ...source } = v.definition;
      const capacityBytes = v.info?.capacityBytes ?? source.capacityBytes;
      const volume = placeVolume(s, {
        ...source,
        name: cmd.newName,
        capacityBytes,
        allocationBytes: capacityBytes,
        target: { ...source.target, path: volumePath(s, cmd.newName), format: v.info?.format ?? source.target?.format ?? 'raw' },
      });
      return decided([{ type: 'VolumeCloneRequested', data: { hostId: s.hostId, deadline: deadline(now, cmd.timeoutMs), volume, source: { name: v.name, path: v.path } } }]);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// evolve

/** The stored form of a volume found on disk that virtplane did not create (or no longer knows). */
export const definitionFromInfo = (i: VolumeInfo): StorageVolumeDefinition => ({
  type: i.type,
  name: i.name,
  key: i.path,
  capacityBytes: i.capacityBytes,
  allocationBytes: i.allocationBytes,
  target: { path: i.path, format: i.format },
  ...(i.backingStore ? { backingStore: i.backingStore } : {}),
});

const remember = (tasks: TaskOutcome[], t: TaskOutcome): TaskOutcome[] => [...tasks.filter((x) => x.taskId !== t.taskId), t].slice(-RECENT_TASKS);

const withVolume = (s: PoolAggregate, name: string, f: (v: VolumeEntry) => VolumeEntry | null): VolumeEntry[] =>
  s.volumes.flatMap((v) => {
    if (v.name !== name) return [v];
    const next = f(v);
    return next ? [next] : [];
  });

const pendingFrom = (op: StorageOp, e: Envelope<StorageEventBody> & { data: { deadline: string } }): StoragePending => ({
  op,
  taskId: e.id,
  requestedAt: e.time,
  deadline: e.data.deadline,
});

export const evolve = (s: PoolAggregate, e: Envelope<StorageEventBody>): PoolAggregate => evolvePoolFlags(s, evolvePool(s, e), e.type, e.data);

const evolvePool = (s: PoolAggregate, e: Envelope<StorageEventBody>): PoolAggregate => {
  const recentCommands = rememberCommand(s.recentCommands, e.commandId, e.version);
  const base: PoolAggregate = { ...s, version: e.version, recentCommands };
  const ok = (taskId: string, op: StorageOp, name?: string): TaskOutcome[] =>
    remember(s.recentTasks, { taskId, op, ...(name !== undefined ? { name } : {}), ok: true, at: e.time });
  switch (e.type) {
    case 'NameClaimRevoked':
      // A fence written by another define, not a command of this pool's: no retry to recognise.
      return applyRevocation({ ...s, version: e.version }, e);
    case 'PoolDefined': {
      const def = e.data.definition;
      if (!s.exists) {
        return { ...initialPoolState(s.id), version: e.version, recentCommands, recentTasks: s.recentTasks, revokedClaimsUpTo: s.revokedClaimsUpTo ?? 0, exists: true, persistent: true, name: def.name, definition: def, hostId: e.data.hostId };
      }
      return s.active ? { ...base, persistent: true, nextDefinition: def } : { ...base, persistent: true, definition: def, nextDefinition: null };
    }
    case 'PoolUndefined':
      // A pool that still runs stays, transient, until it stops (libvirt's undefine of an active pool).
      return { ...base, exists: false, removed: true, persistent: false, nextDefinition: null };
    case 'PoolCreated': {
      const def = e.data.definition;
      if (!s.exists) {
        return { ...initialPoolState(s.id), version: e.version, recentCommands, recentTasks: s.recentTasks, revokedClaimsUpTo: s.revokedClaimsUpTo ?? 0, exists: true, name: def.name, definition: def, hostId: e.data.hostId };
      }
      // The persistent definition waits, to be in force again once this one stops.
      return { ...base, definition: def, nextDefinition: s.definition };
    }
    case 'PoolBuildRequested':
      return { ...base, pending: pendingFrom('pool-build', e) };
    case 'PoolStartRequested':
      return { ...base, pending: pendingFrom('pool-start', e) };
    case 'PoolBuilt':
      return { ...base, pending: s.pending?.taskId === e.data.taskId ? null : s.pending, recentTasks: ok(e.data.taskId, 'pool-build') };
    case 'PoolStarted': {
      // Starting refreshes: volumes are what is on disk, keeping what virtplane knows of each.
      const volumes = e.data.volumes.map((info): VolumeEntry => {
        const known = findVolume(s, info.name);
        return { name: info.name, path: info.path, definition: known?.definition ?? definitionFromInfo(info), info, pending: null };
      });
      return {
        ...base,
        active: true,
        pending: s.pending?.taskId === e.data.taskId ? null : s.pending,
        stats: e.data.stats ?? s.stats,
        volumes,
        recentTasks: ok(e.data.taskId, 'pool-start'),
      };
    }
    case 'PoolDestroyed':
      if (!isPersistent(s)) return { ...base, active: false, exists: false, removed: true, nextDefinition: null };
      return { ...base, active: false, definition: s.nextDefinition ?? s.definition, nextDefinition: null };
    case 'VolumeCreateRequested': {
      const v = e.data.volume;
      return {
        ...base,
        volumes: [...s.volumes, { name: v.name, path: v.key ?? volumePath(s, v.name), definition: v, info: null, pending: pendingFrom('vol-create', e) }],
      };
    }
    case 'VolumeCreated':
      return {
        ...base,
        stats: e.data.stats ?? s.stats,
        volumes: withVolume(s, e.data.name, (v) => ({ ...v, info: e.data.info, pending: v.pending?.taskId === e.data.taskId ? null : v.pending })),
        recentTasks: ok(e.data.taskId, 'vol-create', e.data.name),
      };
    case 'VolumeDeleteRequested':
      return { ...base, volumes: withVolume(s, e.data.name, (v) => ({ ...v, pending: pendingFrom('vol-delete', e) })) };
    case 'VolumeDeleted':
      return {
        ...base,
        stats: e.data.stats ?? s.stats,
        volumes: withVolume(s, e.data.name, () => null),
        recentTasks: ok(e.data.taskId, 'vol-delete', e.data.name),
      };
    case 'PoolRefreshRequested':
      return { ...base, pending: pendingFrom('pool-refresh', e) };
    case 'PoolRefreshed': {
      const volumes = e.data.volumes.map((info): VolumeEntry => {
        const known = findVolume(s, info.name);
        return { name: info.name, path: info.path, definition: known?.definition ?? definitionFromInfo(info), info, pending: null };
      });
      return { ...base, pending: s.pending?.taskId === e.data.taskId ? null : s.pending, stats: e.data.stats ?? s.stats, volumes, recentTasks: ok(e.data.taskId, 'pool-refresh') };
    }
    case 'PoolDeleteRequested':
      return { ...base, pending: pendingFrom('pool-delete', e) };
    case 'PoolDeleted':
      // The directory and whatever was in it are gone; the pool stays defined, inactive.
      return { ...base, pending: s.pending?.taskId === e.data.taskId ? null : s.pending, volumes: [], stats: null, recentTasks: ok(e.data.taskId, 'pool-delete') };
    case 'VolumeResizeRequested':
      return { ...base, volumes: withVolume(s, e.data.name, (v) => ({ ...v, pending: pendingFrom('vol-resize', e) })) };
    case 'VolumeWipeRequested':
      return { ...base, volumes: withVolume(s, e.data.name, (v) => ({ ...v, pending: pendingFrom('vol-wipe', e) })) };
    case 'VolumeResized':
    case 'VolumeWiped':
    case 'VolumeCloned': {
      const op = e.type === 'VolumeResized' ? 'vol-resize' : e.type === 'VolumeWiped' ? 'vol-wipe' : 'vol-clone';
      const resized = e.type === 'VolumeResized' ? { capacityBytes: e.data.info.capacityBytes } : {};
      return {
        ...base,
        stats: e.data.stats ?? s.stats,
        volumes: withVolume(s, e.data.name, (v) => ({
          ...v,
          definition: { ...v.definition, ...resized },
          info: e.data.info,
          pending: v.pending?.taskId === e.data.taskId ? null : v.pending,
        })),
        recentTasks: ok(e.data.taskId, op, e.data.name),
      };
    }
    case 'VolumeCloneRequested': {
      const v = e.data.volume;
      const pending = { ...pendingFrom('vol-clone', e), source: e.data.source.name };
      return { ...base, volumes: [...s.volumes, { name: v.name, path: v.key ?? volumePath(s, v.name), definition: v, info: null, pending }] };
    }
    case 'StorageOperationFailed': {
      const { op, taskId, name, error } = e.data;
      const recentTasks = remember(s.recentTasks, { taskId, op, ...(name !== undefined ? { name } : {}), ok: false, error, at: e.time });
      if (op === 'pool-build' || op === 'pool-start' || op === 'pool-refresh' || op === 'pool-delete') {
        const failed = { ...base, pending: s.pending?.taskId === taskId ? null : s.pending, recentTasks };
        // A pool-create whose start failed leaves nothing behind, as in libvirt.
        if (op === 'pool-start' && !isPersistent(s) && !s.active && s.pending?.taskId === taskId) return { ...failed, exists: false, removed: true };
        // A persistent pool whose created-over start failed keeps its own definition.
        if (op === 'pool-start' && isPersistent(s) && !s.active && s.nextDefinition) return { ...failed, definition: s.nextDefinition, nextDefinition: null };
        return failed;
      }
      const volumes =
        name === undefined
          ? s.volumes
          : withVolume(s, name, (v) => {
              if (v.pending?.taskId !== taskId) return v;
              // A volume whose creation (or cloning) failed was never there; one whose deletion failed still is.
              return op === 'vol-create' || op === 'vol-clone' ? null : { ...v, pending: null };
            });
      return { ...base, volumes, recentTasks };
    }
    default:
      // A type this code does not know (written by a newer version, or by hand): the log is still
      // the truth, so the aggregate moves past it unchanged rather than stopping every reader on it.
      return base;
  }
};

/** The intent events that become host tasks. */
export const intentOp = (type: StorageEventBody['type']): StorageOp | undefined => (STORAGE_INTENTS as Partial<Record<string, StorageOp>>)[type];
