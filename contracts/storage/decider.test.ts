import { describe, expect, it } from 'vitest';
import { decide, evolve, initialPoolState, inFlight, poolCommandVersion, poolStateName } from './decider.ts';
import { StoragePoolDefinition, StorageVolumeDefinition } from './definition.ts';
import type { StorageCommand } from './commands.ts';
import type { StorageEventBody, VolumeInfo } from './events.ts';
import { parseVolumeXml } from '../xml/index.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

const UUID = '0b6f5a0c-1e77-4d0e-9c1e-2b8f3c4d5e6f';
const spec = deciderSpec({ decide, evolve, initialState: () => initialPoolState(UUID) }, { aggregateType: 'pool', aggregateId: UUID });

const pool = StoragePoolDefinition.parse({ type: 'dir', name: 'images', uuid: UUID, target: { path: '/srv/images/' } });
const pool2 = StoragePoolDefinition.parse({ type: 'dir', name: 'images', uuid: UUID, target: { path: '/srv/other' } });
const TARGET = { path: '/srv/images' };

const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE = '2025-01-01T01:00:00.000Z';
const PAST = '2025-01-01T00:05:00.000Z';
const T = 30_000;
const deadlineFrom = (now: Date) => new Date(now.getTime() + T).toISOString();

type Ev = GivenEvent<StorageEventBody>;
const defined = (d = pool, added = true): Ev => ({ type: 'PoolDefined', data: { definition: d, hostId: 'h1', added } });
const buildRequested = (taskId: string, deadline = LIVE): Ev => ({ type: 'PoolBuildRequested', id: taskId, data: { hostId: 'h1', deadline, target: TARGET } });
const startRequested = (taskId: string, deadline = LIVE, build = false): Ev => ({
  type: 'PoolStartRequested',
  id: taskId,
  data: { hostId: 'h1', deadline, target: TARGET, build },
});
const started = (taskId: string, volumes: VolumeInfo[] = []): Ev => ({ type: 'PoolStarted', data: { taskId, volumes } });
const info = (name: string, over: Partial<VolumeInfo> = {}): VolumeInfo => ({
  name,
  path: `/srv/images/${name}`,
  type: 'file',
  format: 'qcow2',
  capacityBytes: 1 << 30,
  allocationBytes: 196_608,
  ...over,
});
const vol = (name: string, over: Partial<StorageVolumeDefinition> = {}): StorageVolumeDefinition =>
  StorageVolumeDefinition.parse({ name, capacityBytes: 1 << 30, target: { format: 'qcow2' }, ...over });
const placed = (name: string, over: Partial<StorageVolumeDefinition> = {}): StorageVolumeDefinition => ({
  ...vol(name, over),
  type: 'file',
  key: `/srv/images/${name}`,
  allocationBytes: over.allocationBytes ?? 1 << 30,
  target: { format: 'qcow2', ...over.target, path: `/srv/images/${name}` },
});
const createRequested = (taskId: string, name: string, deadline = LIVE): Ev => ({
  type: 'VolumeCreateRequested',
  id: taskId,
  data: { hostId: 'h1', deadline, volume: placed(name) },
});
const created = (taskId: string, name: string): Ev => ({ type: 'VolumeCreated', data: { taskId, name, info: info(name) } });
const deleteRequested = (taskId: string, name: string, deadline = LIVE): Ev => ({
  type: 'VolumeDeleteRequested',
  id: taskId,
  data: { hostId: 'h1', deadline, name, path: `/srv/images/${name}` },
});

const active: Ev[] = [defined(), startRequested('t-start'), started('t-start')];
const withVolume: Ev[] = [...active, createRequested('t-a', 'a.qcow2'), created('t-a', 'a.qcow2')];

const op = (type: 'build' | 'destroy' | 'undefine' | 'start', build = false): StorageCommand =>
  type === 'start' ? { type, build, timeoutMs: T } : type === 'build' ? { type, timeoutMs: T } : { type };

const NOT_ACTIVE = "storage pool 'images' is not active";
const ALREADY_ACTIVE = "storage pool 'images' is already active";
const IS_ACTIVE = "storage pool 'images' is active";
const ASYNC = "pool 'images' has asynchronous jobs running.";
const NO_POOL = `no storage pool with matching uuid '${UUID}'`;

