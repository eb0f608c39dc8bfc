import { join } from 'node:path';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { withOverlays, withSources, type ExternalDisk } from '../../contracts/domain/external-snapshots.ts';
import type { SnapshotTask } from '../../contracts/domain/snapshots.ts';
import type { ObservedState } from '../../contracts/domain/state.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { withLock, type QemuContext } from './context.ts';
import { abandonOverlays, createOverlays, liveCommit, liveSnapshot, offlineCommit } from './external-snapshots.ts';
import { SHUTOFF_FROM_SNAPSHOT, SHUTOFF_UNKNOWN, notRunning } from './guest.ts';
import { terminate } from './guest-events.ts';
import { launch } from './launch.ts';
import { during, liveState, monitor, record } from './monitor.ts';
import type { QmpClient } from './qmp.ts';
import { find } from './reattach.ts';
import { liveCreate, liveDelete, liveRevert, liveTags, offlineCreate, offlineDelete, offlineRevert, offlineTags, snapshotDisks, type Hmp } from './snapshots.ts';
import { isMarked, unmark, type TaskMarker } from './task-markers.ts';

/**
 * An internal snapshot (drivers/qemu/snapshots.ts): savevm of a running guest, disks and memory;
 * qemu-img on each disk of a shut off one. A tag the images already hold is the snapshot taken.
 */
export async function snapshotCreate(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
  if (snap.external) return externalCreate(ctx, def, snap, snap.external, opts);
  return withLock(ctx, def.uuid, async () => {
    const files = snapshotDisks(def);
    const marker = snapshotMarker(ctx, def, snap, opts);
    const d = await find(ctx, def.uuid);
    if (!d) {
      await offlineCreate(files, snap.name, marker, opts.signal);
      return ctx.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
    }
    return during(d, 'snapshot-create', async () => {
      await liveCreate(hmp(await monitor(ctx, d), opts), snap.name, marker);
      return record(ctx, d, await liveState(ctx, d));
    });
  });
}

/**
 * qemuSnapshotRevert: a snapshot with memory is loaded into a running qemu (one is started paused
 * for a shut off guest); one without is applied to the images with qemu stopped, and the guest
 * started from them when asked. Either way the guest is left as `snap.target` says, from snapshot.
 */
export async function snapshotRevert(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
  return withLock(ctx, def.uuid, async () => {
    const files = snapshotDisks(def);
    let d = await find(ctx, def.uuid);
    if (snap.withMemory) {
      if (!d) {
        await launch(ctx, def, { ...opts, paused: true });
        d = await find(ctx, def.uuid);
        if (!d) throw notRunning();
      }
      const live = d;
      return during(live, 'snapshot-revert', async () => {
        const qmp = await monitor(ctx, live);
        await liveRevert(hmp(qmp, opts), snap.name);
        const paused = snap.target === 'paused';
        await qmp.execute(paused ? 'stop' : 'cont');
        return record(ctx, live, { state: paused ? 'paused' : 'running', reason: 'from-snapshot' });
      });
    }
    const live = d;
    if (live) await during(live, 'snapshot-revert', () => terminate(ctx, live, SHUTOFF_FROM_SNAPSHOT, opts));
    await offlineRevert(files, snap.name, opts.signal);
    ctx.stopped.set(def.uuid, SHUTOFF_FROM_SNAPSHOT);
    if (snap.target !== 'running' && snap.target !== 'paused') return SHUTOFF_FROM_SNAPSHOT;
    const started = await launch(ctx, def, { ...opts, paused: snap.target === 'paused' });
    const now = await find(ctx, def.uuid);
    return now ? record(ctx, now, { state: started.state, reason: 'from-snapshot' }) : started;
  });
}

/** delvm of each tag on a running guest, qemu-img on a shut off one's images; a tag gone already is skipped. */
export async function snapshotDelete(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
  if (snap.external) return externalDelete(ctx, def, snap.external, opts);
  return withLock(ctx, def.uuid, async () => {
    const names = snap.names ?? [];
    const d = await find(ctx, def.uuid);
    if (!d) {
      await offlineDelete(snapshotDisks(def), names, opts.signal);
      return ctx.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
    }
    return during(d, 'snapshot-delete', async () => {
      await liveDelete(hmp(await monitor(ctx, d), opts), names);
      return liveState(ctx, d);
    });
  });
}

