import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects } from '../../contracts/subjects.ts';
import { call } from '../../platform/rpc.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { readLog } from './log-audit.ts';

/**
 * Disk hot-plug under faults, on the test driver with a latency that leaves time to strike while the
 * host is at work: the agent killed mid-attach, a command sent twice, a report delivered twice.
 */
describe('disk hot-plug faults', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { VIRTPLANE_TEST_LATENCY_MS: '1500', VIRTPLANE_RESYNC_MS: '1000' } });
  }, 60_000);
  afterAll(async () => stack?.stop());

  const define = async (name: string) => {
    await stack.client.define({ definition: { name, type: 'test', memoryKiB: 65536, vcpus: 1 } });
    await stack.client.outcome(await stack.client.start(name), 30_000);
  };
  const guestDisks = async (name: string) => {
    const g = (await testDriverState(stack)).find((x) => x.name === name) as { disks?: Record<string, { source?: { file?: string } }> } | undefined;
    return g?.disks && Object.fromEntries(Object.entries(g.disks).map(([t, d]) => [t, d.source?.file ?? '']));
  };
  const outcomesOf = async (taskId: string) =>
    (await readLog(stack.nats.nats, 'ev.domain.>'))
      .flatMap((c) => c.events)
      .filter((e) => (e.type === 'DomainOperationCompleted' || e.type === 'DomainOperationFailed') && (e.data as { taskId: string }).taskId === taskId)
      .map((e) => e.type);
  const disk = (dev: string, file: string) => ({ type: 'file', source: { file }, target: { dev, bus: 'virtio' } });

  it('the agent killed with SIGKILL mid-attach: the disk is attached once, and the log says so once', { timeout: 120_000 }, async () => {
    await define('k1');
    const accepted = await stack.client.attachDisk('k1', disk('vdb', '/img/k1.img'));
    // Inside the driver's latency: claimed, not yet done.
    await sleep(700);
    await stack.kill('host-agent', 'SIGKILL');
    expect((await guestDisks('k1'))?.vdb).toBeUndefined();
    await stack.start('host-agent');
    const v = await stack.client.outcome(accepted, 60_000);
    expect(v.lastError).toBeNull();
    expect(v.definition.devices.disks.map((d) => d.target.dev)).toEqual(['vdb']);
    expect(await guestDisks('k1')).toEqual({ vdb: '/img/k1.img' });
    expect(await outcomesOf(accepted.taskId!)).toEqual(['DomainOperationCompleted']);
    // The resync that follows the restart finds nothing to say: the host and the log agree.
    await sleep(3000);
    expect((await stack.client.get('k1')).version).toBe(v.version);
  });

  it('an attach the host finishes while nobody can record it: one outcome in the log, and after the resync the live definition is what the guest has', { timeout: 120_000 }, async () => {
    await define('k4');
    const accepted = await stack.client.attachDisk('k4', disk('vdb', '/img/k4.img'), { timeoutSeconds: 2 });
    // Claimed and under way on the host; then the command service is gone until past the deadline.
    await sleep(500);
    await stack.kill('command', 'SIGKILL');
    await sleep(3000);
    expect(await guestDisks('k4')).toEqual({ vdb: '/img/k4.img' });
    await stack.start('command');
    const end = Date.now() + 30_000;
    let v = await stack.client.get('k4');
    while ((v.pending || !v.definition.devices.disks.some((d) => d.target.dev === 'vdb')) && Date.now() < end) {
      await sleep(300);
      v = await stack.client.get('k4');
    }
    expect(v.definition.devices.disks.map((d) => d.target.dev)).toEqual(['vdb']);
    const outcomes = await outcomesOf(accepted.taskId!);
    expect(outcomes).toHaveLength(1);
    const events = (await readLog(stack.nats.nats, `ev.domain.${v.id}`)).flatMap((c) => c.events).map((e) => e.type);
    // Recorded failed at its deadline: the resync's report is what put the disk in the live definition.
    if (outcomes[0] === 'DomainOperationFailed') expect(events).toContain('DomainDisksObserved');
    console.log(JSON.stringify({ lateAttach: outcomes[0], disksObserved: events.includes('DomainDisksObserved') }));
    // The next boot's definition was never asked to change.
    expect((await stack.client.get('k4')).nextDefinition?.devices.disks ?? []).toEqual([]);
  });

  it('the same command sent twice is one attach; a second attach of the target is refused', { timeout: 60_000 }, async () => {
    await define('k2');
    const commandId = 'c0ffee00-0000-4000-8000-00000000d15c';
    const first = await stack.client.attachDisk('k2', disk('vdb', '/img/k2.img'), { commandId });
    const again = await stack.client.attachDisk('k2', disk('vdb', '/img/k2.img'), { commandId });
    expect(again).toMatchObject({ duplicate: true, version: first.version, taskId: first.taskId });
    await stack.client.outcome(first, 30_000);
    await expect(stack.client.attachDisk('k2', disk('vdb', '/img/other.img'))).rejects.toMatchObject({ code: 'operation-failed', message: 'target vdb already exists' });
    expect(await guestDisks('k2')).toEqual({ vdb: '/img/k2.img' });
    expect(await outcomesOf(first.taskId!)).toEqual(['DomainOperationCompleted']);
  });

  it("a host's report delivered twice is recorded once; a report on another host's domain is refused", { timeout: 60_000 }, async () => {
    await define('k3');
    const accepted = await stack.client.detachDisk('k3', 'vdz').catch((e: { code: string; message: string }) => e);
    expect(accepted).toMatchObject({ code: 'invalid-arg', message: 'No disk found whose source path or target is vdz' });
    const a = await stack.client.attachDisk('k3', disk('vdc', '/img/k3.img'));
    const v = await stack.client.outcome(a, 30_000);
    const report = { kind: 'completed', reportId: `${a.taskId}:outcome`, domainId: v.id, taskId: a.taskId, observed: { state: 'running', reason: 'booted' } };
    // The agent's own report again, as after a lost reply: nothing new is recorded.
    await call(stack.nats.nats.nc, subjects.agent(stack.hostId, 'report'), report);
    expect((await stack.client.get('k3')).version).toBe(v.version);
    // Another host's word on this domain.
    await expect(call(stack.nats.nats.nc, subjects.agent('host-z', 'report'), { ...report, reportId: 'forged-report-1' })).rejects.toMatchObject({ code: 'unauthorized' });
    const claim = await call<{ proceed: boolean }>(stack.nats.nats.nc, subjects.agent('host-z', 'claim'), { taskId: a.taskId, domainId: v.id, placementEpoch: v.placementEpoch });
    expect(claim.proceed).toBe(false);
    expect((await stack.client.get('k3')).version).toBe(v.version);
    expect(await outcomesOf(a.taskId!)).toEqual(['DomainOperationCompleted']);
  });
});
