import { chmod, chown, mkdir, rmdir, stat, statfs } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { isVirtError, VirtError } from '../contracts/errors.ts';
import type { Permissions, StorageVolumeDefinition } from '../contracts/storage/definition.ts';
import type { PoolStats, VolumeInfo } from '../contracts/storage/events.ts';
import { DirPoolVolumes, type VolumeInfo as ImageInfo } from './storage/index.ts';

/**
 * A storage pool of type dir on this host: what a host agent does for pool build, start, volume
 * create and delete. Volumes go through drivers/storage (qemu-img); this adds what a pool needs
 * around them: building the directory with libvirt's permission rules, checking it on start,
 * filesystem statistics, and idempotence, so a redelivered task never does its work twice.
 */

/** libvirt's VIR_STORAGE_DEFAULT_POOL_PERM_MODE, for a directory it creates without a mode. */
const DEFAULT_POOL_MODE = 0o711;

export interface PoolStartResult {
  stats?: PoolStats;
  volumes: VolumeInfo[];
}

const toInfo = (i: ImageInfo): VolumeInfo => ({
  name: i.name,
  path: i.path,
  type: 'file',
  format: i.format,
  capacityBytes: i.capacityBytes,
  allocationBytes: i.allocationBytes,
  ...(i.backingFile ? { backingStore: { path: i.backingFile, ...(i.backingFormat ? { format: i.backingFormat } : {}) } } : {}),
});

const failed = (message: string) => new VirtError('operation-failed', message);

export class DirPool {
  private readonly volumes: DirPoolVolumes;

  constructor(
    readonly path: string,
    opts: { qemuImg?: string } = {},
  ) {
    this.volumes = new DirPoolVolumes(path, opts);
  }

  /** The pool holding a volume, from the volume's path (`<pool>/<name>`). */
  static of(volumePath: string, opts: { qemuImg?: string } = {}): { pool: DirPool; name: string } {
    return { pool: new DirPool(dirname(volumePath), opts), name: basename(volumePath) };
  }

  /**
   * `virsh pool-build` for a dir pool: mkdir -p. As libvirt does, an existing directory keeps its
   * mode unless the definition names one; a new one without a mode gets 0711.
   */
  async build(permissions?: Permissions): Promise<void> {
    const existed = await this.isDirectory();
    try {
      await mkdir(this.path, { recursive: true });
      const mode = permissions?.mode !== undefined ? parseInt(permissions.mode, 8) : existed ? undefined : DEFAULT_POOL_MODE;
      if (mode !== undefined) await chmod(this.path, mode);
      const owner = permissions?.owner ?? -1;
      const group = permissions?.group ?? -1;
      if (owner !== -1 || group !== -1) await chown(this.path, owner, group);
    } catch (e) {
      throw failed(`cannot create path '${this.path}': ${(e as Error).message}`);
    }
  }

  /** Starting a dir pool checks its directory and refreshes: the volumes are what is in it. */
  async start(): Promise<PoolStartResult> {
    if (!(await this.isDirectory())) throw failed(`cannot open directory '${this.path}': No such file or directory`);
    return { volumes: (await this.volumes.list()).map(toInfo), ...(await this.statsOrNothing()) };
  }

  /** `virsh pool-refresh`: the volumes are what is in the directory now. */
  refresh(): Promise<PoolStartResult> {
    return this.start();
  }

  /**
   * `virsh pool-delete` for a dir pool: its directory is removed, as libvirt does, only when empty.
   * A directory already gone is done (a repeated task).
   */
  async delete(): Promise<void> {
    await rmdir(this.path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return;
      const why = e.code === 'ENOTEMPTY' ? 'Directory not empty' : e.message;
      throw failed(`failed to remove pool '${this.path}': ${why}`);
    });
  }

  async resizeVolume(name: string, capacityBytes: number, shrink: boolean, signal?: AbortSignal): Promise<VolumeInfo & { stats?: PoolStats }> {
    return { ...toInfo(await this.volumes.resize(name, capacityBytes, { shrink, ...(signal ? { signal } : {}) })), ...(await this.statsOrNothing()) };
  }

  async wipeVolume(name: string, signal?: AbortSignal): Promise<VolumeInfo & { stats?: PoolStats }> {
    return { ...toInfo(await this.volumes.wipe(name, signal)), ...(await this.statsOrNothing()) };
  }

  async cloneVolume(source: string, name: string, signal?: AbortSignal): Promise<VolumeInfo & { stats?: PoolStats }> {
    return { ...toInfo(await this.volumes.clone(source, name, signal)), ...(await this.statsOrNothing()) };
  }

  async stats(): Promise<PoolStats> {
    const s = await statfs(this.path);
    return {
      capacityBytes: s.blocks * s.bsize,
      allocationBytes: (s.blocks - s.bfree) * s.bsize,
      availableBytes: s.bavail * s.bsize,
    };
  }

  private async statsOrNothing(): Promise<{ stats?: PoolStats }> {
    return this.stats().then(
      (stats) => ({ stats }),
      () => ({}),
    );
  }

  /**
   * Creates the volume, or reports the one already there when it matches (same format and size, and
   * the same backing file when one is asked for): that is the file an earlier attempt of the same
   * task made. Anything else at that path is someone else's file, and it stays untouched.
   */
  async createVolume(v: StorageVolumeDefinition, signal?: AbortSignal): Promise<VolumeInfo & { stats?: PoolStats }> {
    const name = v.name;
    const format = (v.target?.format ?? 'raw') as 'raw' | 'qcow2';
    const existing = await this.volumes.info(name).catch((e) => {
      if (isVirtError(e) && e.code === 'no-storage-vol') return null;
      throw e;
    });
    if (existing) {
      const same =
        existing.format === format &&
        existing.capacityBytes === v.capacityBytes &&
        (v.backingStore?.path === undefined || existing.backingFile === v.backingStore.path);
      if (!same) throw failed(`storage volume '${name}' exists already`);
      return { ...toInfo(existing), ...(await this.statsOrNothing()) };
    }
    // libvirt allocates a raw file up to <allocation>; qemu-img can give all or nothing.
    const preallocate = format === 'raw' && v.allocationBytes !== undefined && v.allocationBytes >= v.capacityBytes && v.capacityBytes > 0;
    const info = await this.volumes.create({
      name,
      capacityBytes: v.capacityBytes,
      format,
      ...(v.backingStore?.path ? { backingFile: v.backingStore.path } : {}),
      ...(v.backingStore?.format ? { backingFormat: v.backingStore.format } : {}),
      ...(preallocate ? { preallocation: 'falloc' as const } : {}),
      ...(signal ? { signal } : {}),
    });
    return { ...toInfo(info), ...(await this.statsOrNothing()) };
  }

  /** Deleting a volume that is already gone is done. */
  async deleteVolume(name: string): Promise<{ stats?: PoolStats }> {
    await this.volumes.delete(name).catch((e) => {
      if (isVirtError(e) && e.code === 'no-storage-vol') return;
      throw e;
    });
    return this.statsOrNothing();
  }

  private async isDirectory(): Promise<boolean> {
    return (await stat(this.path).catch(() => undefined))?.isDirectory() ?? false;
  }
}
