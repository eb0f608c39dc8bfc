import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuAvailable } from '../../drivers/qemu/index.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from '../fixtures/guest/build.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';
import { readLog } from './log-audit.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();

/**
 * An external snapshot of a running guest with its agent killed by SIGKILL after the overlay was
 * made and before the disks switched to it: the agent back takes the overlay it made (its marker
 * says so) rather than refusing it as someone else's file or making another, switches once, and the
 * log records the snapshot once. qemu-img is wrapped to count its `create` runs and to linger after
 * one, so the kill lands at that point every time.
 */
describe.skipIf(!availability.ok)('external snapshots under faults', () => {
  let stack: Stack;
  let dir: string;
  const creates = () => readFile(join(dir, 'creates.log'), 'utf8').then((t) => t.split('\n').filter(Boolean), () => [] as string[]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-extfault-'));
    const bin = join(dir, 'bin');
    await mkdir(bin);
    const real = (await run('sh', ['-c', 'command -v qemu-img'])).stdout.trim();
    await writeFile(
      join(bin, 'qemu-img'),
      `#!/bin/sh\n"${real}" "$@"\nrc=$?\nif [ "$1" = create ]; then echo "$*" >> "${dir}/creates.log"; sleep 4; fi\nexit $rc\n`,
    );
    await chmod(join(bin, 'qemu-img'), 0o755);
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000', PATH: `${bin}:${process.env.PATH ?? ''}` } });
  }, 180_000);
  afterAll(async () => {
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack.client.destroy(v.id).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('an agent killed between making the overlay and switching to it makes one overlay and switches once when it is back', async () => {
    const c = stack.client;
    const guest = await buildTinyGuest();
    const disk = join(dir, 'k.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    const xml = tinyGuestXml(guest, {
      name: 'extk',
      type: availability.kvm ? 'kvm' : 'qemu',
      extraCmdline: 'vp.disk=1',
      devicesXml: `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`,
    });
    const def = parseDomainXml(xml);
    await c.define({ xml });
    await c.outcome(await c.start('extk', { timeoutSeconds: 120 }), 120_000);
    await waitForConsole(join(stack.dataDir, 'hosts', stack.hostId, 'qemu', def.uuid, 'console.log'), READY_MARKER, { timeoutMs: 120_000 });

    const accepted = await c.snapshotCreate('extk', { name: 'k1', diskOnly: true }, { timeoutSeconds: 120 });
    const overlay = join(dir, 'k.k1');
    for (let i = 0; (await creates()).length === 0; i++) {
      if (i > 300) throw new Error('the overlay was never created');
      await sleep(50);
    }
    await stack.kill('host-agent');
    expect(existsSync(overlay)).toBe(true);
    const mid = await c.get('extk');
    expect(mid.snapshots ?? []).toEqual([]);
    expect(mid.definition?.devices.disks[0]?.source?.file).toBe(disk);

    await stack.start('host-agent');
    const v = await c.outcome(accepted, 90_000);
    expect(v.snapshots?.map((x) => [x.name, x.state])).toEqual([['k1', 'disk-snapshot']]);
    expect(v.definition?.devices.disks[0]?.source?.file).toBe(overlay);
    // One overlay made, one layer on the image: the disk switched once.
    expect(await creates()).toHaveLength(1);
    const chain = JSON.parse((await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', overlay])).stdout) as Array<{ filename: string }>;
    expect(chain.map((x) => x.filename)).toEqual([overlay, disk]);
    const outcomes = (await readLog(stack.nats.nats, 'ev.domain.>'))
      .flatMap((x) => x.events)
      .filter((e) => (e.type === 'DomainOperationCompleted' || e.type === 'DomainOperationFailed') && (e.data as { taskId: string }).taskId === accepted.taskId);
    expect(outcomes.map((e) => e.type)).toEqual(['DomainOperationCompleted']);

    // The merge after it, with the agent that came back: the overlay goes, the disk is on its image.
    const del = await c.snapshotDelete('extk', { name: 'k1' }, { timeoutSeconds: 120 });
    const after = await c.outcome(del, 90_000);
    expect(after.snapshots ?? []).toEqual([]);
    expect(after.definition?.devices.disks[0]?.source?.file).toBe(disk);
    expect(existsSync(overlay)).toBe(false);
  }, 400_000);

  it('an agent away past the deadline after making the overlay: the log says the snapshot failed, and the agent back removes the overlay it made', async () => {
    const c = stack.client;
    const v0 = await c.get('extk');
    const disk = v0.definition!.devices.disks[0]!.source!.file!;
    const made = (await creates()).length;
    const accepted = await c.snapshotCreate('extk', { name: 'k2', diskOnly: true }, { timeoutSeconds: 3 });
    const overlay = join(dir, 'k.k2');
    for (let i = 0; (await creates()).length === made; i++) {
      if (i > 300) throw new Error('the overlay was never created');
      await sleep(50);
    }
    await stack.kill('host-agent');
    expect(existsSync(overlay)).toBe(true);
    const failed = await c.outcome(accepted, 30_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ code: 'timeout' });

    await stack.start('host-agent');
    for (let i = 0; existsSync(overlay); i++) {
      if (i > 600) throw new Error('the abandoned overlay was never removed');
      await sleep(100);
    }
    const v = await c.get('extk');
    expect(v.snapshots ?? []).toEqual([]);
    expect(v.definition?.devices.disks[0]?.source?.file).toBe(disk);
    expect(v.observed.state).toBe('running');
    const outcomes = (await readLog(stack.nats.nats, 'ev.domain.>'))
      .flatMap((x) => x.events)
      .filter((e) => (e.type === 'DomainOperationCompleted' || e.type === 'DomainOperationFailed') && (e.data as { taskId: string }).taskId === accepted.taskId);
    expect(outcomes.map((e) => e.type)).toEqual(['DomainOperationFailed']);
    // The name is free again, and a snapshot of it is taken whole.
    const again = await c.outcome(await c.snapshotCreate('extk', { name: 'k2', diskOnly: true }, { timeoutSeconds: 120 }), 90_000);
    expect(again.snapshots?.map((x) => x.name)).toEqual(['k2']);
    expect(again.definition?.devices.disks[0]?.source?.file).toBe(overlay);
  }, 400_000);
});
