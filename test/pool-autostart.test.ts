import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageSubjects } from '../contracts/storage/tasks.ts';
import { subjects } from '../contracts/subjects.ts';
import { EventStore } from '../platform/event-store.ts';
import { decodeJson, encodeJson } from '../platform/nats.ts';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

describe('pool-autostart: a restarted agent starts its autostart pools, once, decided against the log', () => {
  let stack: Stack;
  let dir: string;
  let poolId: string;
  const cli = (...args: string[]) => runCli({ VIRTPLANE_NATS_URL: stack.nats.url, VIRTPLANE_DATA_DIR: stack.dataDir }, ...args);
  /** Each start of the pool the log holds, with who asked for it. */
  const starts = async () =>
    (await new EventStore(stack.nats.nats).read(subjects.aggregate('pool', poolId))).flatMap((c) => c.events.filter((e) => e.type === 'PoolStartRequested').map((e) => e.actor));
  const until = async (what: string, ok: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    stack = await startStack({ hostId: 'host-a' });
    dir = await mkdtemp(join(tmpdir(), 'vp-pool-autostart-'));
    const c = stack.client;
    const p = await c.poolDefine({ xml: `<pool type='dir'><name>auto</name><target><path>${join(dir, 'auto')}</path></target></pool>` });
    poolId = p.poolId;
    await c.storageOutcome(await c.poolBuild('auto'), 30_000);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("marks the pool in virsh's words; pool-info and pool-list --autostart show it", async () => {
    expect(await cli('pool-autostart', 'auto')).toMatchObject({ code: 0, stdout: 'Pool auto marked as autostarted\n' });
    expect((await cli('pool-info', 'auto')).stdout).toMatch(/^Autostart:\s+yes$/m);
    expect((await cli('pool-list', '--all', '--autostart')).stdout).toMatch(/^ auto\s+inactive\s+yes$/m);
    expect((await cli('pool-list', '--all', '--no-autostart')).stdout).not.toContain('auto');
    expect(await starts()).toEqual([]);
  });

  it('an agent killed and started again starts it once; started again while it runs, not at all', async () => {
    await stack.kill('host-agent');
    await stack.start('host-agent');
    await until('the pool to run', async () => (await stack.client.poolGet('auto')).active);
    expect(await starts()).toEqual(['host:host-a']);
    await stack.kill('host-agent');
    await stack.start('host-agent');
    // The new agent's ask is decided against a running pool: nothing to start.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await starts()).toEqual(['host:host-a']);
    expect((await stack.client.poolGet('auto')).active).toBe(true);
  }, 90_000);

  it("a forged ask for a pool of another host is refused, and a repeated ask starts nothing twice", async () => {
    await stack.client.poolDestroy('auto');
    const ask = async (host: string, reportId: string) =>
      decodeJson((await stack.nats.nats.nc.request(storageSubjects.report(host), encodeJson({ kind: 'autostart', reportId, poolId }), { timeout: 10_000 })).data) as { ok: boolean; error?: { code: string }; taskId?: string };
    expect(await ask('host-z', 'pool-autostart:forged:1')).toMatchObject({ ok: false, error: { code: 'unauthorized' } });
    expect(await starts()).toEqual(['host:host-a']);
    // Its own host's ask, delivered twice (the same report id) and then asked again under another: one start.
    const first = await ask('host-a', 'pool-autostart:again:1');
    expect(first).toMatchObject({ ok: true, taskId: expect.any(String) });
    expect(await ask('host-a', 'pool-autostart:again:1')).toMatchObject({ ok: true });
    expect(await ask('host-a', 'pool-autostart:again:2')).toMatchObject({ ok: true });
    await until('the pool to run again', async () => (await stack.client.poolGet('auto')).active);
    expect(await starts()).toEqual(['host:host-a', 'host:host-a']);
  }, 60_000);

  it("refuses a transient pool and an unknown one with virsh's lines", async () => {
    const f = join(dir, 't.xml');
    await writeFile(f, `<pool type='dir'><name>tpool</name><target><path>${join(dir, 'tpool')}</path></target></pool>`);
    await stack.client.storageOutcome(await stack.client.poolCreate({ xml: `<pool type='dir'><name>tpool</name><target><path>${join(dir, 'tpool')}</path></target></pool>`, build: true }), 30_000);
    const ours = await cli('pool-autostart', 'tpool');
    expect(ours).toMatchObject({ code: 1, stderr: 'error: failed to mark pool tpool as autostarted\nerror: invalid argument: pool has no config file [invalid-arg]\n' });
    const missing = await cli('pool-autostart', 'nope');
    expect(missing.stderr).toBe("error: failed to get pool 'nope'\nerror: Storage pool not found: no storage pool with matching name 'nope' [no-storage-pool]\n");
    if (hasVirsh) {
      const run = promisify(execFile);
      const theirs = await run('virsh', ['-c', 'test:///default', `pool-create ${f}; pool-autostart tpool; pool-autostart nope`]).then(
        (r) => r.stderr,
        (e: { stderr: string }) => e.stderr,
      );
      const strip = (s: string) => s.replace(/ \[[a-z-]+\]$/gm, '').trim().split('\n').filter(Boolean);
      expect(strip(ours.stderr + missing.stderr)).toEqual(strip(theirs));
    }
    await stack.client.poolDestroy('tpool');
  }, 60_000);
});
