import { mkdir, mkdtemp, readFile, rm, symlink, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuImageHeader, readImageHeader, resolveImagePath, testImageHeader, writeImage } from './save-image.ts';

/** The image directories rule, and libvirt's two image layouts. */
describe('saved images', () => {
  let base: string;
  let root: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'vp-img-'));
    root = join(base, 'save');
    await mkdir(join(base, 'outside'));
  });
  afterAll(() => rm(base, { recursive: true, force: true }));

  it('resolves only paths inside the allowed directories, and no link leads out of them', async () => {
    expect(await resolveImagePath([root], join(root, 'a.sav'))).toBe(join(root, 'a.sav'));
    // A bare name is a file of the first directory; a relative path with a directory is refused.
    expect(await resolveImagePath([root], 'a.sav')).toBe(join(root, 'a.sav'));
    await expect(resolveImagePath([], 'a.sav')).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(resolveImagePath([root], 'sub/a.sav')).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(resolveImagePath([root], '..')).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(resolveImagePath([root], join(root, '..', 'outside', 'a.sav'))).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(resolveImagePath([root], '/etc/passwd')).rejects.toMatchObject({ code: 'invalid-arg', message: /outside the directories/ });
    // A root that is a prefix of another directory's name is not that directory.
    await expect(resolveImagePath([root], `${root}x/a.sav`)).rejects.toMatchObject({ code: 'invalid-arg' });
    await symlink(join(base, 'outside'), join(root, 'escape'));
    await expect(resolveImagePath([root], join(root, 'escape', 'a.sav'))).rejects.toMatchObject({ code: 'invalid-arg', message: /through a link/ });
    await expect(resolveImagePath([root], join(root, 'nodir', 'a.sav'))).rejects.toMatchObject({ code: 'operation-failed' });
  });

  it("writes the test driver's layout and reads it back, with libvirt's checks", async () => {
    const f = join(root, 't.sav');
    await writeImage(f, testImageHeader("<domain type='test'><name>x</name></domain>"));
    const bytes = await readFile(f);
    expect(bytes.subarray(0, 15).toString('latin1')).toBe('TestGuestMagic\0');
    expect(bytes.readInt32LE(15)).toBe(bytes.length - 19);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(await readImageHeader(f)).toMatchObject({ format: 'test', xml: "<domain type='test'><name>x</name></domain>", running: true });

    const bad = join(root, 'bad.sav');
    await writeFile(bad, 'not an image at all, not even close to one, no magic here at all.........................................');
    await expect(readImageHeader(bad)).rejects.toMatchObject({ code: 'internal-error', message: 'mismatched header magic' });
    const long = Buffer.concat([Buffer.from('TestGuestMagic\0', 'latin1'), Buffer.from([0x01, 0x20, 0, 0])]);
    await writeFile(bad, long);
    await expect(readImageHeader(bad)).rejects.toMatchObject({ message: 'length of metadata out of range' });
    await writeFile(bad, Buffer.concat([Buffer.from('TestGuestMagic\0', 'latin1'), Buffer.from([100, 0, 0, 0]), Buffer.from('<domain')]));
    await expect(readImageHeader(bad)).rejects.toMatchObject({ message: `incomplete metadata in '${bad}'` });
    await expect(readImageHeader(join(root, 'none.sav'))).rejects.toMatchObject({ message: `cannot read domain image '${join(root, 'none.sav')}': No such file or directory` });
  });

  it("writes libvirt's QEMU header, recording the definition and whether the guest ran", async () => {
    const f = join(root, 'q.sav');
    await writeImage(f, qemuImageHeader('<domain/>', false), async (_part, fh) => {
      await fh.write(Buffer.from('STATE'), 0, 5, 96 + 10);
    });
    const h = await readImageHeader(f);
    expect(h).toEqual({ format: 'qemu', xml: '<domain/>', running: false, dataOffset: 96 + 10 });
    expect((await readFile(f)).subarray(h.dataOffset).toString()).toBe('STATE');
  });

  it('replaces a link planted at the target instead of writing through it, and never reads through one', async () => {
    const victim = join(base, 'outside', 'victim');
    await writeFile(victim, 'precious');
    const target = join(root, 'planted.sav');
    await symlink(victim, target);
    await writeImage(target, testImageHeader('<domain/>'));
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await readImageHeader(target)).xml).toBe('<domain/>');
    const link = join(root, 'link.sav');
    await symlink(join(root, 't.sav'), link);
    await expect(readImageHeader(link)).rejects.toMatchObject({ message: /Too many levels of symbolic links/ });
  });
});
