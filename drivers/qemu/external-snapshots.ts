import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExternalDisk } from '../../contracts/domain/external-snapshots.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { isMarked, mark, type TaskMarker } from './task-markers.ts';
import { QmpError, type QmpClient } from './qmp.ts';

const run = promisify(execFile);

/**
 * External disk-only snapshots, as libvirt's QEMU driver takes and deletes them: a qcow2 overlay
 * per disk whose backing file is the disk's image, switched to in one QMP transaction of
 * blockdev-snapshot actions on a running guest; merged back with block-commit (an active commit,
 * pivoted with block-job-complete) or, for a shut off guest, qemu-img commit. Every step first looks
 * at what qemu's block graph and the files already show, so a task repeated after the agent was
 * killed finishes the work instead of adding a second overlay or committing twice.
 */

const failed = (msg: string) => new VirtError('operation-failed', `internal error: ${msg}`);

const qemuImg = async (args: string[], signal?: AbortSignal): Promise<string> => {
  try {
    const { stdout } = await run('qemu-img', args, { timeout: 600_000, ...(signal ? { signal } : {}) });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw failed(`qemu-img ${args[0]}: ${(err.stderr || err.message).trim()}`);
  }
};

interface ImageInfo {
  'virtual-size': number;
  format: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
}

/** -U: a running guest holds the image's lock; reading its header is safe. */
export const imageInfo = async (file: string, signal?: AbortSignal): Promise<ImageInfo> =>
  JSON.parse(await qemuImg(['info', '-U', '--output=json', file], signal)) as ImageInfo;

const backsOnto = (info: ImageInfo, source: string): boolean =>
  info.format === 'qcow2' && (info['full-backing-filename'] === source || info['backing-filename'] === source);

/** lstat: a link planted at the overlay's path is something there, not a way to write elsewhere. */
const present = async (file: string) => lstat(file).catch(() => undefined);

/**
 * The overlay files, each a qcow2 image on top of its disk's image (-u: the size is read first, so
 * the image a running guest holds is not opened for writing by qemu-img).
 */
export const createOverlays = async (disks: readonly ExternalDisk[], marker: TaskMarker, signal?: AbortSignal): Promise<void> => {
  // The task's marker (task-markers.ts) lets a repeated run take an overlay it finds as its own,
  // where any other file at that path is refused as libvirt refuses it.
  if (!isMarked(marker)) {
    for (const d of disks) {
      // qemuSnapshotPrepareDiskExternalActive's refusal, in its words; a block device (which libvirt
      // would format as the overlay) is not offered.
      const st = await present(d.overlay);
      if (st?.isBlockDevice()) throw new VirtError('operation-unsupported', `external snapshot file for disk ${d.dev} is a block device: overlays on block devices are not supported: ${d.overlay}`);
      if (st) throw new VirtError('operation-unsupported', `external snapshot file for disk ${d.dev} already exists and is not a block device: ${d.overlay}`);
    }
    await mark(marker, { overlays: disks.map((d) => d.overlay) });
  }
  for (const d of disks) {
    const st = await present(d.overlay);
    if (st && !st.isFile()) throw new VirtError('operation-unsupported', `external snapshot file for disk ${d.dev} already exists and is not a block device: ${d.overlay}`);
    if (st) {
      const info = await imageInfo(d.overlay, signal).catch(() => undefined);
      if (info && backsOnto(info, d.source)) continue;
      // A file this task began and did not finish (qemu-img killed mid-way): made again.
      if (!info || info.format !== 'qcow2') await rm(d.overlay, { force: true });
      else throw new VirtError('operation-unsupported', `external snapshot file for disk ${d.dev} already exists and is not a block device: ${d.overlay}`);
    }
    const size = (await imageInfo(d.source, signal))['virtual-size'];
    await qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', d.source, '-F', d.format, d.overlay, String(size)], signal);
  }
};

// ---------------------------------------------------------------------------------------------
// The running guest's block graph

interface BlockEntry {
  device: string;
  qdev?: string;
  inserted?: { file: string; 'node-name': string; drv: string };
}

interface NamedNode {
  'node-name': string;
  file: string;
  drv: string;
}

