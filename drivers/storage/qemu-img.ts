import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { VirtError } from '../../contracts/errors.ts';

/**
 * Disk images in a storage pool of type dir, through qemu-img: the files the QEMU driver opens
 * with -blockdev. Error texts follow libvirt's storage driver so operators recognise them.
 */

export type VolumeFormat = 'qcow2' | 'raw';

export interface VolumeInfo {
  name: string;
  path: string;
  format: string;
  /** Size the guest sees. */
  capacityBytes: number;
  /** Bytes the image occupies on the host. */
  allocationBytes: number;
  backingFile?: string;
  backingFormat?: string;
}

export interface CreateVolumeOptions {
  name: string;
  /** Defaults to the backing file's size when one is given. */
  capacityBytes?: number;
  format?: VolumeFormat;
  /** A path, or the name of another volume in the same pool. qcow2 only. */
  backingFile?: string;
  /** Probed from the backing file when omitted (qemu-img refuses to guess silently). */
  backingFormat?: string;
  preallocation?: 'off' | 'metadata' | 'falloc' | 'full';
  signal?: AbortSignal;
}

interface ImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
}

const noVolume = (name: string) =>
  new VirtError('no-storage-vol', `Storage volume not found: no storage vol with matching name '${name}'`);

const validName = (name: string): string => {
  if (!name || name.includes('/') || name.includes('\n') || name === '.' || name === '..') {
    throw new VirtError('invalid-arg', `invalid argument: volume name '${name}' cannot contain '/'`);
  }
  return name;
};

export class QemuImgError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
  ) {
    super(stderr.trim().split('\n').filter(Boolean).at(-1) ?? 'qemu-img failed');
    this.name = 'QemuImgError';
  }
}

export class DirPoolVolumes {
  readonly path: string;
  private readonly qemuImg: string;

  constructor(poolPath: string, opts: { qemuImg?: string } = {}) {
    if (!isAbsolute(poolPath)) throw new VirtError('invalid-arg', `invalid argument: pool path '${poolPath}' must be absolute`);
    this.path = resolve(poolPath);
    this.qemuImg = opts.qemuImg ?? 'qemu-img';
  }

  volumePath(name: string): string {
    return join(this.path, validName(name));
  }

