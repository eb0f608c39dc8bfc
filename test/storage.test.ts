import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Envelope } from '../contracts/envelope.ts';
import type { StorageEventBody } from '../contracts/storage/events.ts';
import { storageSubjects, storageWorkerConsumer } from '../contracts/storage/tasks.ts';
import { subjects } from '../contracts/subjects.ts';
import { EventStore, toRecordedCommit } from '../platform/event-store.ts';
import { decodeJson, encodeJson } from '../platform/nats.ts';
import { taskOf } from '../services/command/storage-dispatcher.ts';
import { virtplane } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface ImgInfo {
  format: string;
  'virtual-size': number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
}
const qemuImgInfo = async (path: string): Promise<ImgInfo> => JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', path])).stdout) as ImgInfo;
const exists = (path: string) => stat(path).then(() => true, () => false);


const raw = async (stack: Stack, subject: string, body: string) => {
  const m = await stack.nats.nats.nc.request(subject, body, { timeout: 10_000 });
  return decodeJson(m.data) as { ok: boolean; error?: { code: string; message: string } };
};

describe('storage pools and volumes, end to end', () => {
  let stack: Stack;
  let dir: string;
  const lastSeq = async () => (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;

  beforeAll(async () => {
    stack = await startStack();
    dir = await mkdtemp(join(tmpdir(), 'vp-storage-'));
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('defines a dir pool from XML, builds and starts it, creates qcow2 volumes (one with a backing file) and deletes one', async () => {
    const c = stack.client;
    const target = join(dir, 'images');
    const poolXml = `<pool type='dir'>
  <name>images</name>
  <target>
    <path>${target}</path>
    <permissions><mode>0750</mode></permissions>
  </target>
  <metadata><app:note xmlns:app='urn:example'>kept</app:note></metadata>
</pool>`;
    const defined = await c.poolDefine({ xml: poolXml });
    expect(defined).toMatchObject({ pool: 'images', version: expect.any(Number) });
    expect((await c.poolGet('images', { minVersion: defined.version })).state).toBe('inactive');

    const built = await c.storageOutcome(await c.poolBuild('images'), 10_000);
    expect(built.state).toBe('inactive');
    expect((await stat(target)).mode & 0o777).toBe(0o750);

    const started = await c.storageOutcome(await c.poolStart('images'), 10_000);
    expect(started).toMatchObject({ state: 'running', active: true, volumes: 0 });
    expect(started.capacityBytes).toBeGreaterThan(0);

    // pool-dumpxml: every element back, with the uuid filled in.
    const xml = started.definition.xml!;
    expect(xml).toContain(`<uuid>${defined.poolId}</uuid>`);
    expect(xml).toContain(`<path>${target}</path>`);
    expect(xml).toContain('<mode>0750</mode>');
    expect(xml).toContain("<app:note xmlns:app='urn:example'>kept</app:note>");

    const baseXml = `<volume>
  <name>base.qcow2</name>
  <capacity unit='MiB'>64</capacity>
  <allocation>0</allocation>
  <target><format type='qcow2'/><compat>1.1</compat></target>
  <description-of-my-own>kept too</description-of-my-own>
</volume>`;
    const base = await c.volCreate('images', { xml: baseXml });
    expect(base).toMatchObject({ volume: 'base.qcow2', taskId: expect.any(String) });
    await c.storageOutcome(base, 20_000);
    const baseInfo = await qemuImgInfo(join(target, 'base.qcow2'));
    expect(baseInfo).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * MiB });
    expect(baseInfo['backing-filename']).toBeUndefined();

    const overlayXml = `<volume type='file'>
  <name>overlay.qcow2</name>
  <capacity unit='MiB'>128</capacity>
  <target><format type='qcow2'/></target>
  <backingStore><path>${target}/base.qcow2</path><format type='qcow2'/></backingStore>
</volume>`;
    await c.storageOutcome(await c.volCreate('images', { xml: overlayXml }), 20_000);
    const overlay = await qemuImgInfo(join(target, 'overlay.qcow2'));
    expect(overlay).toMatchObject({ format: 'qcow2', 'virtual-size': 128 * MiB, 'backing-filename': join(target, 'base.qcow2'), 'backing-filename-format': 'qcow2' });

    // A volume from the JSON form, raw, fully allocated as libvirt does without <allocation>.
    await c.storageOutcome(await c.volCreate('images', { definition: { name: 'data.img', capacityBytes: 4 * MiB } }), 20_000);
    expect(await qemuImgInfo(join(target, 'data.img'))).toMatchObject({ format: 'raw', 'virtual-size': 4 * MiB });

    const vols = await c.volList('images');
    expect(vols.map((v) => [v.name, v.path])).toEqual([
      ['base.qcow2', join(target, 'base.qcow2')],
      ['data.img', join(target, 'data.img')],
      ['overlay.qcow2', join(target, 'overlay.qcow2')],
    ]);
    const ov = await c.volGet('images/overlay.qcow2');
    expect(ov).toMatchObject({ format: 'qcow2', capacityBytes: 128 * MiB, key: join(target, 'overlay.qcow2'), backingStore: { path: join(target, 'base.qcow2'), format: 'qcow2' } });
    expect((await c.volGet(join(target, 'base.qcow2'))).name).toBe('base.qcow2');

    // vol-dumpxml: every element given, plus key and path.
    const bx = (await c.volGet('base.qcow2', { pool: 'images' })).definition.xml!;
    for (const part of [
      '<name>base.qcow2</name>',
      `<key>${target}/base.qcow2</key>`,
      `<capacity unit='bytes'>${64 * MiB}</capacity>`,
      "<allocation unit='bytes'>0</allocation>",
      `<path>${target}/base.qcow2</path>`,
      "<format type='qcow2'/>",
      '<compat>1.1</compat>',
      '<description-of-my-own>kept too</description-of-my-own>',
    ]) {
      expect(bx).toContain(part);
    }
    const ox = ov.definition.xml!;
    expect(ox).toMatch(/<backingStore>\s*<path>[^<]*\/base\.qcow2<\/path>\s*<format type='qcow2'\/>\s*<\/backingStore>/);

    await c.storageOutcome(await c.volDelete('images', 'overlay.qcow2'), 20_000);
    expect(await exists(join(target, 'overlay.qcow2'))).toBe(false);
    expect((await c.volList('images')).map((v) => v.name)).toEqual(['base.qcow2', 'data.img']);
    await expect(c.volGet('images/overlay.qcow2')).rejects.toMatchObject({ code: 'no-storage-vol' });

    // Stopping and starting again refreshes from disk: a file put there meanwhile shows up.
    await c.poolDestroy('images');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(target, 'stray.qcow2'), String(MiB)]);
    await c.storageOutcome(await c.poolStart('images'), 10_000);
    const after = await c.volList('images');
    expect(after.map((v) => v.name)).toEqual(['base.qcow2', 'data.img', 'stray.qcow2']);
    // What virtplane created keeps its document; the stray file gets one from what the host saw.
    expect(after[0]!.definition.xml).toContain('<description-of-my-own>');
    expect(after[2]).toMatchObject({ format: 'qcow2', capacityBytes: MiB });
  });

  it('answers forbidden transitions with libvirt errors and records nothing', async () => {
    const c = stack.client;
    const target = join(dir, 'cold');
    const p = await c.poolDefine({ definition: { type: 'dir', name: 'cold', target: { path: target } } });
    const refused = async (work: Promise<unknown>, code: string, message: string | RegExp) => {
      const before = await lastSeq();
      await expect(work).rejects.toMatchObject({ code, message });
      expect(await lastSeq()).toBe(before);
    };
    await refused(c.poolStart('nope'), 'no-storage-pool', "no storage pool with matching name 'nope'");
    await refused(c.poolDestroy('cold'), 'operation-invalid', "storage pool 'cold' is not active");
    await refused(c.volCreate('cold', { definition: { name: 'v.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } } }), 'operation-invalid', "storage pool 'cold' is not active");
    await refused(c.volDelete('cold', 'v.qcow2'), 'operation-invalid', "storage pool 'cold' is not active");
    await refused(c.volList('cold'), 'operation-invalid', "storage pool 'cold' is not active");
    await refused(
      c.poolDefine({ definition: { type: 'dir', name: 'cold', target: { path: join(dir, 'other') } } }),
      'operation-failed',
      `pool 'cold' already exists with uuid ${p.poolId}`,
    );
    await refused(
      c.poolDefine({ definition: { type: 'dir', name: 'renamed', uuid: p.poolId, target: { path: target } } }),
      'operation-failed',
      `pool 'cold' is already defined with uuid ${p.poolId}`,
    );

    // Starting without building: the host cannot open the directory, and says so.
    await expect(c.storageOutcome(await c.poolStart('cold'), 10_000)).rejects.toMatchObject({
      code: 'operation-failed',
      message: `cannot open directory '${target}': No such file or directory`,
    });
    expect((await c.poolGet('cold')).recentTasks.at(-1)).toMatchObject({ op: 'pool-start', ok: false });
    // pool-start --build builds first.
    expect((await c.storageOutcome(await c.poolStart('cold', { build: true }), 10_000)).active).toBe(true);

    await refused(c.poolStart('cold'), 'operation-invalid', "storage pool 'cold' is already active");
    await refused(c.poolBuild('cold'), 'operation-invalid', "storage pool 'cold' is already active");
    await refused(c.poolUndefine('cold'), 'operation-invalid', "storage pool 'cold' is active");
    await c.storageOutcome(await c.volCreate('cold', { definition: { name: 'v.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } } }), 10_000);
    await refused(c.volCreate('cold', { definition: { name: 'v.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } } }), 'operation-failed', "storage volume 'v.qcow2' exists already");
    await refused(c.volDelete('cold', 'nope'), 'no-storage-vol', "no storage vol with matching name 'nope'");
    await refused(
      c.volCreate('cold', { definition: { name: 'r.img', capacityBytes: MiB, target: { format: 'raw' }, backingStore: { path: 'v.qcow2' } } }),
      'operation-unsupported',
      'backing storage not supported for raw volumes',
    );

    // A backing file that is not there: qemu-img's refusal comes back as the operation's error.
    await expect(
      c.storageOutcome(await c.volCreate('cold', { definition: { name: 'o.qcow2', capacityBytes: MiB, target: { format: 'qcow2' }, backingStore: { path: '/nonexistent/base.qcow2' } } }), 10_000),
    ).rejects.toMatchObject({ code: 'no-storage-vol' });
    expect((await c.volList('cold')).map((v) => v.name)).toEqual(['v.qcow2']);

    await c.poolDestroy('cold');
    const un = await c.poolUndefine('cold');
    await expect(c.poolGet('cold', { minVersion: un.version })).rejects.toMatchObject({ code: 'no-storage-pool', message: "no storage pool with matching name 'cold'" });
    // The name is free again.
    expect((await c.poolDefine({ definition: { type: 'dir', name: 'cold', target: { path: target } } })).poolId).not.toBe(p.poolId);
  });

  it('bad input gets a structured error and stores nothing', async () => {
    const cases: Array<[string, string, string, string | RegExp]> = [
      ['cmd.pool.define', '{"xml": "<pool', 'invalid-arg', /^malformed JSON/],
      ['cmd.pool.define', '{"definition": {}, "xml": "<pool/>"}', 'invalid-arg', /exactly one/],
      ['cmd.pool.define', JSON.stringify({ xml: "<pool type='dir'><name>x</name></pool>" }), 'xml-error', /target path/],
      ['cmd.pool.define', JSON.stringify({ xml: '<pool><name>x</name>' }), 'xml-error', /./],
      ['cmd.pool.define', JSON.stringify({ xml: "<domain type='test'><name>x</name></domain>" }), 'xml-error', /./],
      ['cmd.pool.define', JSON.stringify({ definition: { type: 'netfs', name: 'nfs', target: { path: '/mnt/x' } } }), 'operation-unsupported', /'netfs' is not supported/],
      ['cmd.pool.define', JSON.stringify({ definition: { type: 'dir', name: 'rel', target: { path: 'relative' } } }), 'invalid-arg', /must be an absolute path/],
      ['cmd.pool.define', JSON.stringify({ definition: { type: 'dir', name: 'a/b', target: { path: '/x' } } }), 'invalid-arg', /name/],
      ['cmd.pool.define', JSON.stringify({ definition: { type: 'dir', name: 'h', target: { path: '/x' } }, hostId: 'no-such-host' }), 'no-host', "no host with id 'no-such-host' has registered"],
      ['cmd.pool.start', '{}', 'invalid-arg', /pool/],
      ['cmd.pool.start', '{"pool": "images", "timeoutSeconds": -1}', 'invalid-arg', /timeoutSeconds/],
      ['cmd.vol.create', JSON.stringify({ pool: 'images', xml: '<volume><name>nocap</name></volume>' }), 'xml-error', /capacity/],
      ['cmd.vol.create', JSON.stringify({ pool: 'images', definition: { name: 'neg', capacityBytes: -1 } }), 'invalid-arg', /capacityBytes/],
      ['cmd.vol.create', JSON.stringify({ pool: 'images', definition: { name: '..', capacityBytes: 1 } }), 'invalid-arg', /cannot name a file/],
      ['cmd.vol.create', JSON.stringify({ pool: 'images', definition: { name: 'x.vmdk', capacityBytes: 1, target: { format: 'vmdk' } } }), 'operation-unsupported', /vmdk/],
      ['cmd.vol.delete', '{"pool": "images"}', 'invalid-arg', /volume/],
      ['agent.host-a.storage-report', '{"kind": "completed"}', 'invalid-arg', /invalid argument/],
      ['query.vol.get', '{"volume": ""}', 'invalid-arg', /volume/],
      ['query.vol.get', '{"volume": "just-a-name"}', 'invalid-arg', /name the pool/],
    ];
    for (const [subject, body, code, message] of cases) {
      const before = await lastSeq();
      const reply = await raw(stack, subject, body);
      expect({ subject, body, ok: reply.ok, code: reply.error?.code }).toEqual({ subject, body, ok: false, code });
      expect(reply.error?.message).toMatch(message);
      expect(await lastSeq()).toBe(before);
    }
    expect((await stack.client.poolList({ all: true })).map((p) => p.name)).not.toContain('nfs');
  });

  it('a host cannot report on a pool it does not own', async () => {
    const p = await stack.client.poolGet('images');
    const before = await lastSeq();
    const reply = await raw(
      stack,
      'agent.intruder.storage-report',
      JSON.stringify({ kind: 'failed', reportId: `r-${randomUUID()}`, poolId: p.id, taskId: 'whatever', error: { code: 'operation-failed', message: 'x' } }),
    );
    expect(reply.error?.code).toBe('unauthorized');
    expect(await lastSeq()).toBe(before);
  });

  it('a redelivered vol-create task does not create the volume twice', async () => {
    const c = stack.client;
    const target = join(dir, 'images');
    const accepted = await c.volCreate('images', { definition: { name: 'once.qcow2', capacityBytes: 8 * MiB, target: { format: 'qcow2' } } });
    await c.storageOutcome(accepted, 10_000);
    const first = await stat(join(target, 'once.qcow2'));

    // The same task again, as a redelivery after the duplicate window would bring it.
    const m = await stack.nats.nats.jsm.streams.getMessage('EVENTS', { seq: accepted.version });
    const commit = toRecordedCommit(m!);
    const intent = commit.events.find((e) => e.type === 'VolumeCreateRequested') as unknown as Envelope<StorageEventBody>;
    const task = taskOf(accepted.poolId, intent)!;
    const consumer = storageWorkerConsumer(stack.hostId);
    const delivered = async () => (await stack.nats.nats.jsm.consumers.info('TASKS', consumer)).delivered.consumer_seq;
    const acked = async () => (await stack.nats.nats.jsm.consumers.info('TASKS', consumer)).ack_floor.consumer_seq;
    const seqBefore = await lastSeq();
    const target0 = (await delivered()) + 1;
    await stack.nats.nats.js.publish(storageSubjects.task(stack.hostId), encodeJson(task), { msgID: `redelivery-${randomUUID()}` });
    for (let i = 0; i < 100 && (await acked()) < target0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await acked()).toBeGreaterThanOrEqual(target0);

    const again = await stat(join(target, 'once.qcow2'));
    expect(again.ino).toBe(first.ino);
    expect(again.mtimeMs).toBe(first.mtimeMs);
    expect(await lastSeq()).toBe(seqBefore);
  });

  it('a volume already on disk from an interrupted attempt is taken as created; a different file is left alone', async () => {
    const c = stack.client;
    const target = join(dir, 'images');
    // What a crash after qemu-img but before the report leaves behind.
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(target, 'early.qcow2'), String(16 * MiB)]);
    const before = await stat(join(target, 'early.qcow2'));
    await c.storageOutcome(await c.volCreate('images', { definition: { name: 'early.qcow2', capacityBytes: 16 * MiB, target: { format: 'qcow2' } } }), 10_000);
    expect((await stat(join(target, 'early.qcow2'))).ino).toBe(before.ino);
    expect((await c.volGet('images/early.qcow2')).capacityBytes).toBe(16 * MiB);

    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(target, 'foreign.qcow2'), String(2 * MiB)]);
    await expect(
      c.storageOutcome(await c.volCreate('images', { definition: { name: 'foreign.qcow2', capacityBytes: 4 * MiB, target: { format: 'qcow2' } } }), 10_000),
    ).rejects.toMatchObject({ code: 'operation-failed', message: "storage volume 'foreign.qcow2' exists already" });
    expect((await qemuImgInfo(join(target, 'foreign.qcow2')))['virtual-size']).toBe(2 * MiB);
  });

  it('a restarted projector serves pools and volumes from its bucket, and keeps folding', async () => {
    await stack.kill('projector');
    await stack.start('projector');
    const c = stack.client;
    expect((await c.poolGet('images')).state).toBe('running');
    expect((await c.volList('images')).map((v) => v.name)).toContain('base.qcow2');
    const d = await c.volCreate('images', { definition: { name: 'after-restart.qcow2', capacityBytes: MiB, target: { format: 'qcow2' } } });
    await c.storageOutcome(d, 10_000);
    expect((await c.volGet('images/after-restart.qcow2')).format).toBe('qcow2');
  });

  it('speaks virsh through the CLI: pool-define, pool-start, pool-list, vol-create, vol-list, vol-info, dumpxml, vol-delete', { timeout: 180_000 }, async () => {
    const env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const target = join(dir, 'cli');
    const poolFile = join(dir, 'cli-pool.xml');
    await writeFile(poolFile, `<pool type='dir'><name>clipool</name><target><path>${target}</path></target></pool>`);
    expect((await virtplane(env, 'pool-define', poolFile)).stdout.trim()).toBe(`Pool clipool defined from ${poolFile}`);
    expect((await virtplane(env, 'pool-build', 'clipool')).stdout.trim()).toBe('Pool clipool built');
    expect((await virtplane(env, 'pool-start', 'clipool')).stdout.trim()).toBe('Pool clipool started');
    const list = (await virtplane(env, 'pool-list', '--all')).stdout;
    expect(list).toMatch(/^ Name\s+State\s+Autostart\n-+\n/);
    expect(list).toMatch(/^ clipool\s+active\s+no$/m);
    const info = (await virtplane(env, 'pool-info', 'clipool')).stdout;
    expect(info).toMatch(/^Name:\s+clipool$/m);
    expect(info).toMatch(/^State:\s+running$/m);
    expect(info).toMatch(/^Capacity:\s+\d+\.\d\d [KMGTP]?i?B$/m);
    expect((await virtplane(env, 'pool-dumpxml', 'clipool')).stdout).toContain(`<path>${target}</path>`);

    const volFile = join(dir, 'cli-vol.xml');
    await writeFile(volFile, "<volume><name>disk.qcow2</name><capacity unit='G'>1</capacity><target><format type='qcow2'/></target></volume>");
    expect((await virtplane(env, 'vol-create', 'clipool', volFile)).stdout.trim()).toBe(`Vol disk.qcow2 created from ${volFile}`);
    expect((await virtplane(env, 'vol-list', 'clipool')).stdout).toMatch(new RegExp(`^ disk\\.qcow2\\s+${target}/disk\\.qcow2$`, 'm'));
    const vinfo = (await virtplane(env, 'vol-info', 'disk.qcow2', '--pool', 'clipool')).stdout;
    expect(vinfo).toMatch(/^Type:\s+file$/m);
    expect(vinfo).toMatch(/^Capacity:\s+1\.00 GiB$/m);
    const vxml = (await virtplane(env, 'vol-dumpxml', 'disk.qcow2', '--pool', 'clipool')).stdout;
    expect(vxml).toContain(`<key>${target}/disk.qcow2</key>`);
    expect(vxml).toContain("<capacity unit='bytes'>1073741824</capacity>");
    // Look-ups between names, keys, paths and uuids.
    expect((await virtplane(env, 'vol-path', 'disk.qcow2', '--pool', 'clipool')).stdout.trim()).toBe(`${target}/disk.qcow2`);
    expect((await virtplane(env, 'vol-key', 'disk.qcow2', '--pool', 'clipool')).stdout.trim()).toBe(`${target}/disk.qcow2`);
    expect((await virtplane(env, 'vol-name', `${target}/disk.qcow2`)).stdout.trim()).toBe('disk.qcow2');
    expect((await virtplane(env, 'vol-pool', `${target}/disk.qcow2`)).stdout.trim()).toBe('clipool');
    const poolUuid = (await virtplane(env, 'pool-uuid', 'clipool')).stdout.trim();
    expect(poolUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await virtplane(env, 'pool-name', poolUuid)).stdout.trim()).toBe('clipool');
    const json = JSON.parse((await virtplane(env, '--json', 'vol-info', 'clipool/disk.qcow2')).stdout);
    expect(json).toMatchObject({ name: 'disk.qcow2', format: 'qcow2', capacityBytes: 1 << 30 });

    const bad = await virtplane(env, 'vol-create', 'clipool', volFile);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe("error: operation failed: storage volume 'disk.qcow2' exists already [operation-failed]");

    expect((await virtplane(env, 'vol-delete', 'disk.qcow2', '--pool', 'clipool')).stdout.trim()).toBe('Vol disk.qcow2 deleted');
    expect(await exists(join(target, 'disk.qcow2'))).toBe(false);
    expect((await virtplane(env, 'pool-destroy', 'clipool')).stdout.trim()).toBe('Pool clipool destroyed');
    expect((await virtplane(env, 'pool-undefine', 'clipool')).stdout.trim()).toBe('Pool clipool has been undefined');
  });

  it('vol-create-as, vol-resize, vol-clone, vol-wipe, pool-refresh and pool-delete through the CLI, with virsh output and errors', { timeout: 180_000 }, async () => {
    const env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const target = join(dir, 'more');
    const cli = (...args: string[]) => virtplane(env, ...args);
    await writeFile(join(dir, 'more.xml'), `<pool type='dir'><name>morepool</name><target><path>${target}</path></target></pool>`);
    expect((await cli('pool-define', join(dir, 'more.xml'))).code).toBe(0);
    expect((await cli('pool-start', '--build', 'morepool')).code).toBe(0);

    expect((await cli('vol-create-as', 'morepool', 'a.raw', '4M', '--format', 'raw')).stdout.trim()).toBe('Vol a.raw created');
    expect((await cli('vol-create-as', 'morepool', 'b.qcow2', '1GiB', '--format', 'qcow2')).stdout.trim()).toBe('Vol b.qcow2 created');
    expect((await qemuImgInfo(join(target, 'b.qcow2')))['virtual-size']).toBe(GiB);
    const malformed = await cli('vol-create-as', 'morepool', 'c', '12Q');
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('Malformed size 12Q');

    // Resize: absolute, by delta, and shrinking only when asked.
    expect((await cli('vol-resize', 'b.qcow2', '2G', '--pool', 'morepool')).stdout.trim()).toBe("Size of volume 'b.qcow2' successfully changed to 2G");
    expect((await qemuImgInfo(join(target, 'b.qcow2')))['virtual-size']).toBe(2 * GiB);
    expect((await cli('vol-resize', 'b.qcow2', '1G', '--pool', 'morepool', '--delta')).code).toBe(0);
    expect((await qemuImgInfo(join(target, 'b.qcow2')))['virtual-size']).toBe(3 * GiB);
    const noShrink = await cli('vol-resize', 'b.qcow2', '1G', '--pool', 'morepool');
    expect(noShrink.code).toBe(1);
    expect(noShrink.stderr.trim()).toBe("error: invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified [invalid-arg]");
    expect((await cli('vol-resize', 'b.qcow2', '--pool', 'morepool', '--', '-2G')).stderr).toContain('negative size requires --shrink');
    expect((await cli('vol-resize', 'b.qcow2', '--pool', 'morepool', '--shrink', '--delta', '--', '-2G')).code).toBe(0);
    expect((await qemuImgInfo(join(target, 'b.qcow2')))['virtual-size']).toBe(GiB);
    expect(JSON.parse((await cli('--json', 'vol-info', 'morepool/b.qcow2')).stdout)).toMatchObject({ capacityBytes: GiB });

    // Clone copies the content; wipe zeroes it.
    const content = Buffer.alloc(4 * MiB);
    for (let i = 0; i < content.length; i += 65536) content.write(`sector ${i}`, i);
    await writeFile(join(target, 'a.raw'), content);
    expect((await cli('vol-clone', 'a.raw', 'a-copy.raw', '--pool', 'morepool')).stdout.trim()).toBe('Vol a-copy.raw cloned from a.raw');
    expect((await readFile(join(target, 'a-copy.raw'))).equals(content)).toBe(true);
    const again = await cli('vol-clone', 'a.raw', 'a-copy.raw', '--pool', 'morepool');
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe("error: operation failed: storage volume 'a-copy.raw' exists already [operation-failed]");
    expect((await cli('vol-wipe', `${target}/a.raw`)).stdout.trim()).toBe(`Vol a.raw wiped`);
    expect((await readFile(join(target, 'a.raw'))).every((b) => b === 0)).toBe(true);
    expect((await readFile(join(target, 'a-copy.raw'))).equals(content)).toBe(true);
    const missing = await cli('vol-wipe', 'nope', '--pool', 'morepool');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no storage vol with matching name 'nope'");

    // A file put there behind virtplane's back shows after a refresh.
    await writeFile(join(target, 'dropped.img'), Buffer.alloc(MiB));
    expect((await cli('vol-list', 'morepool')).stdout).not.toContain('dropped.img');
    expect((await cli('pool-refresh', 'morepool')).stdout.trim()).toBe('Pool morepool refreshed');
    expect((await cli('vol-list', 'morepool')).stdout).toMatch(/^ dropped\.img\s+/m);

    // pool-delete: only inactive, only empty; the pool stays defined.
    expect((await cli('pool-delete', 'morepool')).stderr.trim()).toBe("error: Requested operation is not valid: storage pool 'morepool' is active [operation-invalid]");
    expect((await cli('pool-destroy', 'morepool')).code).toBe(0);
    const notEmpty = await cli('pool-delete', 'morepool');
    expect(notEmpty.code).toBe(1);
    expect(notEmpty.stderr).toContain(`failed to remove pool '${target}': Directory not empty`);
    for (const f of await readdir(target)) await rm(join(target, f));
    expect((await cli('pool-delete', 'morepool')).stdout.trim()).toBe('Pool morepool deleted');
    expect(await exists(target)).toBe(false);
    expect((await cli('pool-info', 'morepool')).stdout).toMatch(/^State:\s+inactive$/m);
    expect((await cli('pool-undefine', 'morepool')).code).toBe(0);
  });

  it('pool-create starts a transient pool that is gone once destroyed; one that cannot start leaves nothing', { timeout: 120_000 }, async () => {
    const env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const cli = (...args: string[]) => virtplane(env, ...args);
    const file = join(dir, 'transient-pool.xml');
    await writeFile(file, `<pool type='dir'><name>trpool</name><target><path>${join(dir, 'tr')}</path></target></pool>`);
    const failed = await cli('pool-create', file);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`cannot open directory '${join(dir, 'tr')}': No such file or directory`);
    expect((await cli('pool-info', 'trpool')).code).toBe(1);

    expect((await cli('pool-create', file, '--build')).stdout.trim()).toBe(`Pool trpool created from ${file}`);
    const info = (await cli('pool-info', 'trpool')).stdout;
    expect(info).toMatch(/^State:\s+running$/m);
    expect(info).toMatch(/^Persistent:\s+no$/m);
    expect((await cli('vol-create-as', 'trpool', 'x.raw', '1M')).code).toBe(0);
    expect((await cli('pool-destroy', 'trpool')).code).toBe(0);
    const gone = await cli('pool-info', 'trpool');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("no storage pool with matching name 'trpool'");
    // Its files stay on the host, as libvirt leaves them; the name is free again.
    expect(await exists(join(dir, 'tr', 'x.raw'))).toBe(true);
    expect((await cli('pool-define', file)).code).toBe(0);
    expect((await cli('pool-undefine', 'trpool')).code).toBe(0);
  });

  it('a host agent killed in the middle of a clone: the copy is made once, whole, and recorded once', { timeout: 180_000 }, async () => {
    const c = stack.client;
    const target = join(dir, 'killed');
    const pool = await c.poolDefine({ definition: { type: 'dir', name: 'killpool', target: { path: target } } });
    await c.storageOutcome(await c.poolStart('killpool', { build: true }), 20_000);
    await c.storageOutcome(await c.volCreate('killpool', { definition: { name: 'src.raw', capacityBytes: 384 * MiB, target: { format: 'raw' } } }), 20_000);
    // Data all through, so the copy takes a while and is not holes.
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i += 8) block.writeDoubleLE(Math.random(), i);
    const fh = await (await import('node:fs/promises')).open(join(target, 'src.raw'), 'r+');
    for (let i = 0; i < 384; i++) await fh.write(block, 0, block.length, i * MiB);
    await fh.close();

    const accepted = await c.volClone('killpool', 'src.raw', 'dst.raw');
    const copying = async () => (await readdir(target)).some((f) => f.startsWith('.dst.raw.clone-'));
    for (let i = 0; i < 2000 && !(await copying()); i++) await new Promise((r) => setTimeout(r, 5));
    expect(await copying()).toBe(true);
    await stack.kill('host-agent');
    expect((await c.poolGet('killpool')).inFlight.map((t) => t.op)).toEqual(['vol-clone']);

    await stack.start('host-agent');
    await c.storageOutcome(accepted, 120_000);
    const hash = async (f: string) => (await import('node:crypto')).createHash('sha256').update(await readFile(join(target, f))).digest('hex');
    expect(await hash('dst.raw')).toBe(await hash('src.raw'));
    expect((await readdir(target)).filter((f) => f.includes('.clone-'))).toEqual([]);
    const commits = await new EventStore(stack.nats.nats).read(subjects.aggregate('pool', pool.poolId));
    const cloned = commits.flatMap((cm) => cm.events.filter((e) => e.type === 'VolumeCloned'));
    expect(cloned).toHaveLength(1);
    expect((await c.volGet('killpool/dst.raw')).capacityBytes).toBe(384 * MiB);
  });
});