interface BlockJob {
  device: string;
  type: string;
  ready?: boolean;
  status?: string;
  offset: number;
  len: number;
}

const blocks = (qmp: QmpClient) => qmp.execute<BlockEntry[]>('query-block');
const namedNodes = (qmp: QmpClient) => qmp.execute<NamedNode[]>('query-named-block-nodes', { flat: true });

/** The drive whose active image is `a` or `b`, and which of them that is. */
const activeOf = (list: readonly BlockEntry[], a: string, b: string): { entry: BlockEntry; file: string } | undefined => {
  for (const entry of list) {
    const file = entry.inserted?.file;
    if (file === a || file === b) return { entry, file };
  }
  return undefined;
};

/** Node names for an overlay: libvirt's style, short enough for qemu's 31 characters. */
const overlayNodes = (d: ExternalDisk) => {
  const h = createHash('sha256').update(d.overlay).digest('hex').slice(0, 8);
  return { storage: `vp-${d.dev.slice(0, 8)}-${h}-s`, format: `vp-${d.dev.slice(0, 8)}-${h}-f` };
};

/**
 * Opens each overlay (without its backing: blockdev-snapshot attaches the active image below it) and
 * switches every disk not yet on its overlay in one transaction, as libvirt does, so the disks' data
 * stays consistent across them.
 */
export const liveSnapshot = async (qmp: QmpClient, disks: readonly ExternalDisk[], opts: OperationOptions = {}): Promise<void> => {
  const list = await blocks(qmp);
  const actions: Array<{ type: string; data: Record<string, unknown> }> = [];
  const names = new Set((await namedNodes(qmp)).map((n) => n['node-name']));
  for (const d of disks) {
    const active = activeOf(list, d.source, d.overlay);
    if (!active) throw failed(`disk ${d.dev}: qemu has neither ${d.source} nor ${d.overlay} open`);
    if (active.file === d.overlay) continue;
    const ids = overlayNodes(d);
    opts.progress?.(`opening ${d.overlay}`);
    if (!names.has(ids.storage)) {
      await qmp.execute('blockdev-add', { driver: 'file', filename: d.overlay, 'node-name': ids.storage, 'auto-read-only': true, discard: 'unmap' });
    }
    if (!names.has(ids.format)) {
      await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': ids.format, file: ids.storage, 'read-only': false, backing: null });
    }
    actions.push({ type: 'blockdev-snapshot', data: { node: active.entry.inserted!['node-name'], overlay: ids.format } });
  }
  if (actions.length) {
    opts.progress?.(`switching ${actions.length} disk(s) to their overlays`);
    await qmp.execute('transaction', { actions });
  }
};

/** Closes the nodes the monitor opened for an overlay (a pivot leaves them unused, not closed). */
const closeOverlay = async (qmp: QmpClient, overlay: string): Promise<void> => {
  const nodes = (await namedNodes(qmp)).filter((n) => n.file === overlay);
  // The format node first: the protocol node below it is in use until it goes.
  const ordered = [...nodes.filter((n) => n.drv !== 'file'), ...nodes.filter((n) => n.drv === 'file')];
  for (const n of ordered) {
    await qmp.execute('blockdev-del', { 'node-name': n['node-name'] }).catch((e: unknown) => {
      // Nodes qemu opened itself (from an image's header) are not the monitor's to close: they go with the pivot.
      if (!(e instanceof QmpError)) throw e;
    });
  }
};

const jobId = (d: ExternalDisk) => `vp-commit-${d.dev}`.slice(0, 31);

/**
 * An active block commit of each disk's overlay into its image, one disk at a time: once the job is
 * ready, block-job-complete pivots the drive onto the image. A job already running (the agent was
 * killed while it waited) is waited for rather than started again; a disk already back on its image
 * is done. The overlay file goes once nothing has it open.
 */
