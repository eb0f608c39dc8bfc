import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { withOverlays, type ExternalDisk } from '../../contracts/domain/external-snapshots.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from '../../test/fixtures/guest/build.ts';
import { QemuDriver } from './driver.ts';
import { qemuAvailable } from './host.ts';

const run = promisify(execFile);
const avail = await qemuAvailable();

/**
 * External disk-only snapshots on a real guest and real images: the overlay takes the writes while
 * the image below stays as it was, the merge brings them back into the image, and each step run
 * twice (as a task redelivered after the agent was killed) does its work once.
 */
describe.skipIf(!avail.ok)('QemuDriver external snapshots', () => {
  let dir: string;
  let driver: QemuDriver;
  let guest: TinyGuest;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-qext-'));
    driver = new QemuDriver({ stateDir: join(dir, 'state'), destroyGraceMs: 3000 });
    guest = await buildTinyGuest();
  }, 300_000);
  afterAll(async () => {
    // A failed step leaves its guest running: it must not outlive the test.
    for (const d of (await driver?.list().catch(() => [])) ?? []) await driver.destroy(d.uuid).catch(() => undefined);
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
  const info = async (file: string) => JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', '--backing-chain', file])).stdout) as Array<{ filename: string; 'backing-filename'?: string }>;
  /** The first sector of an image as the guest sees it, read with qemu-img alone. */
  const firstLine = async (file: string) => {
    const out = join(dir, `read-${Date.now()}.raw`);
    await run('qemu-img', ['convert', '-U', '-O', 'raw', file, out]);
    const head = (await readFile(out)).subarray(0, 512).toString('latin1');
    await rm(out);
    return head.split('\n')[0];
  };

  /** A shell on the guest's serial console: each command's answer is computed, so its echo never matches. */
  const shell = async (uuid: string) => {
    const { stream } = await driver.openConsole(uuid);
    let out = '';
    stream.on('data', (b: Buffer) => (out += b.toString('latin1')));
    let n = 0;
    const ask = async (cmd: string): Promise<string> => {
      n += 1;
      out = '';
      stream.write(`${cmd}; echo "end$((${n}*1000+7))"\r`);
      const marker = `end${n * 1000 + 7}`;
      const until = Date.now() + 30_000;
      while (!out.includes(`\n${marker}`)) {
        if (Date.now() > until) throw new Error(`no answer to ${cmd}: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return out;
    };
    return { ask, close: () => (stream as Duplex).destroy() };
  };
  const write = (sh: { ask: (c: string) => Promise<string> }, word: string) => sh.ask(`echo ${word} | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null; sync`);
  const read = async (sh: { ask: (c: string) => Promise<string> }) =>
    /disk=\[(\w*)\]/.exec(await sh.ask('echo 3 > /proc/sys/vm/drop_caches; echo "disk=[$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n1)]"'))?.[1];

  const guestDef = (name: string, disk: string): DomainDefinition =>
    parseDomainXml(
      tinyGuestXml(guest, {
        name,
        type: avail.kvm ? 'kvm' : 'qemu',
        extraCmdline: 'vp.disk=1',
        devicesXml: `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`,
      }),
    );

  it('running: the overlay takes the writes, the image below stays; the merge brings them back and the overlay goes; each step twice does it once', async () => {
    const base = join(dir, 'run.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    const def = guestDef('qext', base);
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    let sh = await shell(def.uuid);
    await write(sh, 'alpha');

    const overlay = join(dir, 'run.s1');
    const external: ExternalDisk[] = [{ dev: 'vda', source: base, format: 'qcow2', overlay }];
    const task = { name: 's1', record: { name: 's1', state: 'disk-snapshot' as const, creationTime: 1700000000 }, external };
    expect(await driver.snapshotCreate(def, task)).toEqual({ state: 'running', reason: 'booted' });
    const before = await sha(base);
    // Again, as a redelivered task: the disk is on its overlay already; no second overlay, no second switch.
    await driver.snapshotCreate(def, task);
    expect((await info(overlay)).map((x) => x.filename)).toEqual([overlay, base]);
    expect((await info(overlay))[0]!['backing-filename']).toBe(base);

    await write(sh, 'bravo');
    expect(await read(sh)).toBe('bravo');
    expect(await sha(base)).toBe(before);
    expect(await firstLine(base)).toBe('alpha');
    const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', overlay])).stdout) as Array<{ depth: number; data: boolean }>;
    expect(map.some((m) => m.depth === 0 && m.data), JSON.stringify(map)).toBe(true);

    // The merge: an active commit, pivoted back onto the image; asked twice, it merges once.
    const del = { name: 's1', names: ['s1'], external };
    expect(await driver.snapshotDelete(def, del)).toEqual({ state: 'running', reason: 'booted' });
    await driver.snapshotDelete(def, del);
    expect(existsSync(overlay)).toBe(false);
    expect(await firstLine(base)).toBe('bravo');
    expect(await read(sh)).toBe('bravo');
    await write(sh, 'charlie');
    expect(await firstLine(base)).toBe('charlie');
    sh.close();
    await driver.destroy(def.uuid);

    // Shut off: qemu-img creates the overlay; the guest started from it writes there; qemu-img commit merges.
    const overlay2 = join(dir, 'run.s2');
    const ext2: ExternalDisk[] = [{ dev: 'vda', source: base, format: 'qcow2', overlay: overlay2 }];
    const task2 = { name: 's2', record: { name: 's2', state: 'disk-snapshot' as const, creationTime: 1700000100 }, external: ext2 };
    expect(await driver.snapshotCreate(def, task2)).toMatchObject({ state: 'shutoff' });
    await driver.snapshotCreate(def, task2);
    const onOverlay = withOverlays(def, ext2);
    await driver.start(onOverlay);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    sh = await shell(def.uuid);
    expect(await read(sh)).toBe('charlie');
    await write(sh, 'delta');
    sh.close();
    await driver.destroy(def.uuid);
    expect(await firstLine(base)).toBe('charlie');
    expect(await firstLine(overlay2)).toBe('delta');
    await driver.snapshotDelete(onOverlay, { name: 's2', names: ['s2'], external: ext2 });
    await driver.snapshotDelete(onOverlay, { name: 's2', names: ['s2'], external: ext2 });
    expect(existsSync(overlay2)).toBe(false);
    expect(await firstLine(base)).toBe('delta');

    // Taken shut off, merged running: qemu opened the image below from the overlay's header, under a
    // name of its own, and the commit finds it by its file.
    const overlay3 = join(dir, 'run.s3');
    const ext3: ExternalDisk[] = [{ dev: 'vda', source: base, format: 'qcow2', overlay: overlay3 }];
    await driver.snapshotCreate(def, { name: 's3', record: { name: 's3', state: 'disk-snapshot' as const, creationTime: 1700000150 }, external: ext3 });
    const onOverlay3 = withOverlays(def, ext3);
    await driver.start(onOverlay3);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    sh = await shell(def.uuid);
    await write(sh, 'echo');
    expect(await firstLine(base)).toBe('delta');
    await driver.snapshotDelete(onOverlay3, { name: 's3', names: ['s3'], external: ext3 });
    expect(existsSync(overlay3)).toBe(false);
    expect(await firstLine(base)).toBe('echo');
    await write(sh, 'foxtrot');
    expect(await firstLine(base)).toBe('foxtrot');
    sh.close();
    await driver.destroy(def.uuid);
  }, 400_000);

  it('a merge whose agent went away with the commit job running is finished by the next one: one job, one pivot', async () => {
    const base = join(dir, 'int.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    const def = guestDef('qint', base);
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    const overlay = join(dir, 'int.s1');
    const external: ExternalDisk[] = [{ dev: 'vda', source: base, format: 'qcow2', overlay }];
    await driver.snapshotCreate(def, { name: 's1', record: { name: 's1', state: 'disk-snapshot' as const, creationTime: 1700000400 }, external });
    const sh = await shell(def.uuid);
    await write(sh, 'echo');
    sh.close();

    // The first agent stops waiting once the job runs (its deadline, or its end): the job stays in qemu.
    const stop = new AbortController();
    const progress = (m: string) => m.startsWith('starting the block commit') && stop.abort();
    await expect(driver.snapshotDelete(def, { name: 's1', names: ['s1'], external }, { signal: stop.signal, progress })).rejects.toMatchObject({ code: 'operation-failed' });
    expect(existsSync(overlay)).toBe(true);
    await driver.close();

    // The next agent finds the job (ready, not pivoted) and completes it rather than starting another.
    driver = new QemuDriver({ stateDir: join(dir, 'state'), destroyGraceMs: 3000 });
    const seen: string[] = [];
    await driver.snapshotDelete(def, { name: 's1', names: ['s1'], external }, { progress: (m) => seen.push(m) });
    expect(seen.some((m) => m.startsWith('pivoting'))).toBe(true);
    expect(seen.filter((m) => m.startsWith('starting the block commit'))).toEqual([]);
    expect(existsSync(overlay)).toBe(false);
    expect(await firstLine(base)).toBe('echo');
    await driver.destroy(def.uuid);
  }, 300_000);

  it('a chain of two on a running guest: the last merges into the first overlay, then the first into the image', async () => {
    const base = join(dir, 'chain.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    const def = guestDef('qchain', base);
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    const sh = await shell(def.uuid);
    const o1 = join(dir, 'chain.c1');
    const o2 = join(dir, 'chain.c2');
    const e1: ExternalDisk[] = [{ dev: 'vda', source: base, format: 'qcow2', overlay: o1 }];
    const e2: ExternalDisk[] = [{ dev: 'vda', source: o1, format: 'qcow2', overlay: o2 }];
    await driver.snapshotCreate(def, { name: 'c1', record: { name: 'c1', state: 'disk-snapshot' as const, creationTime: 1700000500 }, external: e1 });
    await write(sh, 'one');
    const d1 = withOverlays(def, e1);
    await driver.snapshotCreate(d1, { name: 'c2', record: { name: 'c2', state: 'disk-snapshot' as const, creationTime: 1700000501 }, external: e2 });
    await write(sh, 'two');
    expect((await info(o2)).map((x) => x.filename)).toEqual([o2, o1, base]);
    const d2 = withOverlays(d1, e2);
    await driver.snapshotDelete(d2, { name: 'c2', names: ['c2'], external: e2 });
    expect(existsSync(o2)).toBe(false);
    expect(await firstLine(o1)).toBe('two');
    expect(await firstLine(base)).toMatch(/^\0*$/);
    await driver.snapshotDelete(d1, { name: 'c1', names: ['c1'], external: e1 });
    expect(existsSync(o1)).toBe(false);
    expect(await firstLine(base)).toBe('two');
    expect(await read(sh)).toBe('two');
    sh.close();
    await driver.destroy(def.uuid);
  }, 300_000);

  it("refuses a file already at the overlay's path, with libvirt's words, and leaves it alone", async () => {
    const base = join(dir, 'ref.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '1M']);
    const taken = join(dir, 'ref.s1');
    await writeFile(taken, 'mine');
    const def = guestDef('qref', base);
    const task = { name: 's1', record: { name: 's1', state: 'disk-snapshot' as const, creationTime: 1700000200 }, external: [{ dev: 'vda', source: base, format: 'qcow2', overlay: taken }] };
    await expect(driver.snapshotCreate(def, task)).rejects.toMatchObject({
      code: 'operation-unsupported',
      message: `external snapshot file for disk vda already exists and is not a block device: ${taken}`,
    });
    expect(await readFile(taken, 'utf8')).toBe('mine');
    // A link planted at the path, even one leading nowhere yet, is refused: nothing is written through it.
    const link = join(dir, 'ref.s2');
    const target = join(dir, 'elsewhere');
    await symlink(target, link);
    const task2 = { name: 's2', record: { name: 's2', state: 'disk-snapshot' as const, creationTime: 1700000300 }, external: [{ dev: 'vda', source: base, format: 'qcow2', overlay: link }] };
    await expect(driver.snapshotCreate(def, task2)).rejects.toMatchObject({ code: 'operation-unsupported', message: /already exists and is not a block device/ });
    expect(existsSync(target)).toBe(false);
  });

  it('abandoned (the log records it failed): a switched guest is merged back onto its image, keeping what it wrote; an overlay nobody uses goes; one with data a restarted guest no longer uses stays', async () => {
    const base = join(dir, 'ab.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    const def = guestDef('qab', base);
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    const sh = await shell(def.uuid);
    await write(sh, 'alpha');
    const overlay = join(dir, 'ab.s1');
    const task = { name: 's1', record: { name: 's1', state: 'disk-snapshot' as const, creationTime: 1700000500 }, external: [{ dev: 'vda', source: base, format: 'qcow2', overlay }] };
    await driver.snapshotCreate(def, task, { taskId: 'ab-1' });
    await write(sh, 'bravo');
    expect(await firstLine(base)).toBe('alpha');
    // Another task's abandonment touches nothing of this one's.
    await driver.snapshotAbandon(def, task, { taskId: 'someone-else' });
    expect(existsSync(overlay)).toBe(true);
    await driver.snapshotAbandon(def, task, { taskId: 'ab-1' });
    expect(existsSync(overlay)).toBe(false);
    expect(await read(sh)).toBe('bravo');
    expect(await firstLine(base)).toBe('bravo');
    // Again (redelivered): nothing left to do.
    await driver.snapshotAbandon(def, task, { taskId: 'ab-1' });
    sh.close();

    // Shut off: an overlay made and never used goes.
    await driver.destroy(def.uuid);
    await driver.snapshotCreate(def, task, { taskId: 'ab-2' });
    expect(existsSync(overlay)).toBe(true);
    await driver.snapshotAbandon(def, task, { taskId: 'ab-2' });
    expect(existsSync(overlay)).toBe(false);

    // Switched, written to, then the guest restarted on its image (as the log has it): merging the
    // overlay now would write older data over what the guest wrote since, so it is kept.
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    const sh2 = await shell(def.uuid);
    await driver.snapshotCreate(def, task, { taskId: 'ab-3' });
    await write(sh2, 'charlie');
    sh2.close();
    await driver.destroy(def.uuid);
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });
    const sh3 = await shell(def.uuid);
    await write(sh3, 'delta');
    await driver.snapshotAbandon(def, task, { taskId: 'ab-3' });
    expect(existsSync(overlay)).toBe(true);
    expect(await read(sh3)).toBe('delta');
    sh3.close();
    await driver.destroy(def.uuid);
    expect(await firstLine(base)).toBe('delta');
  });
});