  private run(args: string[], signal?: AbortSignal): Promise<string> {
    return new Promise((resolveRun, reject) => {
      execFile(
        this.qemuImg,
        args,
        { maxBuffer: 16 << 20, ...(signal ? { signal } : {}) },
        (err, stdout, stderr) => {
          if (!err) return resolveRun(stdout);
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            return reject(new VirtError('operation-failed', `internal error: ${this.qemuImg} not found`));
          }
          if (err.name === 'AbortError') return reject(new VirtError('timeout', `qemu-img ${args[0]}: operation timed out`));
          reject(new QemuImgError(args, String(stderr || err.message)));
        },
      );
    });
  }

  private async imgInfo(path: string): Promise<ImgInfo> {
    // -U: the image may be open in a running guest, which holds qemu's image lock.
    return JSON.parse(await this.run(['info', '-U', '--output=json', path])) as ImgInfo;
  }

  private toInfo(name: string, path: string, i: ImgInfo, allocated: number): VolumeInfo {
    const backing = i['full-backing-filename'] ?? i['backing-filename'];
    return {
      name,
      path,
      format: i.format,
      capacityBytes: i['virtual-size'],
      allocationBytes: i['actual-size'] ?? allocated,
      ...(backing ? { backingFile: backing } : {}),
      ...(i['backing-filename-format'] ? { backingFormat: i['backing-filename-format'] } : {}),
    };
  }

  async info(name: string): Promise<VolumeInfo> {
    const path = this.volumePath(name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw noVolume(name);
    try {
      return this.toInfo(name, path, await this.imgInfo(path), st.blocks * 512);
    } catch (e) {
      if (e instanceof QemuImgError) throw new VirtError('operation-failed', `internal error: cannot read volume '${name}': ${e.message}`);
      throw e;
    }
  }

  async list(): Promise<VolumeInfo[]> {
    const names = (await readdir(this.path).catch(() => [] as string[])).sort();
    const out: VolumeInfo[] = [];
    for (const n of names) {
      const st = await stat(join(this.path, n)).catch(() => undefined);
      if (!st?.isFile()) continue;
      out.push(await this.info(n).catch(() => ({ name: n, path: join(this.path, n), format: 'raw', capacityBytes: st.size, allocationBytes: st.blocks * 512 })));
    }
    return out;
  }

  async create(o: CreateVolumeOptions): Promise<VolumeInfo> {
    const path = this.volumePath(o.name);
    const format = o.format ?? 'qcow2';
    if (format !== 'qcow2' && format !== 'raw') throw new VirtError('operation-unsupported', `unsupported configuration: volume format '${format}'`);
    if (o.backingFile && format !== 'qcow2') {
      throw new VirtError('operation-unsupported', `unsupported configuration: backing storage not supported for raw volumes`);
    }
    if (o.capacityBytes === undefined && !o.backingFile) {
      throw new VirtError('invalid-arg', 'invalid argument: volume capacity required');
    }
    if (o.capacityBytes !== undefined && (!Number.isSafeInteger(o.capacityBytes) || o.capacityBytes < 0)) {
      throw new VirtError('invalid-arg', `invalid argument: capacity ${o.capacityBytes} is not a byte count`);
    }
    await mkdir(this.path, { recursive: true });
    if (await access(path, constants.F_OK).then(() => true, () => false)) {
      throw new VirtError('operation-failed', `operation failed: storage volume name '${o.name}' already in use.`);
    }

    const args = ['create', '-q', '-f', format];
    const opts: string[] = [];
    if (o.backingFile) {
      const backing = isAbsolute(o.backingFile) ? o.backingFile : this.volumePath(o.backingFile);
      const bst = await stat(backing).catch(() => undefined);
      if (!bst?.isFile()) throw noVolume(o.backingFile);
      const backingFormat = o.backingFormat ?? (await this.imgInfo(backing)).format;
      args.push('-b', backing, '-F', backingFormat);
    }
    if (o.preallocation && o.preallocation !== 'off') opts.push(`preallocation=${o.preallocation}`);
    if (format === 'qcow2') opts.push('compat=1.1');
    if (opts.length) args.push('-o', opts.join(','));
    args.push(path);
    if (o.capacityBytes !== undefined) args.push(String(o.capacityBytes));
    try {
      await this.run(args, o.signal);
    } catch (e) {
      await unlink(path).catch(() => undefined);
      if (e instanceof QemuImgError) throw new VirtError('operation-failed', `internal error: cannot create volume '${o.name}': ${e.message}`);
      throw e;
    }
    return this.info(o.name);
  }

  /** Growing is always allowed; shrinking loses data, so, as with `virsh vol-resize`, it must be asked for. */
  async resize(name: string, capacityBytes: number, opts: { shrink?: boolean; signal?: AbortSignal } = {}): Promise<VolumeInfo> {
    const cur = await this.info(name);
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw new VirtError('invalid-arg', `invalid argument: capacity ${capacityBytes} is not a byte count`);
    }
    if (capacityBytes === cur.capacityBytes) return cur;
    if (capacityBytes < cur.capacityBytes && !opts.shrink) {
      throw new VirtError('invalid-arg', "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified");
    }
    const args = ['resize', '-q', '-f', cur.format];
    if (capacityBytes < cur.capacityBytes) args.push('--shrink');
    args.push(cur.path, String(capacityBytes));
    try {
      await this.run(args, opts.signal);
    } catch (e) {
      if (e instanceof QemuImgError) throw new VirtError('operation-failed', `internal error: cannot resize volume '${name}': ${e.message}`);
      throw e;
    }
    return this.info(name);
  }

  /**
   * `virsh vol-wipe` with libvirt's default algorithm: zeros over every byte of the file, so nothing
   * of the old content is left on the host. A qcow2 image is then made anew, empty, with its
   * capacity and backing file, so the volume stays usable as what it was.
   */
  async wipe(name: string, signal?: AbortSignal): Promise<VolumeInfo> {
    const cur = await this.info(name);
    const size = (await stat(cur.path)).size;
    const f = await open(cur.path, 'r+');
    try {
      const zeros = Buffer.alloc(1 << 20);
      for (let at = 0; at < size; at += zeros.length) {
        signal?.throwIfAborted();
        await f.write(zeros, 0, Math.min(zeros.length, size - at), at);
      }
      await f.sync();
    } finally {
      await f.close();
    }
    if (cur.format === 'qcow2') {
      const args = ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1'];
      if (cur.backingFile) args.push('-b', cur.backingFile, '-F', cur.backingFormat ?? (await this.imgInfo(cur.backingFile)).format);
      args.push(cur.path, String(cur.capacityBytes));
      await this.run(args, signal).catch((e: unknown) => {
        if (e instanceof QemuImgError) throw new VirtError('operation-failed', `internal error: cannot wipe volume '${name}': ${e.message}`);
        throw e;
      });
    }
    return this.info(name);
  }

  /**
   * `virsh vol-clone`: a copy of `source` named `name`, in the source's format (qemu-img convert, so
   * holes stay holes), on top of the same backing file when it has one. The copy is written under a
   * temporary name and renamed, so a file of the new name is always a whole copy: one found there
   * (an earlier attempt of the same task) is reported, anything else at that name is refused.
   */
  async clone(source: string, name: string, signal?: AbortSignal): Promise<VolumeInfo> {
    const src = await this.info(source);
    const path = this.volumePath(name);
    const existing = await this.info(name).catch(() => null);
    if (existing) {
      if (existing.format === src.format && existing.capacityBytes === src.capacityBytes) return existing;
      throw new VirtError('operation-failed', `operation failed: storage volume name '${name}' already in use.`);
    }
    // A name of this attempt's own: a qemu-img of an earlier attempt whose agent was killed may still
    // be writing its copy, and holds the image lock on it. Copies of earlier attempts are dropped.
    const stale = `.${name}.clone-`;
    for (const f of await readdir(this.path)) if (f.startsWith(stale)) await unlink(join(this.path, f)).catch(() => undefined);
    const tmp = join(this.path, `${stale}${process.pid}-${Date.now().toString(36)}`);
    const args = ['convert', '-q', '-U', '-f', src.format, '-O', src.format];
    if (src.backingFile) args.push('-B', src.backingFile, '-F', src.backingFormat ?? (await this.imgInfo(src.backingFile)).format);
    if (src.format === 'qcow2') args.push('-o', 'compat=1.1');
    args.push(src.path, tmp);
    try {
      await this.run(args, signal);
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      if (e instanceof QemuImgError) throw new VirtError('operation-failed', `internal error: cannot clone volume '${source}' to '${name}': ${e.message}`);
      throw e;
    }
    return this.info(name);
  }

  async delete(name: string): Promise<void> {
    const path = this.volumePath(name);
    try {
      await unlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw noVolume(name);
      throw new VirtError('operation-failed', `cannot unlink file '${path}': ${(e as Error).message}`);
    }
  }
}