export const liveCommit = async (qmp: QmpClient, disks: readonly ExternalDisk[], opts: OperationOptions = {}): Promise<void> => {
  for (const d of disks) {
    const id = jobId(d);
    const jobs = async () => (await qmp.execute<BlockJob[]>('query-block-jobs')).find((j) => j.device === id);
    let started = false;
    for (;;) {
      if (opts.signal?.aborted) throw failed(`block commit of disk ${d.dev} did not finish before the deadline`);
      const active = activeOf(await blocks(qmp), d.source, d.overlay);
      const job = await jobs();
      if (!active) throw failed(`disk ${d.dev}: qemu has neither ${d.source} nor ${d.overlay} open`);
      if (active.file === d.source && !job) break;
      if (!job) {
        if (started) throw failed(`block commit of disk ${d.dev} ended without pivoting to ${d.source}`);
        const base = (await namedNodes(qmp)).filter((n) => n.file === d.source);
        const node = base.find((n) => (d.format === 'raw' ? n.drv === 'file' || n.drv === 'host_device' : n.drv === d.format)) ?? base[0];
        if (!node) throw failed(`disk ${d.dev}: ${d.source} is not below ${d.overlay} in qemu's block graph`);
        opts.progress?.(`starting the block commit of disk ${d.dev}`);
        await qmp.execute('block-commit', { 'job-id': id, device: active.entry.inserted!['node-name'], 'base-node': node['node-name'] });
        started = true;
      } else if (job.ready || job.status === 'ready') {
        opts.progress?.(`pivoting disk ${d.dev} to ${d.source}`, job.len ? job.offset / job.len : undefined);
        await qmp.execute('block-job-complete', { device: id }).catch((e: unknown) => {
          // Completed already by a run before this one: the next look sees the pivot.
          if (!(e instanceof QmpError)) throw e;
        });
        started = true;
      } else {
        started = true;
        opts.progress?.(`merging ${d.overlay} into ${d.source}`, job.len ? job.offset / job.len : undefined);
      }
      await sleep(200);
    }
    await closeOverlay(qmp, d.overlay);
    await rm(d.overlay, { force: true });
  }
};

/**
 * qemu-img commit of each overlay into the image below it; an overlay already gone was merged by
 * an earlier run. A commit repeated (the agent killed before the file went) writes nothing twice:
 * qemu-img empties the overlay it committed.
 */
export const offlineCommit = async (disks: readonly ExternalDisk[], signal?: AbortSignal): Promise<void> => {
  for (const d of disks) {
    if (!existsSync(d.overlay)) continue;
    const info = await imageInfo(d.overlay, signal);
    if (!backsOnto(info, d.source)) throw failed(`${d.overlay} is not an overlay of ${d.source}: it is not merged`);
    await qemuImg(['commit', '-q', '-f', 'qcow2', d.overlay], signal);
    await rm(d.overlay, { force: true });
  }
};

/** Whether the overlay holds any data of its own (anything in its top layer), per qemu-img map. */
const holdsData = async (overlay: string, signal?: AbortSignal): Promise<boolean> => {
  const map = JSON.parse(await qemuImg(['map', '-U', '--output=json', overlay], signal)) as Array<{ depth: number; data: boolean }>;
  return map.some((r) => r.depth === 0 && r.data);
};

/**
 * Undoes an external snapshot whose task the log will never record (its deadline passed while the
 * agent was away), so that the disks are what the log says they are: a running guest switched to
 * an overlay is merged back onto its image (what it wrote since is kept), an overlay opened but not
 * switched to is closed, and an overlay file of the task's own that nobody writes to goes. One that
 * holds data while the guest does not use it (the guest has since restarted on its image) is left
 * where it is, named in `kept`, since merging it now would write old data over newer.
 */
export const abandonOverlays = async (
  qmp: QmpClient | undefined,
  disks: readonly ExternalDisk[],
  opts: OperationOptions = {},
): Promise<{ kept: string[] }> => {
  const kept: string[] = [];
  for (const d of disks) {
    const active = qmp ? activeOf(await blocks(qmp), d.source, d.overlay) : undefined;
    if (qmp && active?.file === d.overlay) {
      await liveCommit(qmp, [d], opts);
      continue;
    }
    if (qmp) await closeOverlay(qmp, d.overlay);
    if (!existsSync(d.overlay)) continue;
    const info = await imageInfo(d.overlay, opts.signal).catch(() => undefined);
    if (info && backsOnto(info, d.source) && (await holdsData(d.overlay, opts.signal))) kept.push(d.overlay);
    else await rm(d.overlay, { force: true });
  }
  return { kept };
};
