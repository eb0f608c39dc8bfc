import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirPoolVolumes } from './qemu-img.ts';

const hasQemuImg = (() => {
  try {
    execFileSync('qemu-img', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

const MiB = 1024 * 1024;

describe.skipIf(!hasQemuImg)('dir pool volumes through qemu-img', () => {
  let dir: string;
  let pool: DirPoolVolumes;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-pool-'));
    pool = new DirPoolVolumes(join(dir, 'images'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('creates a sparse qcow2 volume and reads it back', async () => {
    const v = await pool.create({ name: 'base.qcow2', capacityBytes: 64 * MiB });
    expect(v).toMatchObject({ name: 'base.qcow2', path: join(dir, 'images', 'base.qcow2'), format: 'qcow2', capacityBytes: 64 * MiB });
    expect(v.allocationBytes).toBeLessThan(2 * MiB);
    expect(v.backingFile).toBeUndefined();
    expect(await pool.info('base.qcow2')).toEqual(v);
  });

  it('creates an overlay on a backing volume, inheriting its size and format', async () => {
    const v = await pool.create({ name: 'overlay.qcow2', backingFile: 'base.qcow2' });
    expect(v).toMatchObject({
      format: 'qcow2',
      capacityBytes: 64 * MiB,
      backingFile: join(dir, 'images', 'base.qcow2'),
      backingFormat: 'qcow2',
    });
    const bigger = await pool.create({ name: 'big-overlay.qcow2', backingFile: join(dir, 'images', 'base.qcow2'), capacityBytes: 128 * MiB });
    expect(bigger.capacityBytes).toBe(128 * MiB);
  });

  it('creates raw volumes and refuses backing files for them', async () => {
    const v = await pool.create({ name: 'data.raw', format: 'raw', capacityBytes: 8 * MiB });
    expect(v).toMatchObject({ format: 'raw', capacityBytes: 8 * MiB });
    await expect(pool.create({ name: 'x.raw', format: 'raw', backingFile: 'base.qcow2' })).rejects.toMatchObject({
      code: 'operation-unsupported',
    });
  });

  it('resizes: grows freely, shrinks only when asked', async () => {
    expect((await pool.resize('base.qcow2', 96 * MiB)).capacityBytes).toBe(96 * MiB);
    await expect(pool.resize('base.qcow2', 32 * MiB)).rejects.toMatchObject({ code: 'invalid-arg' });
    expect((await pool.resize('base.qcow2', 32 * MiB, { shrink: true })).capacityBytes).toBe(32 * MiB);
    expect((await pool.resize('data.raw', 16 * MiB)).capacityBytes).toBe(16 * MiB);
  });

  it('lists the pool and deletes volumes', async () => {
    expect((await pool.list()).map((v) => v.name)).toEqual(['base.qcow2', 'big-overlay.qcow2', 'data.raw', 'overlay.qcow2']);
    await pool.delete('data.raw');
    await expect(pool.info('data.raw')).rejects.toMatchObject({ code: 'no-storage-vol' });
    await expect(pool.delete('data.raw')).rejects.toMatchObject({
      code: 'no-storage-vol',
      message: "Storage volume not found: no storage vol with matching name 'data.raw'",
    });
  });

  it('refuses bad names, duplicates, missing sizes and missing backing volumes', async () => {
    await expect(pool.create({ name: '../escape', capacityBytes: MiB })).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(pool.create({ name: 'base.qcow2', capacityBytes: MiB })).rejects.toMatchObject({
      code: 'operation-failed',
      message: "operation failed: storage volume name 'base.qcow2' already in use.",
    });
    await expect(pool.create({ name: 'nosize.qcow2' })).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(pool.create({ name: 'orphan.qcow2', backingFile: 'missing.qcow2' })).rejects.toMatchObject({ code: 'no-storage-vol' });
  });

  it('reports an unreadable image as a failure, not a crash', async () => {
    // qcow2 magic followed by a header that makes no sense.
    await writeFile(join(dir, 'images', 'junk.qcow2'), Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 9]), Buffer.alloc(504, 0xff)]));
    await expect(pool.info('junk.qcow2')).rejects.toMatchObject({ code: 'operation-failed' });
    await pool.delete('junk.qcow2');
  });

  it('wipes a raw volume to zeros over its whole size, and a qcow2 one to an empty image of the same size', async () => {
    await pool.create({ name: 'secret.raw', capacityBytes: 3 * MiB, format: 'raw' });
    await writeFile(join(dir, 'images', 'secret.raw'), Buffer.alloc(3 * MiB, 0x5a));
    const raw = await pool.wipe('secret.raw');
    expect(raw).toMatchObject({ format: 'raw', capacityBytes: 3 * MiB });
    const bytes = await readFile(join(dir, 'images', 'secret.raw'));
    expect(bytes.length).toBe(3 * MiB);
    expect(bytes.every((b) => b === 0)).toBe(true);

    await pool.create({ name: 'data.qcow2', capacityBytes: 8 * MiB, format: 'qcow2' });
    // Guest data written through qemu-io would be the real thing; a raw write into the image file
    // after its header is enough to show the old bytes are gone.
    const path = join(dir, 'images', 'data.qcow2');
    const before = await readFile(path);
    await writeFile(path, Buffer.concat([before, Buffer.alloc(MiB, 0x5a)]));
    const q = await pool.wipe('data.qcow2');
    expect(q).toMatchObject({ format: 'qcow2', capacityBytes: 8 * MiB });
    expect((await readFile(path)).includes(Buffer.alloc(64, 0x5a))).toBe(false);
  });

  it('clones a volume with its content; a retry finds the finished copy, and a different file of that name is refused', async () => {
    await pool.create({ name: 'src.raw', capacityBytes: 2 * MiB, format: 'raw' });
    const content = Buffer.alloc(2 * MiB);
    for (let i = 0; i < content.length; i += 4096) content.write(`block ${i}`, i);
    await writeFile(join(dir, 'images', 'src.raw'), content);
    const copy = await pool.clone('src.raw', 'copy.raw');
    expect(copy).toMatchObject({ name: 'copy.raw', format: 'raw', capacityBytes: 2 * MiB });
    expect((await readFile(join(dir, 'images', 'copy.raw'))).equals(content)).toBe(true);
    expect(await pool.clone('src.raw', 'copy.raw')).toEqual(copy);
    expect((await readdir(join(dir, 'images'))).filter((n) => n.includes('.clone'))).toEqual([]);
    await expect(pool.clone('base.qcow2', 'copy.raw')).rejects.toMatchObject({ code: 'operation-failed' });
    await expect(pool.clone('missing', 'x.raw')).rejects.toMatchObject({ code: 'no-storage-vol' });
  });

  it('clones a qcow2 overlay onto the same backing file', async () => {
    const c = await pool.clone('overlay.qcow2', 'overlay-copy.qcow2');
    expect(c).toMatchObject({ format: 'qcow2', backingFile: join(dir, 'images', 'base.qcow2') });
  });
});
