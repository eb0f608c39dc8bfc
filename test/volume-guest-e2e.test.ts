import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { CLI } from './fixtures/cli.ts';
import { ConsoleCli } from './fixtures/console.ts';
import { buildTinyGuest, tinyGuestXml, waitForConsole } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();
const MiB = 1 << 20;

/**
 * A volume's bytes round trip through a real guest: uploaded over NATS into a pool on the host, read
 * by the guest through a hot-plugged virtio disk, written to by the guest, and downloaded again.
 * What the guest computes over the disk is typed into its console and read back from it.
 */
describe.skipIf(!availability.ok)('a volume through a real qemu guest', () => {
  let stack: Stack;
  let dir: string;
  let uuid: string;
  const consoles: ConsoleCli[] = [];
  const virtplane = async (...args: string[]) => {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url }, timeout: 180_000 }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    return { code: r.code, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
  };
  const ok = async (...args: string[]) => {
    const r = await virtplane(...args);
    expect(r, `virtplane ${args.join(' ')}`).toMatchObject({ code: 0 });
    return r.stdout;
  };

  beforeAll(async () => {
    const guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-vol-guest-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    await writeFile(join(dir, 'pool.xml'), `<pool type='dir'><name>rt</name><target><path>${join(dir, 'pool')}</path></target></pool>`);
    await writeFile(join(dir, 'guest.xml'), tinyGuestXml(guest, { name: 'vol-rt', type: availability.kvm ? 'kvm' : 'qemu', extraCmdline: 'vp.blk=1' }));
  }, 180_000);
  afterAll(async () => {
    for (const c of consoles) c.child.kill('SIGKILL');
    await stack?.client.destroy('vol-rt').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads a volume, the guest reads what was sent and writes to it, and the download holds both', { timeout: 600_000 }, async () => {
    await ok('pool-create', join(dir, 'pool.xml'), '--build');
    await ok('vol-create-as', 'rt', 'data.raw', '4M', '--format', 'raw');
    // One random MiB, then zeros: the guest hashes the first and writes into the rest.
    const sent = Buffer.concat([randomBytes(MiB), Buffer.alloc(3 * MiB)]);
    await writeFile(join(dir, 'up.img'), sent);
    await ok('vol-upload', 'data.raw', join(dir, 'up.img'), '--pool', 'rt');
    const path = await ok('vol-path', 'data.raw', '--pool', 'rt');
    expect(path).toBe(join(dir, 'pool', 'data.raw'));

    await ok('define', join(dir, 'guest.xml'));
    uuid = await ok('domuuid', 'vol-rt');
    await ok('start', 'vol-rt', '--timeout', '120');
    const consoleLog = join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log');
    await waitForConsole(consoleLog, 'virtplane-guest: disks []', { timeoutMs: 120_000 });
    expect(await ok('attach-disk', 'vol-rt', path, 'vdb')).toBe('Disk attached successfully');
    await waitForConsole(consoleLog, 'virtplane-guest: disks [vda ]', { timeoutMs: 60_000 });

    const con = new ConsoleCli(stack.nats.url, ['vol-rt']);
    consoles.push(con);
    await con.see(/Escape character is/);
    const hash = createHash('sha256').update(sent.subarray(0, MiB)).digest('hex');
    await con.ask('head -c 1048576 /dev/vda | sha256sum', `${hash}  -`);
    // The guest writes a line at 2 MiB, past what was uploaded, and flushes the disk.
    await con.ask('echo written-by-the-guest | dd of=/dev/vda bs=1M seek=2 conv=fsync 2>/dev/null; echo wrote-$?', 'wrote-0');
    con.type('\x1d');
    await con.exited;

    // Unplugged first, so every write the guest made is in the file before it is read.
    expect(await ok('detach-disk', 'vol-rt', 'vdb')).toBe('Disk detached successfully');
    await ok('vol-download', 'data.raw', join(dir, 'down.img'), '--pool', 'rt');
    const got = await readFile(join(dir, 'down.img'));
    expect(got.length).toBe(4 * MiB);
    expect(got.subarray(0, MiB).equals(sent.subarray(0, MiB))).toBe(true);
    expect(got.subarray(2 * MiB, 2 * MiB + 21).toString()).toBe('written-by-the-guest\n');
    // Nothing else changed: the bytes between are still the zeros sent.
    expect(got.subarray(MiB, 2 * MiB).equals(Buffer.alloc(MiB))).toBe(true);
    // And the host's file is what came down.
    const fh = await open(path, 'r');
    const onHost = Buffer.alloc(4 * MiB);
    await fh.read(onHost, 0, onHost.length, 0);
    await fh.close();
    expect(onHost.equals(got)).toBe(true);
  });
});