describe('pool define and undefine', () => {
  it('a new pool is DEFINED, inactive, on the requested host', () => {
    const { after } = spec.given().when({ type: 'define', claimSeq: 1, definition: pool, hostId: 'h1' }).then([defined()]);
    expect(after).toMatchObject({ exists: true, name: 'images', hostId: 'h1', active: false, pending: null, volumes: [], version: 1 });
    expect(poolStateName(after)).toBe('inactive');
  });

  it('redefining an inactive pool replaces the definition and keeps its host', () => {
    const { after } = spec
      .given([defined()])
      .when({ type: 'define', claimSeq: 1, definition: pool2, hostId: 'h2' })
      .then([{ type: 'PoolDefined', data: { definition: pool2, hostId: 'h1', added: false } }]);
    expect(after.definition).toEqual(pool2);
  });

  it('redefining an active pool applies the new definition when it stops', () => {
    const g = spec.given(active);
    const { after } = g.when({ type: 'define', claimSeq: 1, definition: pool2, hostId: 'h1' }).then([{ type: 'PoolDefined', data: { definition: pool2, hostId: 'h1', added: false } }]);
    expect(after.definition).toEqual(pool);
    expect(after.nextDefinition).toEqual(pool2);
    const stopped = spec.given([...active, { type: 'PoolDefined', data: { definition: pool2, hostId: 'h1', added: false } }]).when(op('destroy')).then([{ type: 'PoolDestroyed', data: {} }]);
    expect(stopped.after.definition).toEqual(pool2);
    expect(stopped.after.nextDefinition).toBeNull();
  });

  it('refuses another name for the same uuid', () => {
    spec
      .given([defined()])
      .when({ type: 'define', claimSeq: 1, definition: { ...pool, name: 'other' }, hostId: 'h1' })
      .thenThrows('operation-failed', `pool 'images' is already defined with uuid ${UUID}`);
  });

  it('refuses pool types no host can run, and relative targets', () => {
    spec
      .given()
      .when({ type: 'define', claimSeq: 1, definition: { ...pool, type: 'netfs' }, hostId: 'h1' })
      .thenThrows('operation-unsupported', /storage pool type 'netfs' is not supported/);
    spec
      .given()
      .when({ type: 'define', claimSeq: 1, definition: { ...pool, target: { path: 'relative/dir' } }, hostId: 'h1' })
      .thenThrows('invalid-arg', "storage pool target path 'relative/dir' must be an absolute path");
  });

  it('undefines an inactive pool: UNDEFINED, gone', () => {
    const { after } = spec.given([defined()]).when(op('undefine')).then([{ type: 'PoolUndefined', data: {} }]);
    expect(after.exists).toBe(false);
  });

  it('refuses to undefine an active pool, or one with a build or start in flight', () => {
    spec.given(active).when(op('undefine')).thenThrows('operation-invalid', IS_ACTIVE);
    spec.given([defined(), buildRequested('t-b')]).when(op('undefine')).thenThrows('operation-invalid', ASYNC);
    spec.given([defined(), startRequested('t-s')]).when(op('undefine')).thenThrows('operation-invalid', ASYNC);
  });

  it('a missing pool is no-storage-pool for every operation', () => {
    for (const c of [op('undefine'), op('build'), op('start'), op('destroy')]) spec.given().when(c).thenThrows('no-storage-pool', NO_POOL);
    spec.given().when({ type: 'vol-create', volume: vol('x'), timeoutMs: T }).thenThrows('no-storage-pool', NO_POOL);
    spec.given().when({ type: 'vol-delete', name: 'x', timeoutMs: T }).thenThrows('no-storage-pool', NO_POOL);
    spec.given([defined(), { type: 'PoolUndefined', data: {} }]).when(op('start')).thenThrows('no-storage-pool', NO_POOL);
  });

  it('a pool defined again after undefine starts afresh', () => {
    const { after } = spec.given([...active, { type: 'PoolDestroyed', data: {} }, { type: 'PoolUndefined', data: {} }]).when({ type: 'define', claimSeq: 1, definition: pool, hostId: 'h2' }).then([
      { type: 'PoolDefined', data: { definition: pool, hostId: 'h2', added: true } },
    ]);
    expect(after).toMatchObject({ exists: true, removed: false, hostId: 'h2', active: false, volumes: [] });
  });
});

