import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { TestDriver } from './test-driver.ts';

/** The test driver's snapshots: held per guest in its state file, each taken and deleted once. */
describe('TestDriver snapshots', () => {
  let dir: string;
  const def = DomainDefinition.parse({ name: 'snap', uuid: '00000000-0000-4000-8000-00000000c0de', type: 'test', memoryKiB: 65536, vcpus: 1 });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-tsnap-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('takes a snapshot once however often asked, and a second driver on the same state file sees it', async () => {
    const d = new TestDriver({ stateFile: join(dir, 'state.json') });
    await d.start(def);
    expect(await d.snapshotCreate(def, { name: 's1' })).toEqual({ state: 'running', reason: 'booted' });
    await d.snapshotCreate(def, { name: 's1' });
    expect(await d.snapshotNames(def)).toEqual(['s1']);
    const other = new TestDriver({ stateFile: join(dir, 'state.json') });
    expect(await other.snapshotNames(def)).toEqual(['s1']);
  });

  it("reverts as libvirt's test driver: memory snapshots leave it running or paused, disk-only ones stop an active guest and leave a shut off one be", async () => {
    const d = new TestDriver({ stateFile: join(dir, 'state.json') });
    await d.snapshotCreate(def, { name: 'off' });
    expect(await d.snapshotRevert(def, { name: 'off', target: 'shutoff', withMemory: false })).toEqual({ state: 'shutoff', reason: 'unknown' });
    await d.start(def);
    expect(await d.snapshotRevert(def, { name: 'off', target: 'shutoff', withMemory: false })).toEqual({ state: 'shutoff', reason: 'from-snapshot' });
    expect(await d.snapshotRevert(def, { name: 'off', target: 'paused', withMemory: true })).toEqual({ state: 'paused', reason: 'from-snapshot' });
    await expect(d.snapshotRevert(def, { name: 'nosuch', target: 'running', withMemory: true })).rejects.toMatchObject({ code: 'operation-failed' });
  });

  it('deletes the named snapshots it holds and skips those already gone', async () => {
    const d = new TestDriver({ stateFile: join(dir, 'state.json') });
    for (const name of ['a', 'b', 'c']) await d.snapshotCreate(def, { name });
    await d.snapshotDelete(def, { name: 'a', names: ['c', 'a', 'gone'] });
    expect(await d.snapshotNames(def)).toEqual(['b']);
  });
});
