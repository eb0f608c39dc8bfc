import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkBytesFor, volStreamSubjects } from '../contracts/storage/stream.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { call } from '../platform/rpc.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const IDLE_MS = 1500;
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');

/** vol-upload and vol-download through the CLI, a real process, against a stack of real processes. */
describe('vol-upload and vol-download, streamed over NATS', () => {
  let stack: Stack;
  let dir: string;
  let target: string;
  let poolId: string;
  const env = () => ({ ...process.env, VIRTPLANE_NATS_URL: stack.nats.url });
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: env(), timeout: 60_000, maxBuffer: 16 * MiB });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    expect(r.stderr, args.join(' ')).toBe('');
    expect(r.code, args.join(' ')).toBe(0);
    return r;
  };

  beforeAll(async () => {
    stack = await startStack({ env: { VIRTPLANE_VOL_STREAM_IDLE_MS: String(IDLE_MS) } });
    dir = await mkdtemp(join(tmpdir(), 'vp-volstream-'));
    target = join(dir, 'pool');
    const c = stack.client;
    poolId = (await c.poolDefine({ xml: `<pool type='dir'><name>up</name><target><path>${target}</path></target></pool>` })).poolId;
    await c.storageOutcome(await c.poolStart('up', { build: true }), 20_000);
    await c.storageOutcome(await c.volCreate('up', { definition: { name: 'disk.raw', capacityBytes: MiB, allocationBytes: 0 } }), 20_000);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('round-trips a multi-MiB file of random bytes, and records the volume grown to it', { timeout: 120_000 }, async () => {
    // Not a multiple of the chunk size, so the last chunk is a short one.
    const content = randomBytes(9 * MiB + 12345);
    const src = join(dir, 'src.bin');
    const back = join(dir, 'back.bin');
    await writeFile(src, content);
    // Every chunk's message within the server's payload limit, and the file in more than one.
    const nc = stack.nats.nats.nc;
    const sizes: number[] = [];
    const tap = nc.subscribe(volStreamSubjects.data(stack.hostId), { callback: (_e, m) => void sizes.push(m.data.length) });
    await nc.flush();
    const t0 = Date.now();
    expect((await ok('vol-upload', 'disk.raw', src, '--pool', 'up')).stdout).toBe('');
    const upMs = Date.now() - t0;
    tap.unsubscribe();
    const max = nc.info!.max_payload;
    expect(sizes.length).toBe(Math.ceil(content.length / chunkBytesFor(max)));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(max);
    expect(Math.max(...sizes)).toBeGreaterThan(max / 2);
    expect((await readFile(join(target, 'disk.raw'))).equals(content)).toBe(true);
    // The upload was followed by a refresh through the log: the view knows the new size (in whole
    // sectors, as qemu-img gives a raw file's).
    expect((await stack.client.volGet('up/disk.raw')).capacityBytes).toBe(Math.ceil(content.length / 512) * 512);
    const t1 = Date.now();
    const down = JSON.parse((await ok('--json', 'vol-download', `${target}/disk.raw`, back)).stdout) as { bytes: number; sha256: string };
    const downMs = Date.now() - t1;
    expect(down.bytes).toBe(content.length);
    expect((await readFile(back)).equals(content)).toBe(true);
    process.stderr.write(`vol-upload ${content.length} bytes in ${upMs} ms, vol-download in ${downMs} ms (CLI start included)\n`);
  });

  it('writes and reads at --offset for --length, leaving the rest of the volume alone', { timeout: 60_000 }, async () => {
    const before = await readFile(join(target, 'disk.raw'));
    const patch = randomBytes(300_000);
    const src = join(dir, 'patch.bin');
    await writeFile(src, patch);
    await ok('vol-upload', 'up/disk.raw', src, '--offset', String(MiB + 7), '--length', '200000');
    const after = await readFile(join(target, 'disk.raw'));
    expect(after.length).toBe(before.length);
    expect(after.subarray(MiB + 7, MiB + 7 + 200_000).equals(patch.subarray(0, 200_000))).toBe(true);
    expect(after.subarray(0, MiB + 7).equals(before.subarray(0, MiB + 7))).toBe(true);
    expect(after.subarray(MiB + 7 + 200_000).equals(before.subarray(MiB + 7 + 200_000))).toBe(true);

    const part = join(dir, 'part.bin');
    await ok('vol-download', 'disk.raw', part, '--pool', 'up', '--offset', String(MiB), '--length', '1500000');
    expect((await readFile(part)).equals(after.subarray(MiB, MiB + 1_500_000))).toBe(true);
    // Past the end of the volume, only what there is.
    await ok('vol-download', 'disk.raw', part, '--pool', 'up', '--offset', String(after.length - 10), '--length', '100');
    expect((await readFile(part)).equals(after.subarray(after.length - 10))).toBe(true);
  });

  it('--sparse leaves holes where zeros go to a hole, and writes zeros over data', { timeout: 60_000 }, async () => {
    const c = stack.client;
    await c.storageOutcome(await c.volCreate('up', { definition: { name: 'sparse.raw', capacityBytes: 0, allocationBytes: 0 } }), 20_000);
    const content = Buffer.alloc(16 * MiB);
    randomBytes(MiB).copy(content, 0);
    randomBytes(MiB).copy(content, 15 * MiB);
    const src = join(dir, 'sparse-src.bin');
    await writeFile(src, content);
    await ok('vol-upload', 'sparse.raw', src, '--pool', 'up', '--sparse');
    const path = join(target, 'sparse.raw');
    expect((await readFile(path)).equals(content)).toBe(true);
    expect((await stat(path)).blocks * 512).toBeLessThan(8 * MiB);
    // Zeros over data are written, not skipped.
    await writeFile(join(dir, 'zeros.bin'), Buffer.alloc(MiB));
    await ok('vol-upload', 'sparse.raw', join(dir, 'zeros.bin'), '--pool', 'up', '--sparse');
    expect((await readFile(path)).subarray(0, MiB).every((b) => b === 0)).toBe(true);
  });

  it("refuses unknown volumes and pools in libvirt's words, changing nothing", { timeout: 60_000 }, async () => {
    const src = join(dir, 'src.bin');
    const noVol = await cli('vol-upload', 'nope', src, '--pool', 'up');
    expect(noVol.code).toBe(1);
    expect(noVol.stderr.trim().split('\n')).toEqual(["error: failed to get vol 'nope'", "error: Storage volume not found: no storage vol with matching name 'nope' [no-storage-vol]"]);
    const noPool = await cli('vol-download', 'disk.raw', join(dir, 'x.bin'), '--pool', 'nopool');
    expect(noPool.code).toBe(1);
    expect(noPool.stderr.trim().split('\n')).toEqual(["error: failed to get pool 'nopool'", "error: Storage pool not found: no storage pool with matching name 'nopool' [no-storage-pool]"]);
    const noKey = await cli('vol-upload', '/no/such/vol', src);
    expect(noKey.stderr.trim().split('\n')).toEqual([
      "error: failed to get vol '/no/such/vol', specifying --pool might help",
      "error: Storage volume not found: no storage vol with matching path '/no/such/vol' [no-storage-vol]",
    ]);
    const noFile = await cli('vol-upload', 'disk.raw', join(dir, 'missing.bin'), '--pool', 'up');
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toContain('error: cannot upload to volume disk.raw\n');
    expect(noFile.stderr).toContain(`cannot open file '${join(dir, 'missing.bin')}'`);
    const badOffset = await cli('vol-upload', 'disk.raw', src, '--pool', 'up', '--offset', '-1');
    expect(badOffset.code).toBe(2);
    const pastEnd = await cli('vol-download', 'disk.raw', join(dir, 'x.bin'), '--pool', 'up', '--offset', String(100 * MiB));
    expect(pastEnd.stderr).toMatch(/^error: cannot download from volume disk\.raw\nerror: invalid argument: offset \d+ is past the end of volume 'disk.raw'/);
  });

  it('refuses a second stream, and storage work, on a volume with a stream open; and a stream on a volume with work pending', { timeout: 60_000 }, async () => {
    const nc = stack.nats.nats.nc;
    const h = stack.hostId;
    const open = await call<{ sessionId: string }>(nc, volStreamSubjects.open(h), { direction: 'upload', poolId, volume: 'disk.raw' });
    await expect(call(nc, volStreamSubjects.open(h), { direction: 'download', poolId, volume: 'disk.raw' })).rejects.toMatchObject({
      code: 'operation-invalid',
      message: "volume 'disk.raw' is still in use.",
    });
    const c = stack.client;
    await expect(c.storageOutcome(await c.volWipe('up', 'disk.raw'), 20_000)).rejects.toMatchObject({ code: 'operation-invalid', message: "volume 'disk.raw' is still in use." });
    await call(nc, volStreamSubjects.abort(h), { sessionId: open.sessionId });
    await expect(call(nc, volStreamSubjects.data(h), { sessionId: open.sessionId, seq: 0, data: '' })).rejects.toMatchObject({ code: 'operation-invalid' });

    // Two opens at once: one session, one refusal.
    const both = await Promise.allSettled([0, 1].map(() => call<{ sessionId: string }>(nc, volStreamSubjects.open(h), { direction: 'upload', poolId, volume: 'disk.raw' })));
    expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { message: "volume 'disk.raw' is still in use." } });
    for (const r of both) if (r.status === 'fulfilled') await call(nc, volStreamSubjects.abort(h), { sessionId: r.value.sessionId });

    // Work the log holds pending on a volume refuses a stream, as it refuses other work. The command
    // service is held stopped so that the host can neither claim the wipe nor report it done.
    await c.storageOutcome(await c.volCreate('up', { definition: { name: 'busy.raw', capacityBytes: 64 * MiB, allocationBytes: 0 } }), 20_000);
    const wipe = await c.volWipe('up', 'busy.raw');
    const command = stack.services.get('command')!.child.pid!;
    process.kill(command, 'SIGSTOP');
    try {
      expect((await c.volGet('up/busy.raw')).pending).toMatchObject({ op: 'vol-wipe' });
      const busy = await cli('vol-download', 'busy.raw', join(dir, 'busy.bin'), '--pool', 'up');
      expect(busy.code).toBe(1);
      expect(busy.stderr.trim().split('\n')).toEqual(['error: cannot download from volume busy.raw', "error: Requested operation is not valid: volume 'busy.raw' has asynchronous jobs running. [operation-invalid]"]);
    } finally {
      process.kill(command, 'SIGCONT');
    }
    await c.storageOutcome(wipe, 60_000);
    await c.storageOutcome(await c.volDelete('up', 'busy.raw'), 20_000);

    // A running guest's disk is not written under it; a copy of it can be read.
    const disk = join(target, 'disk.raw');
    const guest = `<domain type='test'><name>user</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='${disk}'/><target dev='vda'/></disk></devices></domain>`;
    await c.define({ xml: guest });
    await c.outcome(await c.start('user'), 20_000);
    const inUse = await cli('vol-upload', 'disk.raw', join(dir, 'src.bin'), '--pool', 'up');
    expect(inUse.code).toBe(1);
    expect(inUse.stderr.trim().split('\n')).toEqual(['error: cannot upload to volume disk.raw', "error: Requested operation is not valid: volume 'disk.raw' is in use by running domain 'user' [operation-invalid]"]);
    await ok('vol-download', 'disk.raw', join(dir, 'copy.bin'), '--pool', 'up');
    await c.outcome(await c.destroy('user'), 20_000);
  });

  it('refuses a chunk out of order, and at the end a count or checksum that differs from what the host received', { timeout: 30_000 }, async () => {
    const nc = stack.nats.nats.nc;
    const h = stack.hostId;
    const upload = () => call<{ sessionId: string; chunkBytes: number }>(nc, volStreamSubjects.open(h), { direction: 'upload', poolId, volume: 'disk.raw', offset: 0 });
    const chunk = Buffer.from('0123456789');
    const s1 = await upload();
    await expect(call(nc, volStreamSubjects.data(h), { sessionId: s1.sessionId, seq: 1, data: chunk.toString('base64') })).rejects.toMatchObject({
      code: 'operation-invalid',
      message: 'chunk 1 came before chunk 0',
    });
    await call(nc, volStreamSubjects.data(h), { sessionId: s1.sessionId, seq: 0, data: chunk.toString('base64') });
    // The same chunk again (a request sent twice) is answered, not written twice.
    expect(await call(nc, volStreamSubjects.data(h), { sessionId: s1.sessionId, seq: 0, data: chunk.toString('base64') })).toMatchObject({ seq: 0, bytes: 10 });
    await expect(call(nc, volStreamSubjects.finish(h), { sessionId: s1.sessionId, bytes: 10, sha256: 'ab'.repeat(32) })).rejects.toMatchObject({
      code: 'operation-failed',
      message: expect.stringMatching(/^upload of 'disk.raw' damaged: sha256 [0-9a-f]{64} received, (ab){32} sent$/),
    });
    // Refused, and released: the volume is free for the next one.
    const s2 = await upload();
    await call(nc, volStreamSubjects.data(h), { sessionId: s2.sessionId, seq: 0, data: chunk.toString('base64') });
    await expect(call(nc, volStreamSubjects.finish(h), { sessionId: s2.sessionId, bytes: 11 })).rejects.toMatchObject({ message: "upload of 'disk.raw' incomplete: 10 of 11 bytes received" });
    await expect(call(nc, volStreamSubjects.data(h), { sessionId: s2.sessionId, seq: 1, data: '' })).rejects.toMatchObject({ code: 'operation-invalid' });
    await expect(call(nc, volStreamSubjects.open(h), { direction: 'upload', poolId, volume: 'disk.raw', offset: -1 })).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(call(nc, volStreamSubjects.open(h), { direction: 'upload', poolId, volume: 'nope' })).rejects.toMatchObject({ code: 'no-storage-vol' });
    const s3 = await upload();
    await call(nc, volStreamSubjects.abort(h), { sessionId: s3.sessionId });
  });

  it('releases the session of a CLI killed with SIGKILL mid-upload, after which a new upload succeeds', { timeout: 120_000 }, async () => {
    const big = randomBytes(48 * MiB);
    const src = join(dir, 'big.bin');
    await writeFile(src, big);
    const nc = stack.nats.nats.nc;
    // The test's own connection sees the first chunk go by, and the CLI dies right then.
    const firstChunk = new Promise<void>((resolve) => {
      const sub = nc.subscribe(volStreamSubjects.data(stack.hostId), {
        callback: () => {
          sub.unsubscribe();
          resolve();
        },
      });
    });
    await nc.flush();
    const child = spawn(process.execPath, [CLI, 'vol-upload', 'disk.raw', src, '--pool', 'up'], { env: env(), stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await firstChunk;
    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // Held until its idle time passes...
    await expect(call(nc, volStreamSubjects.open(stack.hostId), { direction: 'download', poolId, volume: 'disk.raw' })).rejects.toMatchObject({
      message: "volume 'disk.raw' is still in use.",
    });
    // ... then free again.
    for (;;) {
      const r = await cli('vol-upload', 'disk.raw', src, '--pool', 'up');
      if (r.code === 0) break;
      expect(r.stderr).toContain('is still in use.');
      expect(Date.now() - killedAt).toBeLessThan(IDLE_MS + 10_000);
      await new Promise((res) => setTimeout(res, 300));
    }
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(IDLE_MS - 200);
    expect((await readFile(join(target, 'disk.raw'))).equals(big)).toBe(true);
  });
});