/**
 * An external disk-only snapshot (drivers/qemu/external-snapshots.ts): the overlays are created,
 * then a running guest's disks switch to them in one transaction; a shut off guest's definition
 * names them from its next start. The task's marker tells a repeated run its own overlays from a
 * file that was there before.
 */
function externalCreate(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, disks: ExternalDisk[], opts: OperationOptions): Promise<ObservedState> {
  return withLock(ctx, def.uuid, async () => {
    await createOverlays(disks, snapshotMarker(ctx, def, snap, opts), opts.signal);
    const d = await find(ctx, def.uuid);
    if (!d) return ctx.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
    return during(d, 'snapshot-create', async () => {
      await liveSnapshot(await monitor(ctx, d), disks, opts);
      // Statistics and a restart by a lifecycle action find the disks where they now are.
      d.rec.def = withOverlays(d.rec.def, disks);
      return record(ctx, d, await liveState(ctx, d));
    });
  });
}

/**
 * A snapshot-create the log records as failed while the host may have taken it. External overlays
 * are merged back or removed (abandonOverlays), so the guest's disks are the ones its definition
 * names. An internal tag stays: it changes nothing the guest uses, a later request of the name
 * takes it anew (liveCreate), and one of the same name may already have done so and be recorded.
 */
export async function snapshotAbandon(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<void> {
  const marker = snapshotMarker(ctx, def, snap, opts);
  if (!isMarked(marker)) return;
  const external = snap.external;
  if (external) {
    await withLock(ctx, def.uuid, async () => {
      const d = await find(ctx, def.uuid);
      const { kept } = await abandonOverlays(d ? await monitor(ctx, d) : undefined, external, opts);
      if (d) d.rec.def = withSources(d.rec.def, external);
      if (kept.length) opts.progress?.(`kept ${kept.join(', ')}: it holds data the guest no longer uses`);
    });
  }
  await unmark(marker);
}

/** The marker of a snapshot task (task-markers.ts): its id, or for a caller without one the request's name and time. */
function snapshotMarker(ctx: QemuContext, def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions): TaskMarker {
  return { dir: join(ctx.qemuDir, 'snapshot-tasks', def.uuid), key: opts.taskId ?? `${snap.name}@${snap.record?.creationTime ?? ''}` };
}

/** The overlays merged back into the images below them: block-commit on a running guest, qemu-img on a shut off one. */
function externalDelete(ctx: QemuContext, def: DomainDefinition, disks: ExternalDisk[], opts: OperationOptions): Promise<ObservedState> {
  return withLock(ctx, def.uuid, async () => {
    const d = await find(ctx, def.uuid);
    if (!d) {
      await offlineCommit(disks, opts.signal);
      return ctx.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
    }
    return during(d, 'snapshot-delete', async () => {
      await liveCommit(await monitor(ctx, d), disks, opts);
      d.rec.def = withSources(d.rec.def, disks);
      return record(ctx, d, await liveState(ctx, d));
    });
  });
}

export async function snapshotNames(ctx: QemuContext, def: DomainDefinition): Promise<string[]> {
  return withLock(ctx, def.uuid, async () => {
    const d = await find(ctx, def.uuid);
    if (d) return liveTags(hmp(await monitor(ctx, d), {}));
    const files = snapshotDisks(def);
    return files.length ? offlineTags(files[0]!) : [];
  });
}

function hmp(qmp: QmpClient, opts: OperationOptions): Hmp {
  // savevm and loadvm copy the guest's memory: minutes for a large one, bounded by the task's deadline.
  return (command) => qmp.execute<string>('human-monitor-command', { 'command-line': command }, { timeoutMs: 600_000, ...(opts.signal ? { signal: opts.signal } : {}) });
}

