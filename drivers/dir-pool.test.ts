import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageVolumeDefinition } from '../contracts/storage/definition.ts';
import { DirPool } from './dir-pool.ts';

const hasQemuImg = (() => {
  try {
    execFileSync('qemu-img', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

const MiB = 1024 * 1024;

describe.skipIf(!hasQemuImg)('a dir pool on this host', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-dirpool-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('build creates the directory with 0711, or the mode asked for; an existing one keeps its mode', async () => {
    await new DirPool(join(dir, 'a', 'b')).build();
    expect((await stat(join(dir, 'a', 'b'))).mode & 0o777).toBe(0o711);
    await new DirPool(join(dir, 'm')).build({ mode: '0750' });
    expect((await stat(join(dir, 'm'))).mode & 0o777).toBe(0o750);
    await mkdir(join(dir, 'e'), { mode: 0o755 });
    await new DirPool(join(dir, 'e')).build();
    expect((await stat(join(dir, 'e'))).mode & 0o777).toBe(0o755);
  });

  it('start needs the directory, and reports what is in it with the filesystem figures', async () => {
    await expect(new DirPool(join(dir, 'missing')).start()).rejects.toMatchObject({
      code: 'operation-failed',
      message: `cannot open directory '${join(dir, 'missing')}': No such file or directory`,
    });
    const pool = new DirPool(join(dir, 'p'));
    await pool.build();
    await pool.createVolume(StorageVolumeDefinition.parse({ name: 'a.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } }));
    const r = await pool.start();
    expect(r.volumes).toEqual([expect.objectContaining({ name: 'a.qcow2', type: 'file', format: 'qcow2', capacityBytes: MiB })]);
    expect(r.stats!.capacityBytes).toBeGreaterThanOrEqual(r.stats!.availableBytes);
  });

  it('creating again with the same format and size is done; anything else at that name is refused', async () => {
    const pool = new DirPool(join(dir, 'p'));
    const again = await pool.createVolume(StorageVolumeDefinition.parse({ name: 'a.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } }));
    expect(again).toMatchObject({ name: 'a.qcow2', capacityBytes: MiB });
    await expect(pool.createVolume(StorageVolumeDefinition.parse({ name: 'a.qcow2', capacityBytes: 2 * MiB, target: { format: 'qcow2' } }))).rejects.toMatchObject({
      code: 'operation-failed',
      message: "storage volume 'a.qcow2' exists already",
    });
    await expect(pool.createVolume(StorageVolumeDefinition.parse({ name: 'a.qcow2', capacityBytes: MiB, target: { format: 'raw' } }))).rejects.toMatchObject({
      code: 'operation-failed',
    });
  });

  it('an overlay names its backing file; a raw volume without <allocation> is fully allocated', async () => {
    const pool = new DirPool(join(dir, 'p'));
    const o = await pool.createVolume(
      StorageVolumeDefinition.parse({ name: 'o.qcow2', capacityBytes: 2 * MiB, target: { format: 'qcow2' }, backingStore: { path: join(dir, 'p', 'a.qcow2'), format: 'qcow2' } }),
    );
    expect(o.backingStore).toEqual({ path: join(dir, 'p', 'a.qcow2'), format: 'qcow2' });
    const r = await pool.createVolume(StorageVolumeDefinition.parse({ name: 'r.img', capacityBytes: 4 * MiB, allocationBytes: 4 * MiB }));
    expect(r).toMatchObject({ format: 'raw', capacityBytes: 4 * MiB });
    expect(r.allocationBytes).toBeGreaterThanOrEqual(4 * MiB);
  });

  it('deleting is idempotent', async () => {
    const { pool, name } = DirPool.of(join(dir, 'p', 'o.qcow2'));
    await pool.deleteVolume(name);
    await pool.deleteVolume(name);
    await expect(stat(join(dir, 'p', 'o.qcow2'))).rejects.toThrow();
  });
});