describe('pool build, start and destroy', () => {
  it('build asks the host, state building until it reports', () => {
    const { after } = spec
      .given([defined()])
      .when(op('build'), NOW)
      .then([{ type: 'PoolBuildRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET } }]);
    expect(poolStateName(after)).toBe('building');
    const done = spec.given([defined(), buildRequested('t-b')]).when({ type: 'complete', taskId: 't-b', result: { op: 'pool-build' } }).then([{ type: 'PoolBuilt', data: { taskId: 't-b' } }]);
    expect(done.after.pending).toBeNull();
    expect(done.after.active).toBe(false);
    expect(done.after.recentTasks).toEqual([expect.objectContaining({ taskId: 't-b', op: 'pool-build', ok: true })]);
  });

  it('the target carries the permissions the host applies', () => {
    const d = StoragePoolDefinition.parse({ ...pool, target: { path: '/srv/images', permissions: { mode: '0750' } } });
    spec
      .given([defined(d)])
      .when(op('build'), NOW)
      .then([{ type: 'PoolBuildRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: { path: '/srv/images', permissions: { mode: '0750' } } } }]);
  });

  it('start asks the host (optionally building first); the pool is active once it reports', () => {
    spec
      .given([defined()])
      .when(op('start', true), NOW)
      .then([{ type: 'PoolStartRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET, build: true } }]);
    const { after } = spec
      .given([defined(), startRequested('t-s')])
      .when({ type: 'complete', taskId: 't-s', result: { op: 'pool-start', volumes: [info('found.img', { format: 'raw' })], stats: { capacityBytes: 100, allocationBytes: 40, availableBytes: 60 } } })
      .then([{ type: 'PoolStarted', data: { taskId: 't-s', volumes: [info('found.img', { format: 'raw' })], stats: { capacityBytes: 100, allocationBytes: 40, availableBytes: 60 } } }]);
    expect(after.active).toBe(true);
    expect(poolStateName(after)).toBe('running');
    expect(after.stats).toEqual({ capacityBytes: 100, allocationBytes: 40, availableBytes: 60 });
    // Volumes found on disk get a definition from what the host saw.
    expect(after.volumes).toEqual([
      expect.objectContaining({
        name: 'found.img',
        path: '/srv/images/found.img',
        definition: expect.objectContaining({ key: '/srv/images/found.img', target: { path: '/srv/images/found.img', format: 'raw' } }),
      }),
    ]);
  });

  it('start and build refuse an active pool; neither runs twice at once', () => {
    spec.given(active).when(op('start')).thenThrows('operation-invalid', ALREADY_ACTIVE);
    spec.given(active).when(op('build')).thenThrows('operation-invalid', ALREADY_ACTIVE);
    spec.given([defined(), startRequested('t-s')]).when(op('start')).thenThrows('operation-invalid', ASYNC);
    spec.given([defined(), buildRequested('t-b')]).when(op('start')).thenThrows('operation-invalid', ASYNC);
    spec.given([defined(), buildRequested('t-b')]).when(op('build')).thenThrows('operation-invalid', ASYNC);
  });

  it('a failed start leaves the pool inactive and records why', () => {
    const error = { code: 'operation-failed' as const, message: "cannot open directory '/srv/images': No such file or directory" };
    const { after } = spec
      .given([defined(), startRequested('t-s')])
      .when({ type: 'fail', taskId: 't-s', error })
      .then([{ type: 'StorageOperationFailed', data: { op: 'pool-start', taskId: 't-s', error } }]);
    expect(after).toMatchObject({ active: false, pending: null });
    expect(after.recentTasks.at(-1)).toMatchObject({ taskId: 't-s', ok: false, error });
  });

  it('destroy stops an active pool at once (a dir pool has nothing to tear down) and keeps its volumes', () => {
    const { after } = spec.given(withVolume).when(op('destroy')).then([{ type: 'PoolDestroyed', data: {} }]);
    expect(after.active).toBe(false);
    expect(after.volumes.map((v) => v.name)).toEqual(['a.qcow2']);
  });

  it('destroy refuses an inactive pool and one with volume work in flight', () => {
    spec.given([defined()]).when(op('destroy')).thenThrows('operation-invalid', NOT_ACTIVE);
    spec.given([defined(), startRequested('t-s')]).when(op('destroy')).thenThrows('operation-invalid', NOT_ACTIVE);
    spec.given([...active, createRequested('t-a', 'a.qcow2')]).when(op('destroy')).thenThrows('operation-invalid', ASYNC);
    spec.given([...withVolume, deleteRequested('t-d', 'a.qcow2')]).when(op('destroy')).thenThrows('operation-invalid', ASYNC);
  });

  it('a restart refreshes the volumes from disk and keeps the definitions it knows', () => {
    const { after } = spec
      .given([...withVolume, { type: 'PoolDestroyed', data: {} }, startRequested('t-s2')])
      .when({ type: 'complete', taskId: 't-s2', result: { op: 'pool-start', volumes: [info('a.qcow2', { allocationBytes: 1 }), info('new.img')] } })
      .then([{ type: 'PoolStarted', data: { taskId: 't-s2', volumes: [info('a.qcow2', { allocationBytes: 1 }), info('new.img')] } }]);
    expect(after.volumes.find((v) => v.name === 'a.qcow2')).toMatchObject({ definition: placed('a.qcow2'), info: { allocationBytes: 1 } });
    expect(after.volumes.find((v) => v.name === 'new.img')?.definition.name).toBe('new.img');
  });
});

describe('volumes', () => {
  it('vol-create in an active pool places the volume at <target>/<name> and asks the host', () => {
    const { after } = spec
      .given(active)
      .when({ type: 'vol-create', volume: vol('a.qcow2'), timeoutMs: T }, NOW)
      .then([{ type: 'VolumeCreateRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), volume: placed('a.qcow2') } }]);
    expect(after.volumes).toEqual([
      expect.objectContaining({ name: 'a.qcow2', path: '/srv/images/a.qcow2', info: null, pending: expect.objectContaining({ op: 'vol-create' }) }),
    ]);
    expect(inFlight(after)).toHaveLength(1);
  });

  it('a volume without a format is raw; a relative backing store is a file of the pool', () => {
    const [e] = spec.given(active).when({ type: 'vol-create', volume: StorageVolumeDefinition.parse({ name: 'r.img', capacityBytes: 1024 }), timeoutMs: T }).decided();
    expect(e).toMatchObject({ data: { volume: { type: 'file', target: { format: 'raw', path: '/srv/images/r.img' }, key: '/srv/images/r.img', allocationBytes: 1024 } } });
    const [b] = spec
      .given(active)
      .when({ type: 'vol-create', volume: vol('overlay.qcow2', { backingStore: { path: 'base.qcow2', format: 'qcow2' } }), timeoutMs: T })
      .decided();
    expect(b).toMatchObject({ data: { volume: { backingStore: { path: '/srv/images/base.qcow2', format: 'qcow2' } } } });
  });

  it('keeps the XML document and writes key and path into it', () => {
    const v = parseVolumeXml("<volume><name>x.qcow2</name><key>/elsewhere</key><capacity unit='G'>1</capacity><target><format type='qcow2'/></target><extra>kept</extra></volume>");
    const [e] = spec.given(active).when({ type: 'vol-create', volume: v, timeoutMs: T }).decided();
    const xml = (e as Extract<StorageEventBody, { type: 'VolumeCreateRequested' }>).data.volume.xml!;
    expect(xml).toContain('<key>/srv/images/x.qcow2</key>');
    expect(xml).toContain('<path>/srv/images/x.qcow2</path>');
    expect(xml).toContain('<extra>kept</extra>');
  });

  it('the host reports the created volume; the task outcome is kept', () => {
    const { after } = spec
      .given([...active, createRequested('t-a', 'a.qcow2')])
      .when({ type: 'complete', taskId: 't-a', result: { op: 'vol-create', info: info('a.qcow2') } })
      .then([created('t-a', 'a.qcow2') as StorageEventBody]);
    expect(after.volumes[0]).toMatchObject({ info: info('a.qcow2'), pending: null });
    expect(after.recentTasks.at(-1)).toMatchObject({ taskId: 't-a', op: 'vol-create', name: 'a.qcow2', ok: true });
  });

  it('a failed create leaves no volume', () => {
    const error = { code: 'operation-failed' as const, message: 'qemu-img: boom' };
    const { after } = spec
      .given([...active, createRequested('t-a', 'a.qcow2')])
      .when({ type: 'fail', taskId: 't-a', error })
      .then([{ type: 'StorageOperationFailed', data: { op: 'vol-create', taskId: 't-a', name: 'a.qcow2', error } }]);
    expect(after.volumes).toEqual([]);
  });

  it('vol-create refuses an inactive pool, a taken name, unsupported formats and raw with a backing store', () => {
    spec.given([defined()]).when({ type: 'vol-create', volume: vol('a'), timeoutMs: T }).thenThrows('operation-invalid', NOT_ACTIVE);
    spec.given(withVolume).when({ type: 'vol-create', volume: vol('a.qcow2'), timeoutMs: T }).thenThrows('operation-failed', "storage volume 'a.qcow2' exists already");
    spec.given([...active, createRequested('t-a', 'a.qcow2')]).when({ type: 'vol-create', volume: vol('a.qcow2'), timeoutMs: T }).thenThrows('operation-failed', "storage volume 'a.qcow2' exists already");
    spec.given(active).when({ type: 'vol-create', volume: vol('v', { target: { format: 'vmdk' } }), timeoutMs: T }).thenThrows('operation-unsupported', /format 'vmdk' is not supported/);
    spec.given(active).when({ type: 'vol-create', volume: vol('v', { type: 'block' }), timeoutMs: T }).thenThrows('operation-unsupported', /volume type 'block'/);
    spec
      .given(active)
      .when({ type: 'vol-create', volume: vol('v', { target: { format: 'raw' }, backingStore: { path: '/b' } }), timeoutMs: T })
      .thenThrows('operation-unsupported', 'backing storage not supported for raw volumes');
    spec.given(active).when({ type: 'vol-create', volume: vol('v', { backingStore: { path: 'v' } }), timeoutMs: T }).thenThrows('invalid-arg', "volume 'v' cannot be its own backing store");
    spec.given(active).when({ type: 'vol-create', volume: vol('v', { backingStore: { format: 'qcow2' } }), timeoutMs: T }).thenThrows('invalid-arg', /needs a <path>/);
    spec.given(active).when({ type: 'vol-create', volume: vol('..'), timeoutMs: T }).thenThrows('invalid-arg', /volume name '..' cannot name a file/);
  });

  it('vol-delete asks the host and the volume goes once it reports', () => {
    spec
      .given(withVolume)
      .when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }, NOW)
      .then([{ type: 'VolumeDeleteRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), name: 'a.qcow2', path: '/srv/images/a.qcow2' } }]);
    const { after } = spec
      .given([...withVolume, deleteRequested('t-d', 'a.qcow2')])
      .when({ type: 'complete', taskId: 't-d', result: { op: 'vol-delete' } })
      .then([{ type: 'VolumeDeleted', data: { taskId: 't-d', name: 'a.qcow2' } }]);
    expect(after.volumes).toEqual([]);
  });

  it('a failed delete keeps the volume', () => {
    const error = { code: 'operation-failed' as const, message: 'permission denied' };
    const { after } = spec.given([...withVolume, deleteRequested('t-d', 'a.qcow2')]).when({ type: 'fail', taskId: 't-d', error }).then([
      { type: 'StorageOperationFailed', data: { op: 'vol-delete', taskId: 't-d', name: 'a.qcow2', error } },
    ]);
    expect(after.volumes[0]).toMatchObject({ name: 'a.qcow2', pending: null });
  });

  it('vol-delete refuses an inactive pool, a missing volume, one being created or deleted', () => {
    spec.given([...withVolume, { type: 'PoolDestroyed', data: {} }]).when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', NOT_ACTIVE);
    spec.given(withVolume).when({ type: 'vol-delete', name: 'nope', timeoutMs: T }).thenThrows('no-storage-vol', "no storage vol with matching name 'nope'");
    spec.given([...active, createRequested('t-a', 'a.qcow2')]).when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'a.qcow2' is still being allocated.");
    spec.given([...withVolume, deleteRequested('t-d', 'a.qcow2')]).when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'a.qcow2' is already being deleted");
  });
});

describe('reports, deadlines and retries', () => {
  it('a stale or repeated report records nothing', () => {
    spec.given(withVolume).when({ type: 'complete', taskId: 't-a', result: { op: 'vol-create', info: info('a.qcow2') } }).thenNothing();
    spec.given(active).when({ type: 'fail', taskId: 'unknown', error: { code: 'operation-failed', message: 'x' } }).thenNothing();
  });

  it('a report for another kind of operation than the task is refused', () => {
    spec.given([defined(), startRequested('t-s')]).when({ type: 'complete', taskId: 't-s', result: { op: 'pool-build' } }).thenThrows('invalid-arg', /is for 'pool-build' but the task is 'pool-start'/);
  });

  it('expire records a timeout only once the deadline has passed', () => {
    spec.given([defined(), startRequested('t-s', LIVE)]).when({ type: 'expire', taskId: 't-s' }, NOW).thenNothing();
    const { after } = spec
      .given([...active, createRequested('t-a', 'a.qcow2', PAST)])
      .when({ type: 'expire', taskId: 't-a' }, NOW)
      .then([
        {
          type: 'StorageOperationFailed',
          data: { op: 'vol-create', taskId: 't-a', name: 'a.qcow2', error: { code: 'timeout', message: `operation 'vol-create' did not finish before its deadline ${PAST}` } },
        },
      ]);
    expect(after.volumes).toEqual([]);
    spec.given().when({ type: 'expire', taskId: 'x' }).thenNothing();
  });

  it('an operation past its deadline never blocks the pool: the next command records the timeout first', () => {
    const timeout = { code: 'timeout' as const, message: `operation 'pool-start' did not finish before its deadline ${PAST}` };
    spec
      .given([defined(), startRequested('t-s', PAST)])
      .when(op('start'), NOW)
      .then([
        { type: 'StorageOperationFailed', data: { op: 'pool-start', taskId: 't-s', error: timeout } },
        { type: 'PoolStartRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET, build: false } },
      ]);
    const { after } = spec
      .given([...active, createRequested('t-a', 'a.qcow2', PAST)])
      .when({ type: 'vol-create', volume: vol('a.qcow2'), timeoutMs: T }, NOW)
      .then([
        { type: 'StorageOperationFailed', data: { op: 'vol-create', taskId: 't-a', name: 'a.qcow2', error: { code: 'timeout', message: `operation 'vol-create' did not finish before its deadline ${PAST}` } } },
        { type: 'VolumeCreateRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), volume: placed('a.qcow2') } },
      ]);
    expect(after.volumes).toHaveLength(1);
    expect(after.volumes[0]!.pending?.deadline).toBe(deadlineFrom(NOW));
  });

  it('remembers the command ids it applied', () => {
    const g = spec.given([defined()]);
    expect(poolCommandVersion(g.state, 'given-1')).toBe(1);
    expect(poolCommandVersion(g.state, 'other')).toBeUndefined();
  });
});

describe('pool name claims', () => {
  const revoked = (claimSeq: number): Ev => ({ type: 'NameClaimRevoked', data: { name: 'images', claimSeq } });
  it('a define whose claim was revoked is refused; a newer claim defines, and keeps the fence', () => {
    const g = spec.given([revoked(5)]);
    g.when({ type: 'define', claimSeq: 5, definition: pool, hostId: 'h1' }).thenThrows('conflict', /taken over/);
    const { after } = g.when({ type: 'define', claimSeq: 6, definition: pool, hostId: 'h1' }).then([defined()]);
    expect(after.revokedClaimsUpTo).toBe(5);
  });
});

describe('pool refresh and delete', () => {
  const refreshRequested = (taskId: string): Ev => ({ type: 'PoolRefreshRequested', id: taskId, data: { hostId: 'h1', deadline: LIVE, target: TARGET } });
  const deleteRequestedPool = (taskId: string): Ev => ({ type: 'PoolDeleteRequested', id: taskId, data: { hostId: 'h1', deadline: LIVE, target: TARGET } });

  it('refreshing an active pool asks its host, and the volumes become what the host found', () => {
    spec
      .given(withVolume)
      .when({ type: 'refresh', timeoutMs: T }, NOW)
      .then([{ type: 'PoolRefreshRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET } }]);
    const found = [info('a.qcow2', { capacityBytes: 2 << 30 }), info('b.raw', { format: 'raw' })];
    const { after } = spec
      .given([...withVolume, refreshRequested('t-r')])
      .when({ type: 'complete', taskId: 't-r', result: { op: 'pool-refresh', volumes: found } })
      .then([{ type: 'PoolRefreshed', data: { taskId: 't-r', volumes: found } }]);
    expect(after.pending).toBeNull();
    expect(after.volumes.map((v) => [v.name, v.info?.capacityBytes])).toEqual([
      ['a.qcow2', 2 << 30],
      ['b.raw', 1 << 30],
    ]);
    // What virtplane knew of a volume it created stays: its definition.
    expect(after.volumes[0]!.definition).toEqual(placed('a.qcow2'));
  });

  it('refuses to refresh an inactive pool, or one with work in flight', () => {
    spec.given([defined()]).when({ type: 'refresh', timeoutMs: T }).thenThrows('operation-invalid', NOT_ACTIVE);
    spec.given([...active, createRequested('t-x', 'x')]).when({ type: 'refresh', timeoutMs: T }).thenThrows('operation-invalid', ASYNC);
  });

  it('deletes an inactive pool: its directory goes, the pool stays defined without volumes', () => {
    const stopped = [...withVolume, { type: 'PoolDestroyed', data: {} } as Ev];
    spec
      .given(stopped)
      .when({ type: 'delete', timeoutMs: T }, NOW)
      .then([{ type: 'PoolDeleteRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET } }]);
    const { after } = spec.given([...stopped, deleteRequestedPool('t-d')]).when({ type: 'complete', taskId: 't-d', result: { op: 'pool-delete' } }).then([{ type: 'PoolDeleted', data: { taskId: 't-d' } }]);
    expect(after).toMatchObject({ exists: true, active: false, pending: null, volumes: [] });
  });

  it('refuses to delete an active pool; a failed delete leaves the pool as it was', () => {
    spec.given(active).when({ type: 'delete', timeoutMs: T }).thenThrows('operation-invalid', IS_ACTIVE);
    const error = { code: 'operation-failed' as const, message: "failed to remove pool '/srv/images': Directory not empty" };
    const { after } = spec
      .given([defined(), deleteRequestedPool('t-d')])
      .when({ type: 'fail', taskId: 't-d', error })
      .then([{ type: 'StorageOperationFailed', data: { op: 'pool-delete', taskId: 't-d', error } }]);
    expect(after.pending).toBeNull();
    expect(after.recentTasks.at(-1)).toMatchObject({ taskId: 't-d', ok: false, error });
  });
});

describe('volume resize, wipe and clone', () => {
  const resize = (capacityBytes: number, o: { delta?: boolean; shrink?: boolean } = {}): StorageCommand => ({
    type: 'vol-resize',
    name: 'a.qcow2',
    capacityBytes,
    delta: o.delta ?? false,
    shrink: o.shrink ?? false,
    timeoutMs: T,
  });
  const resizeRequested = (capacityBytes: number, shrink = false): StorageEventBody => ({
    type: 'VolumeResizeRequested',
    data: { hostId: 'h1', deadline: deadlineFrom(NOW), name: 'a.qcow2', path: '/srv/images/a.qcow2', capacityBytes, shrink },
  });
  const G = 1 << 30;

  it('resizes to an absolute capacity, or by a delta, as libvirt works it out', () => {
    spec.given(withVolume).when(resize(2 * G), NOW).then([resizeRequested(2 * G)]);
    spec.given(withVolume).when(resize(G, { delta: true }), NOW).then([resizeRequested(2 * G)]);
    spec.given(withVolume).when(resize(G / 2, { delta: true, shrink: true }), NOW).then([resizeRequested(G / 2, true)]);
    spec.given(withVolume).when(resize(G / 2, { shrink: true }), NOW).then([resizeRequested(G / 2, true)]);
  });

  it("refuses to shrink without --shrink, below the allocation, or to grow past the pool's free space", () => {
    spec.given(withVolume).when(resize(G / 2)).thenThrows('invalid-arg', "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified");
    spec.given(withVolume).when(resize(1000, { shrink: true })).thenThrows('invalid-arg', "invalid argument: can't shrink capacity below existing allocation");
    const small: Ev[] = [defined(), startRequested('t-start'), { type: 'PoolStarted', data: { taskId: 't-start', volumes: [], stats: { capacityBytes: 4 * G, allocationBytes: 3 * G, availableBytes: G } } }, createRequested('t-a', 'a.qcow2'), created('t-a', 'a.qcow2')];
    spec.given(small).when(resize(3 * G)).thenThrows('operation-failed', 'Not enough space left in storage pool');
    spec.given(small).when(resize(2 * G), NOW).then([resizeRequested(2 * G)]);
  });

  it('records the new capacity the host reports, and refuses a second operation while one runs', () => {
    const g = [...withVolume, { type: 'VolumeResizeRequested', id: 't-rs', data: { hostId: 'h1', deadline: LIVE, name: 'a.qcow2', path: '/srv/images/a.qcow2', capacityBytes: 2 * G, shrink: false } } as Ev];
    spec.given(g).when(resize(3 * G)).thenThrows('operation-invalid', "volume 'a.qcow2' has asynchronous jobs running.");
    spec.given(g).when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'a.qcow2' is still in use.");
    const grown = info('a.qcow2', { capacityBytes: 2 * G });
    const { after } = spec
      .given(g)
      .when({ type: 'complete', taskId: 't-rs', result: { op: 'vol-resize', info: grown } })
      .then([{ type: 'VolumeResized', data: { taskId: 't-rs', name: 'a.qcow2', info: grown } }]);
    expect(after.volumes[0]).toMatchObject({ pending: null, info: grown, definition: { capacityBytes: 2 * G } });
  });

  it('wipes a volume through its host; unknown volumes and inactive pools are refused', () => {
    spec
      .given(withVolume)
      .when({ type: 'vol-wipe', name: 'a.qcow2', timeoutMs: T }, NOW)
      .then([{ type: 'VolumeWipeRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), name: 'a.qcow2', path: '/srv/images/a.qcow2' } }]);
    spec.given(withVolume).when({ type: 'vol-wipe', name: 'zz', timeoutMs: T }).thenThrows('no-storage-vol', "no storage vol with matching name 'zz'");
    spec.given([defined()]).when({ type: 'vol-wipe', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', NOT_ACTIVE);
  });

  it("clones a volume: the copy has the source's format and capacity under its own name and path", () => {
    const { after } = spec
      .given(withVolume)
      .when({ type: 'vol-clone', name: 'a.qcow2', newName: 'b.qcow2', timeoutMs: T }, NOW)
      .then([
        {
          type: 'VolumeCloneRequested',
          data: { hostId: 'h1', deadline: deadlineFrom(NOW), volume: placed('b.qcow2'), source: { name: 'a.qcow2', path: '/srv/images/a.qcow2' } },
        },
      ]);
    expect(after.volumes.map((v) => [v.name, v.pending?.op ?? null])).toEqual([
      ['a.qcow2', null],
      ['b.qcow2', 'vol-clone'],
    ]);
    spec.given(withVolume).when({ type: 'vol-clone', name: 'a.qcow2', newName: 'a.qcow2', timeoutMs: T }).thenThrows('operation-failed', "storage volume 'a.qcow2' exists already");
    spec.given(withVolume).when({ type: 'vol-clone', name: 'zz', newName: 'b', timeoutMs: T }).thenThrows('no-storage-vol', "no storage vol with matching name 'zz'");
  });

  it('keeps the source of a running clone from being deleted, wiped or resized; a failed clone leaves no volume', () => {
    const cloning = [
      ...withVolume,
      { type: 'VolumeCloneRequested', id: 't-c', data: { hostId: 'h1', deadline: LIVE, volume: placed('b.qcow2'), source: { name: 'a.qcow2', path: '/srv/images/a.qcow2' } } } as Ev,
    ];
    spec.given(cloning).when({ type: 'vol-delete', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'a.qcow2' is still in use.");
    spec.given(cloning).when({ type: 'vol-wipe', name: 'a.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'a.qcow2' is still in use.");
    spec.given(cloning).when({ type: 'vol-wipe', name: 'b.qcow2', timeoutMs: T }).thenThrows('operation-invalid', "volume 'b.qcow2' is still being allocated.");
    const error = { code: 'operation-failed' as const, message: 'no space' };
    const { after } = spec
      .given(cloning)
      .when({ type: 'fail', taskId: 't-c', error })
      .then([{ type: 'StorageOperationFailed', data: { op: 'vol-clone', taskId: 't-c', name: 'b.qcow2', error } }]);
    expect(after.volumes.map((v) => v.name)).toEqual(['a.qcow2']);
    const done = info('b.qcow2');
    const ok = spec.given(cloning).when({ type: 'complete', taskId: 't-c', result: { op: 'vol-clone', info: done } }).then([{ type: 'VolumeCloned', data: { taskId: 't-c', name: 'b.qcow2', info: done } }]);
    expect(ok.after.volumes.map((v) => [v.name, v.pending])).toEqual([
      ['a.qcow2', null],
      ['b.qcow2', null],
    ]);
  });

  it('a report of another operation than the task is refused', () => {
    const g = [...withVolume, { type: 'VolumeWipeRequested', id: 't-w', data: { hostId: 'h1', deadline: LIVE, name: 'a.qcow2', path: '/srv/images/a.qcow2' } } as Ev];
    spec.given(g).when({ type: 'complete', taskId: 't-w', result: { op: 'vol-resize', info: info('a.qcow2') } }).thenThrows('invalid-arg', /is for 'vol-resize' but the task is 'vol-wipe'/);
  });
});

describe('pool-create', () => {
  const created = (d = pool): Ev => ({ type: 'PoolCreated', data: { definition: d, hostId: 'h1' } });
  const create = (d = pool, build = false): StorageCommand => ({ type: 'create', definition: d, hostId: 'h1', claimSeq: 1, build, timeoutMs: T });

  it('defines a transient pool and asks its host to start it, in one commit; it is gone once stopped', () => {
    const { after } = spec
      .given()
      .when(create(pool, true), NOW)
      .then([created(), { type: 'PoolStartRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: TARGET, build: true } }]);
    expect(after).toMatchObject({ exists: true, persistent: false, active: false, pending: { op: 'pool-start' } });
    const running = [created(), startRequested('t-s'), started('t-s')];
    const gone = spec.given(running).when(op('destroy')).then([{ type: 'PoolDestroyed', data: {} }]);
    expect(gone.after).toMatchObject({ exists: false, removed: true });
  });

  it('leaves nothing behind when the start fails', () => {
    const error = { code: 'operation-failed' as const, message: "cannot open directory '/srv/images': No such file or directory" };
    const { after } = spec
      .given([created(), startRequested('t-s')])
      .when({ type: 'fail', taskId: 't-s', error })
      .then([{ type: 'StorageOperationFailed', data: { op: 'pool-start', taskId: 't-s', error } }]);
    expect(after).toMatchObject({ exists: false, removed: true });
    expect(after.recentTasks.at(-1)).toMatchObject({ taskId: 't-s', ok: false, error });
  });

  it('runs an inactive persistent pool with the new definition until it stops, and keeps its own', () => {
    const { after } = spec.given([defined()]).when(create(pool2), NOW).then([
      created(pool2),
      { type: 'PoolStartRequested', data: { hostId: 'h1', deadline: deadlineFrom(NOW), target: { path: '/srv/other' }, build: false } },
    ]);
    expect(after).toMatchObject({ persistent: true, definition: pool2, nextDefinition: pool });
    const stopped = spec.given([defined(), created(pool2), startRequested('t-s'), started('t-s')]).when(op('destroy')).then([{ type: 'PoolDestroyed', data: {} }]);
    expect(stopped.after).toMatchObject({ exists: true, persistent: true, active: false, definition: pool, nextDefinition: null });
  });

  it('refuses an active pool, a pool with work in flight, and a uuid held under another name', () => {
    spec.given(active).when(create()).thenThrows('operation-invalid', ALREADY_ACTIVE);
    spec.given([defined(), buildRequested('t-b')]).when(create()).thenThrows('operation-invalid', ASYNC);
    spec.given([defined()]).when(create({ ...pool, name: 'other' })).thenThrows('operation-failed', `pool 'images' is already defined with uuid ${UUID}`);
  });

  it('a pool stored before pools could be transient stays persistent when it stops', () => {
    const { persistent: _, ...stored } = spec.given(active).when({ type: 'expire', taskId: 'none' }).then([]).after;
    const e = { type: 'PoolDestroyed' as const, data: {}, id: 'e1', aggregateType: 'pool' as const, aggregateId: UUID, time: NOW.toISOString(), actor: 'a', commandId: 'c1', causationId: 'c1', correlationId: 'c1', traceContext: {}, schemaVersion: 1, version: 9 };
    expect(evolve(stored, e)).toMatchObject({ exists: true, active: false, removed: false });
  });
});
