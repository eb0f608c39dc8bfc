import { open, type FileHandle } from 'node:fs/promises';
import { VirtError } from '../../contracts/errors.ts';

/**
 * A volume's file as raw bytes, for vol-upload and vol-download (libvirt's virStorageVolUpload and
 * virStorageVolDownload on a file volume): whatever the format, the bytes of the file itself.
 */
export class VolumeFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string, mode: 'read' | 'write'): Promise<VolumeFile> {
    // Never created nor truncated: an upload writes into the volume that is there.
    const fh = await open(path, mode === 'write' ? 'r+' : 'r').catch((e: NodeJS.ErrnoException) => {
      throw new VirtError('operation-failed', `cannot open volume '${path}': ${e.message}`);
    });
    return new VolumeFile(path, fh);
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  /** Up to `length` bytes at `at`; fewer at the end of the file. */
  async read(at: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fh.read(buf, 0, length, at);
    return buf.subarray(0, bytesRead);
  }

  async write(at: number, data: Buffer): Promise<void> {
    await this.fh.write(data, 0, data.length, at);
  }

  /**
   * `length` zeros at `at`, written only where the file holds something else: a hole stays a hole
   * (virsh's --sparse). Whatever ends up past the end of the file is made up by `finish`.
   */
  async writeZeros(at: number, length: number): Promise<void> {
    const current = await this.read(at, length);
    if (current.some((b) => b !== 0)) await this.write(at, Buffer.alloc(length));
  }

  /** Makes the file reach `end` at least (zeros skipped at its end count) and puts it on disk. */
  async finish(end: number): Promise<void> {
    if ((await this.size()) < end) await this.fh.truncate(end);
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
